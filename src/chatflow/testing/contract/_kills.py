"""A writer killed mid-write (SIGKILL) loses nothing acknowledged and leaves every
instance verifying and writable: ``chatflow.testing.kills``, small enough for every run.

Only for a store shared between processes (an in-process store dies with its writer)
on POSIX (it forks). ``kills.kill_writers`` with more kills is the thorough version.
"""

from __future__ import annotations

import os

from chatflow.storage.spi import Store
from chatflow.testing import StoreFactory, kills
from chatflow.testing._check import skip
from chatflow.testing.contract._feed import _shared_across_processes

CAPABILITY = "states"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = ["test_a_writer_killed_mid_write_loses_nothing_acknowledged"]

KILLS = 3


def test_a_writer_killed_mid_write_loses_nothing_acknowledged(
    store: Store, chatflow_store_factory: StoreFactory
) -> None:
    if not hasattr(os, "fork"):
        skip("kills forked writers (POSIX)")
    if not _shared_across_processes(chatflow_store_factory, store):
        skip("an in-process store: nothing outlives a killed writer")
    report = kills.kill_writers(chatflow_store_factory, kills=KILLS, ops=4, seed=17)
    assert report.kills == KILLS
    assert report.steps_kept >= report.steps_acknowledged
