"""``chatflow ui``: a local web page showing every feature's workflows, and acting on them.

The server uses only the standard library; the page is one HTML, one CSS and one
JavaScript file shipped in this package (``static/``), with no build step and nothing
loaded from the network. ``UIServer`` serves one engine; ``serve`` runs it for the CLI.
"""

from __future__ import annotations

from chatflow.ui.server import UIServer, serve

__all__ = ["UIServer", "serve"]
