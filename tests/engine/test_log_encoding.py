"""A sealed commit writes exactly the canonical bytes its hashes cover.

Stores write ``Commit.lines`` and ``Commit.head_json()`` instead of encoding again; if
those ever drifted from ``canonical``, ``verify`` (which re-encodes what it reads) would
report every step as tampered. These tests hold the two together.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chatflow.storage import _log

TEXT = st.text(st.characters(exclude_categories=["Cs"]))  # storable: no lone surrogates
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)


def _state(variables: dict[str, Any]) -> dict[str, Any]:
    return {"instance_id": "wfi_x", "status": "running", "variables": variables, "history": [1]}


@given(variables=st.dictionaries(TEXT, JSON, max_size=4), data=JSON)
def test_lines_and_head_are_the_canonical_encodings(variables: dict[str, Any], data: Any) -> None:
    commit = _log.Commit(None)
    head = _log.head_of(_state(variables), {})
    first = commit.add({"kind": "created", "state": _state(variables)}, head)
    body = {"kind": "update", "set": {"variables": {"data": data}}, "unset": [], "lists": {}}
    second = commit.add(body, _log.advance_head(head, body))
    assert commit.lines == [_log.canonical(first), _log.canonical(second)]
    assert commit.head_json() == _log.canonical(commit.head)
    assert second["head"] == _log.head_digest(commit.head)
    assert second["prev"] == first["hash"] == _log.event_hash(first)
    assert _log.chain_problem([json.loads(line) for line in commit.lines]) is None


def test_an_event_with_a_key_sorting_before_hash_is_encoded_whole() -> None:
    commit = _log.Commit(None)
    head = _log.head_of(_state({}), {})
    event = commit.add({"kind": "created", "state": _state({}), "folded_from": 1}, head)
    assert commit.lines == [_log.canonical(event)]
    assert json.loads(commit.lines[0]) == event
