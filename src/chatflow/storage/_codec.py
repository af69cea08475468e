"""How the database stores turn states and artifacts into rows, and rows back into data.

SQLite and PostgreSQL keep each state whole as JSON text, next to a few indexed columns
copied out of it. Reading goes through ``decode_state`` so every store reports unusable
data the same way: a ``CorruptStateError`` naming the instance and where it was stored,
never ``None`` and never a bare ``json.JSONDecodeError``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from chatflow._validation import validate_id
from chatflow.errors import CorruptStateError, ValidationError
from chatflow.storage.base import StateDict

REQUIRED_KEYS = ("instance_id", "feature_id", "status", "current_phase")


class StateRow(NamedTuple):
    """A state as the SQL stores write it: indexed columns first, then the JSON."""

    instance_id: str
    feature_id: str
    status: str
    current_phase: str
    created_at: float
    updated_at: float
    version: int
    state: str


class ArtifactRow(NamedTuple):
    """A phase's task artifacts as stored, with SHA-256 checksums of the two texts."""

    record: str
    prompt: str
    response: str
    prompt_sha256: str
    response_sha256: str


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of ``text`` as UTF-8 (the same checksum the task record carries)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_state(instance_id: str, state: StateDict) -> StateRow:
    """The row for ``state``; raises ``ValidationError`` for ids unsafe to index."""
    validate_id(instance_id, "instance_id")
    validate_id(state["feature_id"], "feature_id")
    if state.get("instance_id") != instance_id:
        raise ValidationError(
            f"state_data is the state of {state.get('instance_id')!r}, not of {instance_id!r}",
            instance_id=instance_id,
        )
    return StateRow(
        instance_id,
        state["feature_id"],
        str(state["status"]),
        str(state["current_phase"]),
        float(state.get("created_at", 0.0)),
        float(state.get("updated_at", 0.0)),
        int(state.get("version", 0)),
        json.dumps(state, separators=(",", ":")),
    )


def decode_state(text: str | bytes, instance_id: str, where: str) -> StateDict:
    """Parse a stored state, checking it is an object that belongs to ``instance_id``."""
    try:
        state = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptStateError(
            f"state of instance {instance_id!r} in {where} is corrupt: {error}",
            instance_id=instance_id,
        ) from None
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise CorruptStateError(
            f"state of instance {instance_id!r} in {where} is not a ChatFlow instance state "
            f"(expected an object with {', '.join(REQUIRED_KEYS)})",
            instance_id=instance_id,
        )
    if state["instance_id"] != instance_id:
        raise CorruptStateError(
            f"state stored for instance {instance_id!r} in {where} "
            f"holds instance {state['instance_id']!r}",
            instance_id=instance_id,
        )
    return state


def encode_artifacts(record: dict[str, Any], prompt: str, response: str) -> ArtifactRow:
    """The row for a phase's artifacts, checksumming the texts as they are stored."""
    return ArtifactRow(
        json.dumps(record),
        prompt,
        response,
        sha256_hex(prompt),
        sha256_hex(response),
    )


def decode_artifacts(row: ArtifactRow, instance_id: str, phase: str, where: str) -> dict[str, Any]:
    """``{"record", "prompt", "response"}`` from a row, its stored checksums verified."""
    problem = None
    try:
        record = json.loads(row.record)
    except json.JSONDecodeError as error:
        problem = f"its record is not JSON ({error})"
    else:
        if not isinstance(record, dict):
            problem = "its record is not a JSON object"
        elif sha256_hex(row.prompt) != row.prompt_sha256:
            problem = "the prompt does not match its stored SHA-256"
        elif sha256_hex(row.response) != row.response_sha256:
            problem = "the response does not match its stored SHA-256"
    if problem is not None:
        raise CorruptStateError(
            f"task artifacts of phase {phase!r} of instance {instance_id!r} in {where} "
            f"are corrupt: {problem}",
            instance_id=instance_id,
            phase=phase,
        )
    return {"record": record, "prompt": row.prompt, "response": row.response}
