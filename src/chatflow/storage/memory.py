"""``MemoryStore``: the reference store, kept in this process's memory.

It defines the contract's behaviour in the simplest way possible (one lock, JSON copies
in and out), so the conformance suite is validated against it before any real store.
Useful for tests and for tools that need no persistence.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from chatflow._validation import validate_id
from chatflow.errors import CorruptStateError, ValidationError
from chatflow.storage._codec import decode_state
from chatflow.storage.base import IWorkflowStateStore, Mutation, StateDict, not_found

_WHERE = "the memory store"


def _copy(data: StateDict) -> StateDict:
    copied: StateDict = json.loads(json.dumps(data))
    return copied


class MemoryStore(IWorkflowStateStore):
    """Thread-safe in-memory store; everything is lost when the process exits."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._states: dict[str, str] = {}
        self._features: dict[str, list[str]] = {}
        self._artifacts: dict[tuple[str, str], str] = {}

    def save_state(self, instance_id: str, state_data: StateDict) -> None:
        validate_id(instance_id, "instance_id")
        with self._lock:
            if instance_id not in self._states:
                self._index(state_data["feature_id"], instance_id)
            self._states[instance_id] = json.dumps(state_data)

    def load_state(self, instance_id: str) -> StateDict | None:
        validate_id(instance_id, "instance_id")
        with self._lock:
            text = self._states.get(instance_id)
        return None if text is None else decode_state(text, instance_id, _WHERE)

    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        validate_id(feature_id, "feature_id")
        with self._lock:
            return list(self._features.get(feature_id, ()))

    def save_task_artifacts(
        self,
        feature_id: str,
        instance_id: str,
        phase_name: str,
        task_record_data: dict[str, Any],
        prompt_content: str,
        ai_response_content: str,
    ) -> None:
        validate_id(instance_id, "instance_id")
        validate_id(phase_name, "phase_name")
        artifacts = {
            "record": task_record_data,
            "prompt": prompt_content,
            "response": ai_response_content,
        }
        with self._lock:
            self._artifacts[(instance_id, phase_name)] = json.dumps(artifacts)

    def load_task_artifacts(self, instance_id: str, phase_name: str) -> dict[str, Any] | None:
        validate_id(instance_id, "instance_id")
        validate_id(phase_name, "phase_name")
        with self._lock:
            text = self._artifacts.get((instance_id, phase_name))
        if text is None:
            return None
        try:
            artifacts: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as error:
            raise CorruptStateError(
                f"task artifacts of phase {phase_name!r} of instance {instance_id!r} "
                f"in {_WHERE} are corrupt: {error}",
                instance_id=instance_id,
                phase=phase_name,
            ) from None
        return artifacts

    def list_task_phases(self, instance_id: str) -> list[str]:
        validate_id(instance_id, "instance_id")
        with self._lock:
            return sorted(phase for iid, phase in self._artifacts if iid == instance_id)

    def create_state(self, state_data: StateDict) -> None:
        instance_id = validate_id(state_data["instance_id"], "instance_id")
        with self._lock:
            if instance_id in self._states:
                raise ValidationError(f"workflow instance {instance_id!r} already exists")
            self.save_state(instance_id, state_data)

    def update_state(self, instance_id: str, mutate: Mutation) -> StateDict:
        validate_id(instance_id, "instance_id")
        with self._lock:
            text = self._states.get(instance_id)
            if text is None:
                raise not_found(instance_id)
            current = decode_state(text, instance_id, _WHERE)
            new = mutate(current)
            new["version"] = current.get("version", 0) + 1
            self._states[instance_id] = json.dumps(new)
            return _copy(new)

    def delete_instance(self, instance_id: str) -> bool:
        validate_id(instance_id, "instance_id")
        with self._lock:
            text = self._states.pop(instance_id, None)
            if text is None:
                return False
            for key in [key for key in self._artifacts if key[0] == instance_id]:
                del self._artifacts[key]
            for feature_id, ids in list(self._features.items()):
                if instance_id in ids:
                    ids.remove(instance_id)
                if not ids:
                    del self._features[feature_id]
            return True

    def list_features(self) -> list[str]:
        with self._lock:
            return sorted(self._features)

    def _index(self, feature_id: str, instance_id: str) -> None:
        self._features.setdefault(validate_id(feature_id, "feature_id"), []).append(instance_id)
