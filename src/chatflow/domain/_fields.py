"""Typed reads of fields from stored JSON objects, for the models' ``from_dict``.

Each raises ``ValidationError`` naming the field, so a stored object of the wrong
shape is reported as what it is, never as a ``KeyError`` or ``TypeError`` later.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from chatflow.errors import ValidationError

_E = TypeVar("_E", bound=Enum)


def require(data: Any, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError(f"{what} must be a JSON object, not {type(data).__name__}")
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValidationError(f"{what} is missing {', '.join(map(repr, missing))}")
    return data


def typed(fields: dict[str, Any], key: str, kind: type[Any], *default: Any) -> Any:
    value = fields.get(key, *default) if default else fields[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValidationError(f"field {key!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


def member(fields: dict[str, Any], key: str, kind: type[_E], what: str) -> _E:
    """The ``kind`` enum member named by a string field, or a ``ValidationError`` saying which."""
    value = typed(fields, key, str)
    try:
        return kind(value)
    except ValueError:
        raise ValidationError(f"{what} has unknown {key} {value!r}") from None


def number(fields: dict[str, Any], key: str, *default: float) -> float:
    value = fields.get(key, *default) if default else fields[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"field {key!r} must be a number, not {type(value).__name__}")
    return float(value)


def optional_number(fields: dict[str, Any], key: str) -> float | None:
    return None if fields.get(key) is None else number(fields, key)


def optional_str(fields: dict[str, Any], key: str) -> str | None:
    return None if fields.get(key) is None else typed(fields, key, str)


def optional_int(fields: dict[str, Any], key: str) -> int | None:
    return None if fields.get(key) is None else typed(fields, key, int)


def json_list(fields: dict[str, Any], key: str) -> list[Any]:
    value = fields.get(key, [])
    if not isinstance(value, list):
        raise ValidationError(f"instance state field {key!r} must be a list")
    return value


def counts(fields: dict[str, Any], key: str) -> dict[str, int]:
    value = optional_dict(fields, key) or {}
    for count in value.values():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValidationError(f"field {key!r} must map names to counts, not {count!r}")
    return value


def optional_dict(fields: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, dict):
        raise ValidationError(f"field {key!r} must be an object, not {type(value).__name__}")
    return value
