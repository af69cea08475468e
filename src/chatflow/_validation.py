"""Checks applied to everything a caller hands ChatFlow, before anything is written.

Ids become file names in the file store, so they are held to a portable, path-free
alphabet; user data is stored as JSON, so it must round-trip through JSON exactly
(no tuples turning into lists, no int keys turning into strings, no NaN).
"""

from __future__ import annotations

import json
import marshal
import math
import os
import re
from typing import Any, TypeVar

from chatflow.errors import InvalidIdError, ValidationError

_J = TypeVar("_J")

MAX_ID_LENGTH = 128
MAX_JSON_DEPTH = 200

_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
# Device names Windows refuses as file names, whatever the extension.
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def validate_id(value: object, kind: str = "id") -> str:
    """Return ``value`` if it is a safe id, else raise ``InvalidIdError`` saying why.

    Safe means: a non-empty ``str`` of at most 128 ASCII letters, digits, ``_`` and
    ``-``, not starting with ``-`` and not a Windows device name. That keeps every id
    usable as a file name on every platform and rules out ``..``, ``/`` and control
    characters.

    >>> validate_id("feat_user_auth", "feature_id")
    'feat_user_auth'
    >>> validate_id("../etc", "feature_id")
    Traceback (most recent call last):
    ...
    chatflow.errors.InvalidIdError: invalid feature_id '../etc': ...
    """
    reason = id_problem(value)
    if reason is not None:
        raise InvalidIdError(f"invalid {kind} {value!r}: {reason}", kind=kind, value=value)
    assert isinstance(value, str)
    # A plain str even for a str subclass such as WorkflowStartResult: ids end up in
    # stored dicts, which must hold exact JSON types (the engine copies them via marshal).
    return str(value)


def id_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a str, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    if not _ID_PATTERN.fullmatch(value):
        return "use only ASCII letters, digits, '_' and '-' (not first), no '/', '.' or spaces"
    if value.upper() in _WINDOWS_RESERVED:
        return "is a reserved device name on Windows"
    return None


def new_instance_id() -> str:
    """A fresh instance id: ``wfi_`` and 16 random hex digits (64 bits, collision-safe)."""
    return f"wfi_{os.urandom(8).hex()}"


def check_json_object(value: object, what: str) -> dict[str, Any]:
    """Return ``value`` if it is a dict that round-trips through JSON unchanged."""
    if type(value) is not dict:
        raise ValidationError(f"{what} must be a dict, not {type(value).__name__}", field=what)
    check_json_value(value, what)
    return value


def copy_json(value: _J) -> _J:
    """A deep copy of JSON data (checked by ``check_json_value``, or decoded from JSON).

    ``marshal`` copies at C speed, several times faster than ``copy.deepcopy``, and keeps
    exactly the types such data may hold (it would keep a tuple a tuple, too).
    """
    data: Any = value  # any JSON value marshals
    copied: _J = marshal.loads(marshal.dumps(data))
    return copied


def same_json(left: Any, right: Any) -> bool:
    """Whether two JSON values are the same, types included.

    Python's ``==`` says ``1 == 1.0 == True``; JSON and whoever reads the value back
    keep them apart, so a change between them is a change that must be stored
    (tests/conformance/test_exact_values.py).
    """
    if left is right:
        return True
    kind = type(left)
    if kind is not type(right):
        return False
    if kind is dict:
        return len(left) == len(right) and all(
            key in right and same_json(value, right[key]) for key, value in left.items()
        )
    if kind is list:
        return len(left) == len(right) and all(map(same_json, left, right))
    return bool(left == right)


def check_json_value(value: object, what: str) -> None:
    """Raise ``ValidationError`` naming the first path in ``value`` JSON would not keep.

    Iterative, so deeply nested input gets a clear error instead of a RecursionError.
    Exact types only: a ``str`` or ``int`` subclass (an Enum, say) would come back as
    a plain value, which is a silent change the caller did not ask for. Every step
    checks its data, so a path is kept as the keys leading there and spelled out only
    for an error.
    """
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, at = stack.pop()
        if len(at) > MAX_JSON_DEPTH:
            raise _too_deep(_path(what, at[:3]) + "...", what)
        kind = type(item)
        if kind is str:
            _check_text(item, what, at)  # type: ignore[arg-type]
            continue
        if kind in (int, bool) or item is None:
            continue
        if kind is float:
            if not math.isfinite(item):  # type: ignore[arg-type]
                path = _path(what, at)
                raise ValidationError(f"{path} is {item!r}, which JSON cannot hold", field=what)
            continue
        if kind is dict:
            for key, child in item.items():  # type: ignore[attr-defined]
                if type(key) is not str:
                    raise ValidationError(
                        f"{_path(what, at)} has key {key!r} of type {type(key).__name__}; "
                        "keys must be str",
                        field=what,
                    )
                _check_text(key, what, at, key=True)
                stack.append((child, (*at, key)))
            continue
        if kind is list:
            for index, child in enumerate(item):  # type: ignore[arg-type]
                stack.append((child, (*at, index)))
            continue
        raise ValidationError(
            f"{_path(what, at)} is a {kind.__name__}, which is not JSON data "
            "(use dict, list, str, int, float, bool or None)",
            field=what,
        )


def parse_json(text: str | bytes, what: str, **options: Any) -> Any:
    """Decode JSON a user gave (a ``--data`` value, a file, an export, a request body).

    Not JSON: ``json.JSONDecodeError`` (a ``ValueError``), as from ``json.loads``. The
    decoder recurses once per level of nesting, so hostile input would end in a
    ``RecursionError`` (a traceback); it is a ``ValidationError`` naming ``what`` instead.
    ``options`` go to ``json.loads``.
    """
    try:
        return json.loads(text, **options)
    except RecursionError:
        raise _too_deep(what, what) from None


def check_json_size(value: object, what: str, limit: int) -> None:
    """Raise ``ValidationError`` if ``value`` would take more than ``limit`` bytes as JSON.

    YAML anchors let a few hundred bytes of text name millions of values (an "alias
    bomb"): each alias is one shared object until something walks or stores it. This
    walk stops as soon as the count passes ``limit``, so its cost is bounded too, and it
    runs before anything else walks ``value``. Sizes are close to ``json.dumps``'s
    (text counted in characters, escapes not), which is all a limit needs.
    """
    size = 0
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            size += 2 + sum(len(str(key)) + 4 for key in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            size += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, int):  # repr refuses ints of over 4,300 digits
            size += item.bit_length() // 3 + 1
        else:
            size += len(repr(item))
        if size > limit:
            raise ValidationError(
                f"{what} is larger than {limit:,} bytes as JSON (YAML anchors can hide that)",
                field=what,
            )


def _too_deep(where: str, what: str) -> ValidationError:
    return ValidationError(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels", field=what)


def _path(what: str, at: tuple[str | int, ...]) -> str:
    """How errors name the value reached from ``what`` through the keys ``at``."""
    return what + "".join(f"[{key!r}]" for key in at)


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a ``str`` every store can encode as UTF-8."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, not {type(value).__name__}", field=what)
    _check_text(value, what)
    return value


def _check_text(text: str, what: str, at: tuple[str | int, ...] = (), *, key: bool = False) -> None:
    """Reject lone surrogates (``"\\ud800"``): UTF-8 cannot hold them, so one store would
    fail half-way through a write while another silently stored something else.

    ``text`` is reached from ``what`` through the keys ``at`` (``key``: it is a key there).
    """
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        path = f"{_path(what, at)} key {text!r}" if key else _path(what, at)
        raise ValidationError(
            f"{path} holds a lone surrogate {text[error.start]!r} at index {error.start}, "
            "which is not valid Unicode text",
            field=what,
        ) from None
