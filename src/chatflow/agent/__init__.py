"""Front ends for coding agents: ``chatflow mcp`` (``mcp_server``, needs the ``mcp`` extra).

``operations`` holds what the tools do in terms of the engine and ``chatflow.views``,
without the SDK, so it is importable (and testable) with the standard library alone.
"""
