"""Webhooks: POST each matching change of the store to a URL, signed, in order, at least
once (``chatflow webhook``, and ``chatflow ui`` runs a sender). ``hooks`` keeps them in
the store; ``sender`` delivers them. Standard library only; docs/webhooks.md."""

from __future__ import annotations

from chatflow.webhooks.hooks import check_events, check_url
from chatflow.webhooks.sender import HookReport, Retry, Sender, sign, verify

__all__ = ["HookReport", "Retry", "Sender", "check_events", "check_url", "sign", "verify"]
