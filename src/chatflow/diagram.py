"""Render a workflow as a Mermaid flowchart, optionally showing where an instance went.

Paste the output into any Mermaid renderer (GitHub and most editors render
```` ```mermaid ```` blocks). Phases needing approval are hexagons; conditional
transitions carry their label or condition; ``max_visits`` fallbacks are dotted. With an
instance, the transitions it took are drawn thick, visited phases are green, the current
one yellow (red if failed).
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any, NamedTuple

from chatflow.core.conditions import describe
from chatflow.core.models import InstanceStatus, WorkflowInstanceState
from chatflow.core.schema import END, FAIL, declared_targets, phase_names, validate_schema

_STYLES = (
    "    classDef done fill:#d3f9d8,stroke:#2b8a3e",
    "    classDef current fill:#fff3bf,stroke:#e67700,stroke-width:3px",
    "    classDef failed fill:#ffe3e3,stroke:#c92a2a,stroke-width:3px",
)
_TERMINAL_NODES = {END: 'wf_end(("end"))', FAIL: 'wf_fail(("failed"))'}
_TERMINAL_IDS = {END: "wf_end", FAIL: "wf_fail"}


class Edge(NamedTuple):
    """A drawable transition: ``dotted`` marks a ``max_visits`` fallback."""

    source: str
    target: str
    label: str
    dotted: bool


def to_mermaid(schema: dict[str, Any], instance: WorkflowInstanceState | None = None) -> str:
    """The Mermaid ``flowchart`` source of ``schema``, highlighting ``instance`` if given.

    >>> print(to_mermaid({"name": "tiny", "phases": [{"name": "only"}]}))
    flowchart TD
        wf_start(("start"))
        p0["only"]
        wf_end(("end"))
        wf_start --> p0
        p0 --> wf_end
    <BLANKLINE>
    """
    schema = validate_schema(schema)
    ids = {name: f"p{index}" for index, name in enumerate(phase_names(schema))}
    ids.update(_TERMINAL_IDS)
    edges = labelled_edges(schema)
    lines = ["flowchart TD", '    wf_start(("start"))']
    lines += [f"    {ids[phase['name']]}{_node(phase)}" for phase in schema["phases"]]
    used = {edge.target for edge in edges}
    lines += [f"    {_TERMINAL_NODES[t]}" for t in (END, FAIL) if t in used]
    lines.append(f"    wf_start --> {ids[phase_names(schema)[0]]}")
    for edge in edges:
        arrow = "-.->" if edge.dotted else "-->"
        label = f'|"{_escape(edge.label)}"|' if edge.label else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    if instance is not None:
        lines += _highlight(instance, edges, ids)
    return "\n".join(lines) + "\n"


def _node(phase: dict[str, Any]) -> str:
    title = phase.get("title")
    name = _escape(phase["name"])
    text = f"{_escape(str(title))}<br/><small>{name}</small>" if title else name
    if "max_visits" in phase:
        text += f"<br/><small>max {phase['max_visits']} visits</small>"
    return f'{{{{"{text}"}}}}' if phase.get("requires_approval") else f'["{text}"]'


def labelled_edges(schema: dict[str, Any]) -> list[Edge]:
    """Every transition in declaration order, then the ``max_visits`` fallbacks."""
    edges = []
    for phase in schema["phases"]:
        transitions = phase.get("transitions")
        if not transitions:
            target = declared_targets(schema, phase["name"])[0]
            edges.append(Edge(phase["name"], target, "", dotted=False))
            continue
        for transition in transitions:
            if "when" in transition:
                label = transition.get("label") or describe(transition["when"])
            else:
                label = transition.get("label", "otherwise" if len(transitions) > 1 else "")
            edges.append(Edge(phase["name"], transition["to"], label, dotted=False))
    for phase in schema["phases"]:
        if "max_visits" in phase:
            label = f"after {phase['max_visits']} visits"
            edges.append(Edge(phase["name"], phase.get("fallback", FAIL), label, dotted=True))
    return edges


def _highlight(
    instance: WorkflowInstanceState, edges: list[Edge], ids: dict[str, str]
) -> list[str]:
    """Class and link-style lines marking the instance's path and position."""
    taken = transitions_taken(instance)
    history = instance.history
    done = sorted({ids[entry.phase] for entry in history if entry.status == "completed"})
    current = ids[instance.current_phase]
    lines = list(_STYLES)
    finished_ok = instance.status is InstanceStatus.COMPLETED
    done = [node for node in done if finished_ok or node != current]
    if done:
        lines.append(f"    class {','.join(done)} done")
    if instance.status is InstanceStatus.FAILED:
        lines.append(f"    class {current} failed")
    elif not instance.status.is_finished:
        lines.append(f"    class {current} current")
    indexes = [str(i + 1) for i, e in enumerate(edges) if (e.source, e.target) in taken]
    if indexes:  # link 0 is start -> first phase
        lines.append(f"    linkStyle 0,{','.join(indexes)} stroke:#2b8a3e,stroke-width:3px")
    return lines


def transitions_taken(instance: WorkflowInstanceState) -> Counter[tuple[str, str]]:
    """How often the instance took each (source, target) step by triggering a phase.

    Retries, rejections and jumps are not transitions of the schema, so they are left out.
    """
    taken: Counter[tuple[str, str]] = Counter()
    history = instance.history
    for before, after in itertools.pairwise(history):
        if before.status == "completed":
            taken[before.phase, after.phase] += 1
    if instance.status is InstanceStatus.COMPLETED and history:
        taken[history[-1].phase, END] += 1
    if instance.status is InstanceStatus.FAILED and history and history[-1].status == "completed":
        taken[history[-1].phase, FAIL] += 1
    return taken


def _escape(text: str) -> str:
    """Mermaid entity codes for characters that would end a quoted label or look like HTML."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text
