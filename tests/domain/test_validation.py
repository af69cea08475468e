"""Property tests: id validation, JSON checks and state round trips."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatflow import InvalidIdError, ValidationError, WorkflowInstanceState
from chatflow._validation import check_json_object, validate_id
from chatflow.core.models import HistoryEntry, InstanceStatus
from chatflow.storage import FileStateStore
from chatflow.storage._log import canonical

SAFE = string.ascii_letters + string.digits + "_-"

safe_ids = st.text(alphabet=SAFE, min_size=1, max_size=128).filter(
    lambda s: (
        not s.startswith("-")
        and s.upper() not in {"CON", "PRN", "AUX", "NUL"}
        and not (s.upper()[:3] in {"COM", "LPT"} and s[3:] in list("123456789"))
    )
)


@given(safe_ids)
def test_safe_ids_are_accepted(value: str) -> None:
    assert validate_id(value) == value


@given(st.text(max_size=200))
def test_accepted_ids_are_plain_file_names(value: str) -> None:
    try:
        validate_id(value)
    except InvalidIdError:
        return
    assert Path(value).name == value
    assert value not in {".", ".."} and "/" not in value and "\\" not in value
    assert value.isascii() and value.isprintable() and len(value) <= 128


@given(st.text(min_size=1).filter(lambda s: any(c not in SAFE for c in s)))
def test_ids_with_any_unsafe_character_are_rejected(value: str) -> None:
    with pytest.raises(InvalidIdError):
        validate_id(value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


@given(json_objects)
def test_json_objects_pass_and_round_trip(value: dict[str, Any]) -> None:
    assert check_json_object(value, "data") is value
    assert json.loads(json.dumps(value)) == value


def test_deep_nesting_is_a_clear_error_not_a_crash() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ValidationError, match="nested deeper"):
        check_json_object(deep, "variables")


history_entries = st.builds(
    HistoryEntry,
    phase=safe_ids,
    task=st.text(max_size=20),
    started_at=st.floats(min_value=0, max_value=4e9),
    ended_at=st.none() | st.floats(min_value=0, max_value=4e9),
    status=st.sampled_from(["running", "completed", "failed"]),
    trigger_data_snapshot=st.none() | json_objects,
)
states = st.builds(
    WorkflowInstanceState,
    instance_id=safe_ids,
    feature_id=safe_ids,
    workflow_name=st.text(min_size=1, max_size=20),
    current_phase=safe_ids,
    variables=json_objects,
    status=st.sampled_from(list(InstanceStatus)),
    history=st.lists(history_entries, max_size=5),
    created_at=st.floats(min_value=0, max_value=4e9),
    updated_at=st.floats(min_value=0, max_value=4e9),
    meta=json_objects,
    workflow_schema=json_objects,
    version=st.integers(min_value=0, max_value=2**40),
)


@given(states)
def test_state_round_trips_through_dict_and_file_encoding(state: WorkflowInstanceState) -> None:
    data = state.to_dict()
    assert WorkflowInstanceState.from_dict(data) == state
    assert WorkflowInstanceState.from_dict(json.loads(canonical(data))) == state


def _outcome(read: Any, data: Any) -> object:
    try:
        return read(data)
    except ValidationError as error:
        return str(error)


_DELETED = object()


@given(states, json_values)
def test_state_from_dict_shortcut_reads_exactly_what_the_checked_path_reads(
    state: WorkflowInstanceState, value: Any
) -> None:
    """``from_dict`` checks the well-formed case inline; with any one field changed or
    removed it must still give what its field-by-field path gives, result or error."""
    written = state.to_dict()
    for key in written:
        for changed in (value, None, True, 2.0, -1, "paused", {"a": -1}, {"a": 1}, _DELETED):
            data = dict(written)
            if changed is _DELETED:
                data.pop(key, None)
            else:
                data[key] = changed
            checked = _outcome(lambda d: WorkflowInstanceState._checked_from_dict(d, None), data)
            assert _outcome(WorkflowInstanceState.from_dict, data) == checked, (key, changed)


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(state=states)
def test_state_round_trips_through_the_file_store(
    tmp_path: Path, state: WorkflowInstanceState
) -> None:
    folder = tempfile.mkdtemp(dir=tmp_path)  # one folder per example
    FileStateStore(folder, durable=False).save_state(state.instance_id, state.to_dict())
    reopened = FileStateStore(folder, durable=False)
    loaded = reopened.load_state(state.instance_id)
    assert loaded is not None
    assert WorkflowInstanceState.from_dict(loaded) == state
    assert state.instance_id in reopened.list_instances_by_feature(state.feature_id)
