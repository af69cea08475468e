"""A feature's instances counted by status: what a store reports and the roll-up reads.

The shape is the domain's (``status.feature_rollup`` builds on it); stores fill it in
and re-export it from ``chatflow.storage`` as they always did.
"""

from __future__ import annotations

from typing import NamedTuple

from chatflow.domain.models import InstanceStatus

_ACTIVE_STATUSES = frozenset(status.value for status in InstanceStatus if status.is_active)


class StatusCount(NamedTuple):
    """How many of a feature's instances are in ``status``, and the newest of them."""

    status: str
    instances: int
    newest_instance_id: str


def newest_active(groups: list[StatusCount]) -> str | None:
    """The newest created, running or paused instance among a feature's status groups."""
    # Groups are ordered by their newest instance, so the last active one holds it.
    active = [group.newest_instance_id for group in groups if group.status in _ACTIVE_STATUSES]
    return active[-1] if active else None
