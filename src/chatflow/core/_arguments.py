"""Checks on the engine's optional arguments, made before any store is touched."""

from __future__ import annotations

from chatflow._validation import check_text, validate_id
from chatflow.domain.schema import version_key
from chatflow.errors import ValidationError


def automation_level(level: object) -> int | None:
    """``None`` or an int from 0 to 100."""
    if level is None:
        return None
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 100:
        raise ValidationError(
            f"automation_level must be an integer from 0 to 100, got {level!r}",
            field="automation_level",
        )
    return level


def optional_text(value: object, what: str) -> str | None:
    return None if value is None else check_text(value, what)


def flag(value: object, what: str) -> bool:
    """A true/false option (``force``): a truthy string must not pass for ``True``."""
    if not isinstance(value, bool):
        raise ValidationError(f"{what} must be true or false, not {value!r}", field=what)
    return value


def name(value: object, what: str) -> str:
    """A person's name: a non-blank ``str`` (blanks would count as a distinct approver)."""
    if not check_text(value, what).strip():
        raise ValidationError(f"{what} must name someone, got {value!r}", field=what)
    return str(value)


def version(value: object) -> int | str:
    """A schema version to upgrade to: a positive int or a dotted number such as '1.2'."""
    if version_key(value) is None:
        raise ValidationError(
            f"to_version must be a positive integer or a dotted number, not {value!r}",
            field="to_version",
        )
    assert isinstance(value, (int, str))
    return value


def phase_map(value: object) -> dict[str, str]:
    """A ``{old phase: new phase}`` map of phase ids (``None``: no renames)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(
            f"phase_map must be a dict, not {type(value).__name__}", field="phase_map"
        )
    return {validate_id(old, "phase"): validate_id(new, "phase") for old, new in value.items()}
