"""The syntax of budgets and deadlines in a workflow, checked once when it is validated.

``budget: {tokens: 200000, cost_usd: 5, wall: "2h", visits: 3}`` on the workflow or
on a phase; on a phase also ``deadline: "4h"`` with ``deadline_of: approval | phase``,
``on_timeout: escalate | reject | fail | default``, ``default: <target>`` and
``escalate_to: [names]``. Durations are ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``,
combined as ``"1h30m"``, or a number of seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chatflow.domain.usage import MAX_AMOUNT, did_you_mean
from chatflow.errors import ValidationError

BUDGET_KEYS = ("tokens", "cost_usd", "wall", "visits")
DEADLINE_KEYS = ("deadline", "deadline_of", "on_timeout", "default", "escalate_to")
ON_TIMEOUT = ("escalate", "reject", "fail", "default")
DEADLINE_OF = ("approval", "phase")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
MAX_DURATION = 100 * 366 * 86400.0
"""A century: longer is a typo, and a deadline that far cannot be dated."""


def duration(value: object, what: str = "duration") -> float:
    """Seconds in ``value`` (``"2h"``, ``"1h30m"``, ``90``); ``ValidationError`` if it
    cannot be read or is not positive."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if parts and _DURATION.sub("", text).strip() == "":
            seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise ValidationError(
            f"{what}: cannot read {value!r} as a duration "
            "(use a number of seconds or e.g. '90s', '15m', '2h', '1d', '1h30m')",
            field=what,
        )
    if seconds > MAX_DURATION:
        raise ValidationError(f"{what}: {value!r} is longer than a century (36600d)", field=what)
    return seconds


def budget(spec: object, where: str = "budget") -> dict[str, float]:
    """A budget's limits, normalised (``wall`` in seconds); ``ValidationError`` naming the
    first problem (unknown keys with the closest known one)."""
    problems = budget_problems(spec, where)
    if problems:  # ``field``: a front end names ``where`` in its words (``--budget``)
        raise ValidationError(problems[0], field=where)
    assert isinstance(spec, Mapping)
    return {key: _limit(key, spec[key], where) for key in BUDGET_KEYS if key in spec}


def budget_problems(spec: object, where: str) -> list[str]:
    """Every problem of a ``budget`` object."""
    if not isinstance(spec, Mapping) or not spec:
        return [f"{where}: must be an object with some of {', '.join(BUDGET_KEYS)}"]
    problems = []
    for key, value in spec.items():
        if key not in BUDGET_KEYS:
            hint = did_you_mean(str(key), BUDGET_KEYS)
            problems.append(f"{where}: unknown budget key {key!r}{hint}")
            continue
        try:
            _limit(key, value, where)
        except ValidationError as error:
            problems.append(str(error))
    return problems


def _limit(key: str, value: object, where: str) -> float:
    if key == "wall":
        return duration(value, f"{where}.wall")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValidationError(f"{where}.{key}: must be a non-negative number, got {value!r}")
    if value == float("inf"):
        raise ValidationError(f"{where}.{key}: must be finite")
    if value > MAX_AMOUNT:  # as a usage record: sums and extensions stay exact and finite
        raise ValidationError(f"{where}.{key}: must be at most {MAX_AMOUNT}, got {value!r}")
    if key in ("tokens", "visits") and value != int(value):
        raise ValidationError(f"{where}.{key}: must be a whole number, got {value!r}")
    return float(value)


def deadline_problems(phase: Mapping[str, Any], where: str, targets: set[str]) -> list[str]:
    """Problems of a phase's ``deadline`` keys (``targets``: where ``default`` may lead)."""
    if not any(key in phase for key in DEADLINE_KEYS):
        return []
    problems = []
    if "deadline" not in phase:
        return [f"{where}: {', '.join(k for k in DEADLINE_KEYS if k in phase)} need a deadline"]
    try:
        duration(phase["deadline"], f"{where}.deadline")
    except ValidationError as error:
        problems.append(str(error))
    of = phase.get("deadline_of", "approval" if phase.get("requires_approval") else "phase")
    if of not in DEADLINE_OF:
        problems.append(f"{where}.deadline_of: must be one of {DEADLINE_OF}, got {of!r}")
    outcome = phase.get("on_timeout", "escalate")
    if outcome not in ON_TIMEOUT:
        hint = did_you_mean(str(outcome), ON_TIMEOUT)
        problems.append(f"{where}.on_timeout: unknown outcome {outcome!r}{hint}")
    if outcome == "reject" and not phase.get("requires_approval"):
        problems.append(
            f"{where}.on_timeout: reject refuses an approval; the phase needs requires_approval"
        )
    if outcome == "default" and phase.get("default") not in targets:
        problems.append(
            f"{where}.default: on_timeout default needs a transition target "
            f"(a phase, $end or $fail), got {phase.get('default')!r}"
        )
    if "default" in phase and outcome != "default":
        problems.append(f"{where}.default: only applies with on_timeout: default")
    names = phase.get("escalate_to", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        problems.append(f"{where}.escalate_to: must be a list of names, got {names!r}")
    return problems
