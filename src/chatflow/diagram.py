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

from chatflow.domain.definition import END, FAIL, Phase, Workflow
from chatflow.domain.models import InstanceStatus, WorkflowInstanceState
from chatflow.domain.schema import validate_schema
from chatflow.errors import ValidationError

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


def to_mermaid(
    schema: dict[str, Any] | Workflow, instance: WorkflowInstanceState | None = None
) -> str:
    """The Mermaid ``flowchart`` source of ``schema``, highlighting ``instance`` if given.

    ``instance`` must run this workflow (same name, its current phase in the schema);
    otherwise ``ValidationError`` says so. Phases of its history that the schema does
    not have (an instance upgraded from another version) are left out of the path.

    >>> print(to_mermaid({"name": "tiny", "phases": [{"name": "only"}]}))
    flowchart TD
        wf_start(("start"))
        p0["only"]
        wf_end(("end"))
        wf_start --> p0
        p0 --> wf_end
    <BLANKLINE>
    """
    workflow = as_workflow(schema)
    if instance is not None:
        _check_instance(workflow, instance)
    ids = {phase.name: f"p{index}" for index, phase in enumerate(workflow.phases)}
    ids.update(_TERMINAL_IDS)
    edges = labelled_edges(workflow)
    lines = ["flowchart TD", '    wf_start(("start"))']
    lines += [f"    {ids[phase.name]}{_node(phase)}" for phase in workflow.phases]
    used = {edge.target for edge in edges}
    lines += [f"    {_TERMINAL_NODES[t]}" for t in (END, FAIL) if t in used]
    lines.append(f"    wf_start --> {ids[workflow.first.name]}")
    for edge in edges:
        arrow = "-.->" if edge.dotted else "-->"
        label = f'|"{_escape(edge.label)}"|' if edge.label else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    if instance is not None:
        lines += _highlight(instance, edges, ids)
    return "\n".join(lines) + "\n"


def as_workflow(schema: dict[str, Any] | Workflow) -> Workflow:
    """``schema`` as a typed ``Workflow`` (validated if it is JSON data)."""
    return schema if isinstance(schema, Workflow) else validate_schema(schema)


def _check_instance(workflow: Workflow, instance: WorkflowInstanceState) -> None:
    if instance.workflow_name != workflow.name or not workflow.has_phase(instance.current_phase):
        raise ValidationError(
            f"instance {instance.instance_id!r} runs workflow {instance.workflow_name!r} "
            f"(now in phase {instance.current_phase!r}), which this diagram of "
            f"{workflow.name!r} version {workflow.version!r} cannot show",
            field="instance",
        )


def _node(phase: Phase) -> str:
    name = _escape(phase.name)
    text = f"{_escape(phase.title)}<br/><small>{name}</small>" if phase.title else name
    if phase.max_visits is not None:
        text += f"<br/><small>max {phase.max_visits} visits</small>"
    if phase.exit_requires.requires_anything:
        text += "<br/><small>exit gate</small>"
    return f'{{{{"{text}"}}}}' if phase.requires_approval else f'["{text}"]'


def labelled_edges(workflow: Workflow) -> list[Edge]:
    """Every transition in declaration order, then the ``max_visits`` fallbacks."""
    edges = [
        Edge(phase.name, transition.to, transition.label, dotted=False)
        for phase in workflow.phases
        for transition in phase.transitions
    ]
    for phase in workflow.phases:
        if phase.max_visits is not None:
            label = f"after {phase.max_visits} visits"
            edges.append(Edge(phase.name, phase.fallback, label, dotted=True))
    return edges


def _highlight(
    instance: WorkflowInstanceState, edges: list[Edge], ids: dict[str, str]
) -> list[str]:
    """Class and link-style lines marking the instance's path and position."""
    taken = transitions_taken(instance)
    history = instance.history
    completed = {entry.phase for entry in history if entry.status == "completed"}
    done = sorted(ids[phase] for phase in completed if phase in ids)
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
