"""Usage: the tokens, money, model and time a visit of a phase spent.

``record_usage`` (and trigger data or ``record`` keys of the same names) appends one
``usage`` event per record, in the hash chain like every event, and keeps running totals
in the state (``state.usage``), per instance and per phase, so a budget check is O(1)
per step. Per-visit figures are read from the events (``chatflow.views``).

Field names in JSON follow OpenTelemetry's GenAI semantic conventions where they have
one (``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``,
``gen_ai.request.model``); cost and duration, which they leave out, are
``chatflow.cost_usd`` and ``chatflow.duration_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from chatflow.errors import ValidationError

USAGE_KEYS = ("input_tokens", "output_tokens", "cost_usd", "model", "duration_s")
"""The names ``record_usage``, trigger data and ``record --usage`` accept."""
OTEL_NAMES = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cost_usd": "chatflow.cost_usd",
    "model": "gen_ai.request.model",
    "duration_s": "chatflow.duration_s",
}
"""Short name -> the JSON field name every view and event uses."""
_INTEGERS = ("input_tokens", "output_tokens")
_AMOUNTS = ("input_tokens", "output_tokens", "cost_usd", "duration_s")
_DIGITS = 10
MAX_AMOUNT = 2**53 - 1
"""The largest amount one record may give: every JSON reader (a web page's too) keeps
it exactly, and sums of such records stay finite."""
"""Sums are rounded to this many decimals, so 0.1 + 0.2 adds up to 0.3 every time."""


def check(values: Mapping[str, Any], where: str = "usage") -> dict[str, Any]:
    """``values`` checked: known names (else "did you mean"), non-negative finite numbers
    (whole for tokens), a non-empty model name; at least one of them. Raises
    ``ValidationError`` before anything is written."""
    if not isinstance(values, Mapping):
        raise ValidationError(f"{where} must be an object, not {type(values).__name__}")
    for key in values:
        if key not in USAGE_KEYS:
            raise ValidationError(
                f"{where}: unknown usage key {key!r}{did_you_mean(str(key), USAGE_KEYS)}",
                field=str(key),
            )
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        checked[key] = _model(value, where) if key == "model" else _amount(key, value, where)
    if not checked:
        raise ValidationError(f"{where}: give at least one of {', '.join(USAGE_KEYS)}")
    return checked


def from_trigger(trigger: Mapping[str, Any]) -> dict[str, Any] | None:
    """The usage a step's trigger data reports under the same names, checked; ``None`` if
    it reports none."""
    found = {key: trigger[key] for key in USAGE_KEYS if key in trigger}
    return check(found, "trigger data") if found else None


def did_you_mean(word: str, known: tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, else the list of names."""
    import difflib  # noqa: PLC0415 - only on a mistake

    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (one of {', '.join(known)})"


def _model(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}: model must be a non-empty name, got {value!r}")
    return value


def _amount(key: str, value: object, where: str) -> int | float:
    number = _number(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise ValidationError(
            f"{where}: {key} must be a non-negative number, got {value!r}", field=key
        )
    if number > MAX_AMOUNT:
        raise ValidationError(
            f"{where}: {key} must be at most {MAX_AMOUNT}, got {value!r}", field=key
        )
    if key in _INTEGERS:
        if number != int(number):
            raise ValidationError(f"{where}: {key} must be a whole number, got {value!r}")
        return int(number)
    return float(number)


def _number(value: object) -> float | None:
    """A JSON number, or a numeric string as the command line gives (``"1200"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def event_data(usage: Mapping[str, Any]) -> dict[str, Any]:
    """A ``usage`` event's data: the OpenTelemetry-named fields."""
    return {OTEL_NAMES[key]: usage[key] for key in USAGE_KEYS if key in usage}


def from_event(data: Mapping[str, Any]) -> dict[str, Any]:
    """The short-named usage a ``usage`` event's data holds."""
    return {key: data[name] for key, name in OTEL_NAMES.items() if name in data}


def charge(
    state_usage: dict[str, Any] | None, phase: str, usage: Mapping[str, Any]
) -> dict[str, Any]:
    """``state.usage`` with ``usage`` added to the instance's and ``phase``'s totals."""
    totals = {} if state_usage is None else state_usage
    add_to(totals.setdefault("total", {}), usage)
    add_to(totals.setdefault("phases", {}).setdefault(phase, {}), usage)
    return totals


def add_to(totals: dict[str, Any], usage: Mapping[str, Any]) -> None:
    """Add one record to ``totals`` (amounts summed, ``records`` counted, models listed)."""
    for key in _AMOUNTS:
        if key in usage:
            value = totals.get(key, 0) + usage[key]
            totals[key] = value if key in _INTEGERS else round(value, _DIGITS)
    totals["records"] = totals.get("records", 0) + 1
    model = usage.get("model")
    if model is not None and model not in totals.setdefault("models", []):
        totals["models"].append(model)


def merge(into: dict[str, Any], totals: Mapping[str, Any]) -> None:
    """Add a whole totals record (many records) to ``into``."""
    for key in _AMOUNTS:
        if key in totals:
            value = into.get(key, 0) + totals[key]
            into[key] = value if key in _INTEGERS else round(value, _DIGITS)
    into["records"] = into.get("records", 0) + int(totals.get("records", 0))
    for model in totals.get("models", []):
        if model not in into.setdefault("models", []):
            into["models"].append(model)


def tokens(totals: Mapping[str, Any]) -> int:
    """Input plus output tokens of a totals record."""
    return int(totals.get("input_tokens", 0)) + int(totals.get("output_tokens", 0))


def view(totals: Mapping[str, Any] | None) -> dict[str, Any]:
    """A totals record as JSON: OpenTelemetry names, zeros where nothing was recorded."""
    found = totals or {}
    return {
        OTEL_NAMES["input_tokens"]: found.get("input_tokens", 0),
        OTEL_NAMES["output_tokens"]: found.get("output_tokens", 0),
        "chatflow.tokens": tokens(found),
        OTEL_NAMES["cost_usd"]: found.get("cost_usd", 0.0),
        OTEL_NAMES["duration_s"]: found.get("duration_s", 0.0),
        "chatflow.records": found.get("records", 0),
        "gen_ai.request.models": list(found.get("models", [])),
    }
