"""Threads racing on one store object: every update kept."""

from __future__ import annotations

import threading

from chatflow.storage import IWorkflowStateStore
from chatflow.testing._states import assert_counted, increment, make_state

CAPABILITY = "threads"
"""The capability these checks test (``chatflow.storage.spi.CAPABILITIES``)."""

__all__ = ["test_threads_racing_on_one_instance_lose_nothing"]

_EACH = 25


def test_threads_racing_on_one_instance_lose_nothing(store: IWorkflowStateStore) -> None:
    state = make_state()
    store.create_state(state)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(_EACH):
                store.update_state(state["instance_id"], increment)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_counted(store, state["instance_id"], 8 * _EACH)
