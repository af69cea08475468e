"""Workflow definitions: validated once, up front, then stored with each instance.

A schema is plain JSON data::

    {"name": "chatcoder", "version": 2, "merge_trigger_data": "phase",
     "phases": [{"name": "code", "max_visits": 3, "fallback": "summary"},
                {"name": "review", "requires_approval": true,
                 "transitions": [{"to": "summary", "when": {...}}, {"to": "code"}]},
                {"name": "summary",
                 "exit_requires": {"artifacts": ["response"], "approvals": 1}}]}

Only ``name`` and ``phases`` (each with a ``name``) are required, so the seed's linear
schemas stay valid. Phases may carry the descriptive keys ``title``, ``template`` and
``description``, which are kept; any other unknown key is reported with the closest
known one. ChatCoder's v1.1 keys (``condition``, ``fallback_phase``) are translated into
transitions first (``chatflow.domain.dialect``). Validation collects every problem with
its location before raising, so a user fixes a schema in one pass: malformed keys,
duplicate names, unknown transition targets, bad conditions, phases the first one
cannot reach, and loops with no exit.
``validate_schema`` returns a typed ``Workflow`` (``chatflow.domain.definition``), which
resolves every default.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from chatflow._validation import check_json_size, check_json_value, id_problem
from chatflow.domain.conditions import condition_problems
from chatflow.domain.definition import (
    ARTIFACTS,
    END,
    FAIL,
    GATE_KEYS,
    MERGE_MODES,
    TERMINALS,
    Workflow,
    build,
)
from chatflow.errors import SchemaError, ValidationError

PHASE_KEYS = (
    "name",
    "task",
    "transitions",
    "requires_approval",
    "max_visits",
    "fallback",
    "max_retries",
    "exit_requires",
    "budget",
    "deadline",
    "deadline_of",
    "on_timeout",
    "default",
    "escalate_to",
)
"""Phase keys with a meaning to the engine (``task``: what the phase does, as v1.1 named it)."""
LIMIT_KEYS = PHASE_KEYS[-6:]
"""The budget and deadline keys (``chatflow.domain.limits``)."""
METADATA_KEYS = ("title", "template", "description")
"""Descriptive phase keys: kept with the schema and shown by status and diagrams."""
MAX_SCHEMA_BYTES = 1024 * 1024
"""The most a workflow schema may take as JSON (files: on disk too). Every instance
stores its schema, so a larger one, typically a YAML alias bomb, is refused."""


def validate_schema(schema: object) -> Workflow:
    """Check ``schema`` (JSON data) and return its typed ``Workflow``, or raise ``SchemaError``.

    The workflow keeps a private copy of the data, so later edits to the caller's dict
    cannot change it or a stored instance.
    """
    if not isinstance(schema, dict):
        raise SchemaError(
            f"workflow schema must be a dict, not {type(schema).__name__}",
            problems=[f"schema: expected a dict, got {type(schema).__name__}"],
        )
    try:
        check_json_size(schema, "workflow_schema", MAX_SCHEMA_BYTES)  # first: bounds any walk
        check_json_value(schema, "workflow_schema")
    except ValidationError as error:
        raise SchemaError(str(error), problems=[str(error)]) from None
    from chatflow.domain.dialect import translate  # noqa: PLC0415 - dialect builds on this module

    schema, problems = translate(schema)  # ChatCoder's v1.1 condition/fallback_phase keys
    problems += _top_level_problems(schema)
    phases = schema.get("phases")
    if not isinstance(phases, list) or not phases:
        problems.append(f"phases: must be a non-empty list of phase objects, got {phases!r}")
    else:
        problems += _phase_problems(phases)
    workflow = None
    if not problems:  # graph checks need valid names and targets, so they run only then
        data = copy.deepcopy(schema)
        workflow = build(data, schema_hash(data))
        problems += _graph_problems(workflow)
    if problems or workflow is None:
        summary = "; ".join(problems)
        raise SchemaError(f"invalid workflow schema: {summary}", problems=problems)
    _warn_near_misses(schema, workflow.content_hash)
    return workflow


TOP_KEYS = (
    "name", "version", "title", "description", "automation_level", "merge_trigger_data",
    "phases", "budget",
)  # fmt: skip
_warned: set[str] = set()  # schema hashes already warned about in this process


def near_misses(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Top-level keys ChatFlow does not read that look like a typo of one it does
    (``budgets`` for ``budget``): ``(key, meant)``. Other unknown top-level keys are an
    application's own and are kept without a word; these would silently drop a limit."""
    misses = []
    for key in schema:
        if key not in TOP_KEYS:
            import difflib  # noqa: PLC0415 - loaded only for a key it does not know

            close = difflib.get_close_matches(str(key), TOP_KEYS, n=1, cutoff=0.75)
            if close:
                misses.append((str(key), close[0]))
    return misses


def _warn_near_misses(schema: dict[str, Any], schema_hash: str) -> None:
    """A warning (once per schema per process) for each ``near_misses`` key: a warning,
    not an error, since a workflow kept before this check may carry such a key."""
    misses = near_misses(schema)
    if not misses or schema_hash in _warned:
        return
    _warned.add(schema_hash)
    from chatflow._logger import logger  # noqa: PLC0415 - logging loads only to warn

    for key, meant in misses:
        logger("chatflow.schema").warning(
            "workflow %r: top-level key %r is not one ChatFlow reads (did you mean %r?); "
            "it is kept but does nothing",
            schema.get("name"),
            key,
            meant,
        )


def _top_level_problems(schema: dict[str, Any]) -> list[str]:
    problems = []
    name = schema.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"name: must be a non-empty string, got {name!r}")
    if "version" in schema and version_key(schema["version"]) is None:
        problems.append(
            f"version: must be a positive integer or a dotted number such as '1.2', "
            f"got {schema['version']!r}"
        )
    level = schema.get("automation_level")
    if level is not None and not _is_int_in(level, 0, 100):
        problems.append(f"automation_level: must be an integer from 0 to 100, got {level!r}")
    mode = schema.get("merge_trigger_data", "none")
    if mode not in MERGE_MODES:
        problems.append(f"merge_trigger_data: must be one of {MERGE_MODES}, got {mode!r}")
    if "budget" in schema:
        from chatflow.domain.limits import budget_problems  # noqa: PLC0415 - budgeted only

        problems += budget_problems(schema["budget"], "budget")
    return problems


def _phase_problems(phases: list[Any]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for index, phase in enumerate(phases):
        where = f"phases[{index}]"
        if not isinstance(phase, dict):
            problems.append(f"{where}: must be an object, got {type(phase).__name__}")
            continue
        name = phase.get("name")
        named = f"{where} {name!r}" if isinstance(name, str) else where
        problems += _unknown_key_problems(phase, named)
        reason = id_problem(name)
        if "name" not in phase:
            problems.append(f"{where}.name: missing (every phase needs a name)")
            continue
        if reason is not None or not isinstance(name, str):
            problems.append(f"{where}.name: {name!r} {reason}")
            continue
        if name in seen:
            problems.append(f"{where}.name: duplicate phase name {name!r}")
        if "--" in name and _is_number_text(name.rpartition("--")[2]):
            # Task records of repeated visits are keyed "<phase>--<visit>" (task_key):
            # a phase called "review--2" would collide with review's second visit.
            problems.append(
                f"{where}.name: {name!r} ends in '--<number>', which is reserved for the "
                "task records of repeated visits"
            )
        seen.add(name)
    for index, phase in enumerate(phases):
        if isinstance(phase, dict) and isinstance(phase.get("name"), str):
            problems += _phase_key_problems(phase, f"phases[{index}] {phase['name']!r}", seen)
    return problems


def _unknown_key_problems(phase: dict[str, Any], where: str) -> list[str]:
    """A problem for each key that is neither known nor descriptive, naming the closest one."""
    import difflib  # noqa: PLC0415 - loaded only when a schema is validated

    from chatflow.domain.dialect import DIALECT_KEYS  # noqa: PLC0415 - see validate_schema

    known = (*PHASE_KEYS, *METADATA_KEYS)
    problems = []
    for key in phase:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), (*known, *sorted(DIALECT_KEYS)), n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else f"phase keys are {', '.join(PHASE_KEYS)}; descriptive: {', '.join(METADATA_KEYS)}"
        )
        problems.append(f"{where}: unknown key {key!r} ({hint})")
    return problems


def _phase_key_problems(phase: dict[str, Any], where: str, names: set[str]) -> list[str]:
    problems = []
    if "task" in phase and not isinstance(phase["task"], str):
        problems.append(f"{where}.task: must be a string, got {phase['task']!r}")
    if "requires_approval" in phase and not isinstance(phase["requires_approval"], bool):
        problems.append(f"{where}.requires_approval: must be true or false")
    if "max_visits" in phase and not _is_int_in(phase["max_visits"], 1, None):
        problems.append(f"{where}.max_visits: must be an integer >= 1, got {phase['max_visits']!r}")
    if "max_retries" in phase and not _is_int_in(phase["max_retries"], 0, None):
        problems.append(
            f"{where}.max_retries: must be an integer >= 0, got {phase['max_retries']!r}"
        )
    if "fallback" in phase:
        if "max_visits" not in phase:
            problems.append(f"{where}.fallback: only applies with max_visits, which is missing")
        problems += _target_problems(phase["fallback"], f"{where}.fallback", names)
    if "transitions" in phase:
        problems += _transition_problems(phase["transitions"], f"{where}.transitions", names)
    if "exit_requires" in phase:
        problems += _gate_problems(phase["exit_requires"], f"{where}.exit_requires")
    return problems + _limit_problems(phase, where, names)


def _limit_problems(phase: dict[str, Any], where: str, names: set[str]) -> list[str]:
    """Problems of a phase's ``budget`` and ``deadline`` keys (``chatflow.domain.limits``)."""
    if not set(phase) & set(LIMIT_KEYS):
        return []
    from chatflow.domain.limits import budget_problems, deadline_problems  # noqa: PLC0415

    problems = budget_problems(phase["budget"], f"{where}.budget") if "budget" in phase else []
    return problems + deadline_problems(phase, where, names | set(TERMINALS))


def _gate_problems(gate: object, where: str) -> list[str]:
    """Problems of a phase's ``exit_requires`` (see ``chatflow.domain.definition.Gate``)."""
    if not isinstance(gate, dict):
        return [f"{where}: must be an object with keys {', '.join(GATE_KEYS)}"]
    problems = []
    extra = sorted(set(gate) - set(GATE_KEYS))
    if extra:
        problems.append(f"{where}: unexpected keys {extra} (use {', '.join(GATE_KEYS)})")
    artifacts = gate.get("artifacts", [])
    if not isinstance(artifacts, list) or any(item not in ARTIFACTS for item in artifacts):
        problems.append(f"{where}.artifacts: must be a list of {ARTIFACTS}, got {artifacts!r}")
    if "approvals" in gate and not _is_int_in(gate["approvals"], 0, None):
        problems.append(f"{where}.approvals: must be an integer >= 0, got {gate['approvals']!r}")
    paths = gate.get("variables", [])
    if not isinstance(paths, list) or not all(_is_dotted(path) for path in paths):
        problems.append(
            f"{where}.variables: must be a list of variable names or dotted paths "
            f"such as 'design.doc', got {paths!r}"
        )
    if "condition" in gate:
        problems += condition_problems(gate["condition"], f"{where}.condition")
    return problems


def _is_dotted(path: object) -> bool:
    return isinstance(path, str) and all(path.split("."))


def _transition_problems(transitions: object, where: str, names: set[str]) -> list[str]:
    if not isinstance(transitions, list) or not transitions:
        return [f"{where}: must be a non-empty list of {{to, when}} objects"]
    problems = []
    for index, transition in enumerate(transitions):
        at = f"{where}[{index}]"
        if not isinstance(transition, dict):
            problems.append(f"{at}: must be an object with 'to' (and optional 'when')")
            continue
        extra = sorted(set(transition) - {"to", "when", "label"})
        if extra:
            problems.append(f"{at}: unexpected keys {extra} (use 'to', 'when', 'label')")
        problems += _target_problems(transition.get("to"), f"{at}.to", names)
        if "when" in transition:
            problems += condition_problems(transition["when"], f"{at}.when")
        if "label" in transition and not isinstance(transition["label"], str):
            problems.append(f"{at}.label: must be a string")
    if isinstance(transitions[-1], dict) and "when" in transitions[-1]:
        problems.append(
            f"{where}[{len(transitions) - 1}]: the last transition must have no 'when', "
            "so every step has somewhere to go"
        )
    return problems


def _target_problems(target: object, where: str, names: set[str]) -> list[str]:
    if target in TERMINALS or target in names:
        return []
    return [f"{where}: unknown transition target {target!r} (a phase name, {END} or {FAIL})"]


def _is_int_in(value: object, low: int, high: int | None) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return value >= low and (high is None or value <= high)


# -- graph checks ----------------------------------------------------------------------


def _graph_problems(workflow: Workflow) -> list[str]:
    """Unreachable phases and loops with no exit, on a structurally valid schema."""
    graph = {name: set(targets) for name, targets in workflow.edges().items()}
    start = workflow.first.name
    reachable = _reachable(start, graph)
    exits = _can_exit(graph)
    problems = []
    for index, name in enumerate(workflow.phase_names):
        if name not in reachable:
            problems.append(f"phases[{index}] {name!r}: unreachable from the first phase {start!r}")
        elif name not in exits:
            problems.append(
                f"phases[{index}] {name!r}: in a loop with no exit "
                f"(no path from here reaches {END} or {FAIL}; add a transition or max_visits)"
            )
    return problems


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in graph.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _can_exit(graph: dict[str, set[str]]) -> set[str]:
    """Phases from which some path reaches a terminal (a search backwards from them)."""
    sources: dict[str, set[str]] = {}
    for name, targets in graph.items():
        for target in targets:
            sources.setdefault(target, set()).add(name)
    exits: set[str] = set()
    stack = list(TERMINALS)
    while stack:
        for name in sources.get(stack.pop(), ()):
            if name not in exits:
                exits.add(name)
                stack.append(name)
    return exits


# -- names and versions ---------------------------------------------------------------


def task_key(phase: str, visit: int) -> str:
    """The task-record key of a phase's ``visit``-th visit: ``review``, ``review--2``, ...

    The first visit keeps the plain phase name, so the seed's layout
    (``tasks/<phase>.json``) is unchanged for workflows without loops or retries.
    """
    return phase if visit <= 1 else f"{phase}--{visit}"


def version_key(version: object) -> tuple[int, ...] | None:
    """A sortable key for a version (``2`` < ``"2.1"`` < ``10``), or ``None`` if malformed."""
    if isinstance(version, int) and not isinstance(version, bool):
        return (version,) if version >= 1 else None
    if isinstance(version, str) and all(map(_is_number_text, version.split("."))):
        return tuple(int(part) for part in version.split("."))
    return None


def _is_number_text(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` alone also accepts digits like '²')."""
    return text.isascii() and text.isdigit()


def schema_hash(schema: dict[str, Any]) -> str:
    """SHA-256 of the schema's canonical JSON: equal for equal schemas, whatever key order."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    import hashlib  # noqa: PLC0415 - loaded on first use: keeps `import chatflow` fast

    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
