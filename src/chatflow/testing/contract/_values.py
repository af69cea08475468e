"""Small store-wide values (``put_value``/``get_value``): kept across store objects,
replaced and cleared, any text as a key, and never listed as a workflow."""

from __future__ import annotations

from chatflow.core.engine import WorkflowEngine
from chatflow.errors import ValidationError
from chatflow.testing import StoreFactory
from chatflow.testing._check import raises

CAPABILITY = "schemas"  # kept under a reserved workflow name

__all__ = [
    "test_values_are_kept_replaced_and_cleared",
    "test_values_are_not_workflows_and_keys_are_checked",
]


def test_values_are_kept_replaced_and_cleared(chatflow_store_factory: StoreFactory) -> None:
    store = chatflow_store_factory()
    try:
        assert store.get_value("binding:/home/ann/project") is None
        store.put_value("binding:/home/ann/project", {"instance_id": "wfi_a"})
        store.put_value("binding:/home/ann/project é/../x", {"feature_id": "feat_b"})
        store.put_value("binding:/home/ann/project", {"instance_id": "wfi_c", "n": [1, 2.5]})
    finally:
        store.close()
    reopened = chatflow_store_factory()
    try:
        assert reopened.get_value("binding:/home/ann/project") == {
            "instance_id": "wfi_c",
            "n": [1, 2.5],
        }
        assert reopened.get_value("binding:/home/ann/project é/../x") == {"feature_id": "feat_b"}
        reopened.put_value("binding:/home/ann/project", None)
        assert reopened.get_value("binding:/home/ann/project") is None
        found = reopened.get_value("binding:/home/ann/project é/../x")
        found["feature_id"] = "changed"  # the caller's copy
        assert reopened.get_value("binding:/home/ann/project é/../x") == {"feature_id": "feat_b"}
    finally:
        reopened.close()


def test_values_are_not_workflows_and_keys_are_checked(
    chatflow_store_factory: StoreFactory,
) -> None:
    store = chatflow_store_factory()
    try:
        store.put_value("k", 1)
        engine = WorkflowEngine(state_store=store)
        assert engine.list_workflows() == []
        for key in ("", None, 3):
            with raises(ValidationError, match="key"):
                store.put_value(key, 1)  # type: ignore[arg-type]
        with raises(ValidationError):
            store.put_value("k", {"x": object()})
        assert store.get_value("k") == 1
    finally:
        store.close()
