"""Draw a workflow (and where an instance went) as a self-contained SVG.

The page shows it as an image, so it runs no script and loads nothing: colours for
light and dark themes live in an embedded stylesheet. Layout is layered: back edges
(loops) are found by a depth-first walk from the first phase, every other edge points
down, a phase sits one layer below its deepest predecessor, and each layer is ordered
once by the mean position of its predecessors to cut crossings. Loops are drawn as
arcs on the right. Every text from the schema goes through ``_xml``: escaped, and its
control characters shown as their Unicode pictures, since XML forbids most of them
and one would make the whole image unreadable.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from html import escape
from typing import Any

from chatflow.diagram import Edge, as_workflow, labelled_edges, transitions_taken
from chatflow.domain.definition import END, FAIL, Phase, Workflow
from chatflow.domain.models import InstanceStatus, WorkflowInstanceState

NODE_W, NODE_H = 210, 54
GAP_X, GAP_Y = 36, 70
TERMINAL_R = 17
LABEL_CHARS = 30
MARGIN = 24
LANE_GAP = 22
BADGE_ROOM = 10  # keeps loop arcs clear of the visit-count badge on a node's corner
START = "$start"
TIMES = "\u00d7"  # the multiplication sign of "x3 visits"

_STYLE = """
svg{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:13px}
.n rect{fill:#fff;stroke:#c3c9d4;stroke-width:1.5}
.n .t{fill:#1c2330;font-weight:600}.n .s{fill:#687385;font-size:11px}
.n.gate rect{stroke-dasharray:6 3}
.n.done rect{fill:#e8f7ec;stroke:#2f9e44}
.n.current rect{fill:#fff4d6;stroke:#e8890c;stroke-width:3}
.n.waiting rect{fill:#f3ecff;stroke:#7048e8;stroke-width:3}
.n.failed rect{fill:#ffecec;stroke:#e03131;stroke-width:3}
.term circle{fill:#eef0f4;stroke:#9aa3b2;stroke-width:1.5}.term text{fill:#4a5466;font-size:11px}
.term.reached circle{fill:#e8f7ec;stroke:#2f9e44;stroke-width:2.5}
.term.fail.reached circle{fill:#ffecec;stroke:#e03131}
.e path{fill:none;stroke:#a3abb8;stroke-width:1.5}
.e.fallback path{stroke-dasharray:5 4}
.e.taken path{stroke:#2f9e44;stroke-width:3}
.e text{fill:#5b6577;font-size:11px}.e.taken text{fill:#2b8a3e;font-weight:600}
.e rect{fill:#f7f8fa;stroke:none}
.badge{fill:#7048e8}.badge-t{fill:#fff;font-size:10px;font-weight:700}
#a path{fill:#a3abb8}#at path{fill:#2f9e44}
@media (prefers-color-scheme:dark){
.n rect{fill:#1d2330;stroke:#3d4656}.n .t{fill:#e6e9ef}.n .s{fill:#98a2b3}
.n.done rect{fill:#163323;stroke:#40c057}.n.current rect{fill:#3a2c0c;stroke:#fab005}
.n.waiting rect{fill:#2a2145;stroke:#9775fa}.n.failed rect{fill:#3d1a1d;stroke:#ff6b6b}
.term circle{fill:#252b38;stroke:#5c6678}.term text{fill:#c1c8d4}
.term.reached circle{fill:#163323;stroke:#40c057}
.term.fail.reached circle{fill:#3d1a1d;stroke:#ff6b6b}
.e path{stroke:#5c6678}.e.taken path{stroke:#51cf66}.e text{fill:#aab3c2}
.e.taken text{fill:#69db7c}.e rect{fill:#141820}#a path{fill:#5c6678}#at path{fill:#51cf66}
.badge{fill:#9775fa}}
"""


@dataclass
class _Box:
    """A placed node: its centre, and half its size (terminals are circles)."""

    x: float
    y: float
    half_w: float
    half_h: float


def instance_svg(state: WorkflowInstanceState) -> str:
    """The instance's schema with its path taken and current phase highlighted."""
    return workflow_svg(state.workflow_schema, state)


def workflow_svg(
    schema: dict[str, Any] | Workflow, instance: WorkflowInstanceState | None = None
) -> str:
    """An SVG document of ``schema``; with ``instance``, its path and position marked."""
    workflow = as_workflow(schema)
    names = workflow.phase_names
    edges = labelled_edges(workflow)
    terminals = [t for t in (END, FAIL) if any(e.target == t for e in edges)]
    back = _back_edges(names[0], edges)
    layers = _layers(names, edges, back)
    depth = max(layers.values()) + 1
    rows: list[list[str]] = [[START]] + [[] for _ in range(depth)] + [terminals]
    for name in names:
        rows[layers[name] + 1].append(name)
    _order_rows(rows, edges, back)
    boxes = _place(rows)
    lanes = _lanes(rows, edges, back, boxes)
    right_ends = [x + _label_room(edge.label) for edge, x in lanes.items()]
    width = max([b.x + b.half_w + MARGIN for b in boxes.values()] + right_ends)
    height = MARGIN * 2 + (len(rows) - 1) * (NODE_H + GAP_Y) + NODE_H
    marks = _marks(instance)
    taken = transitions_taken(instance) if instance is not None else Counter()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-label="{_xml(workflow.name)} workflow">',
        f"<style>{_STYLE}</style>",
        '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z"/></marker>'
        '<marker id="at" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z"/></marker>'
        "</defs>",
    ]
    first = Edge(START, names[0], "", dotted=False)
    started = instance is not None
    taken[START, names[0]] = 1 if started else 0
    # Straight edges pick their label places first, then the lanes, each avoiding the
    # boxes and the labels already placed.
    obstacles = [_rect(box, 3) for box in boxes.values()]
    order = sorted([first, *edges], key=lambda edge: edge in lanes)
    placed = {
        edge: _edge(
            edge, boxes, lanes.get(edge), taken.get((edge.source, edge.target), 0), obstacles
        )
        for edge in order
    }
    drawn = [placed[edge] for edge in [first, *edges]]
    parts += [path for path, _ in drawn]
    for phase in workflow.phases:
        parts.append(_phase_node(phase, boxes[phase.name], marks.get(phase.name), instance))
    parts.append(_terminal(START, boxes[START], reached=started))
    reached = {target for _, target in taken}
    for terminal in terminals:
        parts.append(_terminal(terminal, boxes[terminal], reached=terminal in reached))
    parts += [label for _, label in drawn if label]  # on top, so nodes never hide them
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _back_edges(first: str, edges: list[Edge]) -> set[Edge]:
    """Edges closing a loop, found by an iterative depth-first walk from ``first``."""
    out: dict[str, list[Edge]] = {}
    for edge in edges:
        out.setdefault(edge.source, []).append(edge)
    back: set[Edge] = set()
    on_stack = {first}
    seen = {first}
    stack = [(first, iter(out.get(first, [])))]
    while stack:
        node, pending = stack[-1]
        step = next(pending, None)
        if step is None:
            stack.pop()
            on_stack.discard(node)
        elif step.target in on_stack:
            back.add(step)
        elif step.target not in seen:
            seen.add(step.target)
            on_stack.add(step.target)
            stack.append((step.target, iter(out.get(step.target, []))))
    return back


def _layers(names: list[str], edges: list[Edge], back: set[Edge]) -> dict[str, int]:
    """Longest-path layer of each phase over the forward edges (Kahn's order)."""
    forward = [e for e in edges if e not in back and e.target in names and e.source != e.target]
    incoming = dict.fromkeys(names, 0)
    for edge in forward:
        incoming[edge.target] += 1
    layer = dict.fromkeys(names, 0)
    ready = [name for name in names if incoming[name] == 0]
    while ready:
        node = ready.pop()
        for edge in forward:
            if edge.source == node:
                layer[edge.target] = max(layer[edge.target], layer[node] + 1)
                incoming[edge.target] -= 1
                if incoming[edge.target] == 0:
                    ready.append(edge.target)
    return layer


def _order_rows(rows: list[list[str]], edges: list[Edge], back: set[Edge]) -> None:
    """Sort each row by the mean column of its predecessors (one barycentre sweep)."""
    column: dict[str, float] = {START: 0.0}
    for row in rows[1:]:
        weights = {}
        for index, node in enumerate(row):
            sources = [column[e.source] for e in edges if e.target == node and e not in back]
            weights[node] = sum(sources) / len(sources) if sources else float(index)
        row.sort(key=lambda node: weights[node])
        for index, node in enumerate(row):
            column[node] = index - (len(row) - 1) / 2


def _place(rows: list[list[str]]) -> dict[str, _Box]:
    """Centre every row on the widest one."""
    widest = max(len(row) for row in rows)
    width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X
    boxes = {}
    for index, row in enumerate(rows):
        y = MARGIN + index * (NODE_H + GAP_Y) + NODE_H / 2
        span = len(row) * NODE_W + (len(row) - 1) * GAP_X
        left = (width - span) / 2
        for column, node in enumerate(row):
            x = left + column * (NODE_W + GAP_X) + NODE_W / 2
            half = TERMINAL_R if node in (START, END, FAIL) else None
            boxes[node] = _Box(x, y, half or NODE_W / 2, half or NODE_H / 2)
    return boxes


def _lanes(
    rows: list[list[str]], edges: list[Edge], back: set[Edge], boxes: dict[str, _Box]
) -> dict[Edge, float]:
    """The x of the vertical lane of each edge that cannot go straight down.

    Loops arc up on the right, edges skipping rows arc down on the left, each in its own
    lane just outside the rows it spans. Boxes are shifted right if left lanes need room.
    """
    row_of = {node: index for index, row in enumerate(rows) for node in row}
    lanes: dict[Edge, float] = {}
    right = left = 0
    for edge in edges:
        low, high = sorted((row_of[edge.source], row_of[edge.target]))
        spanned = [boxes[node] for row in rows[low : high + 1] for node in row]
        if edge in back:
            right += 1
            lanes[edge] = max(b.x + b.half_w for b in spanned) + BADGE_ROOM + LANE_GAP * right
        elif high - low > 1:
            left += 1
            lanes[edge] = min(b.x - b.half_w for b in spanned) - LANE_GAP * left
    shift = max([_label_room(edge.label) - x for edge, x in lanes.items()] + [0.0])
    for box in boxes.values():
        box.x += shift
    return {edge: x + shift for edge, x in lanes.items()}


Rect = tuple[float, float, float, float]
"""left, top, right, bottom"""
Point = tuple[float, float]


def _edge(
    edge: Edge, boxes: dict[str, _Box], lane: float | None, taken: int, obstacles: list[Rect]
) -> tuple[str, str]:
    """The edge's path group and its label group (drawn later, above the nodes).

    The label goes to the first of its places (best first) that overlaps no box and no
    label already placed; its rectangle joins ``obstacles``.
    """
    if lane is None:
        data, places = _curve(boxes[edge.source], boxes[edge.target])
    else:
        data, places = _lane_path(edge, boxes, lane)
    kind = "e" + (" fallback" if edge.dotted else "") + (" taken" if taken else "")
    marker = "at" if taken else "a"
    path = f'<path d="{data}" marker-end="url(#{marker})"/>'
    text = edge.label
    if taken > 1:
        text = f"{text} {TIMES}{taken}" if text else f"{TIMES}{taken}"
    label = ""
    if text:
        shown = _fit(text, LABEL_CHARS)
        w = _label_width(shown)
        rects = [(x - w / 2, y - 9, x + w / 2, y + 8) for x, y in places]
        free = [rect for rect in rects if not any(_overlap(rect, o) for o in obstacles)]
        left, top, right, _ = (free or rects)[0]
        obstacles.append((left, top, right, top + 17))
        label = (
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="17" rx="4"/>'
            f'<text x="{(left + right) / 2:.1f}" y="{top + 13:.1f}" '
            f'text-anchor="middle">{_xml(shown)}</text>'
        )
    title = f"<title>{_xml(edge.source)} \u2192 {_xml(edge.target)}"
    title += f": {_xml(edge.label)}</title>" if edge.label else "</title>"
    ends = f'data-from="{_xml(edge.source)}" data-to="{_xml(edge.target)}"'
    return (
        f'<g class="{kind}" {ends}>{title}{path}</g>',
        f'<g class="{kind} label" {ends}>{label}</g>' if label else "",
    )


def _curve(source: _Box, target: _Box) -> tuple[str, list[Point]]:
    """A straight-down edge: a cubic from the bottom of ``source`` to the top of ``target``."""
    x0, y0 = source.x, source.y + source.half_h
    x3, y3 = target.x, target.y - target.half_h
    bend = max((y3 - y0) / 2, 20.0)
    c1, c2 = (x0, y0 + bend), (x3, y3 - bend)
    data = f"M{x0:.1f} {y0:.1f}C{c1[0]:.1f} {c1[1]:.1f} {c2[0]:.1f} {c2[1]:.1f} {x3:.1f} {y3:.1f}"
    places = []
    for t in (0.5, 0.35, 0.65, 0.2, 0.8):
        u = 1 - t
        places.append(
            (
                u**3 * x0 + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t**3 * x3,
                u**3 * y0 + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t**3 * y3,
            )
        )
    return data, places


def _lane_path(edge: Edge, boxes: dict[str, _Box], lane: float) -> tuple[str, list[Point]]:
    """An edge around the rows it spans: out to its lane through the gap between rows
    (or straight out of the side when nothing stands beside the box), along the lane,
    and back in the same way, so it crosses no box. Labels sit on the lane."""
    source, target = boxes[edge.source], boxes[edge.target]
    side = 1 if lane > source.x else -1
    self_loop = edge.source == edge.target
    lift = source.half_h / 2 if self_loop else 0.0
    if _outermost(source, boxes, side):
        points = [(source.x + side * source.half_w, source.y - lift)]
    else:
        bottom = source.y + source.half_h
        points = [(source.x, bottom), (source.x, bottom + GAP_Y / 2)]
    points.append((lane, points[-1][1]))
    if _outermost(target, boxes, side):
        end = target.y + lift
        points += [(lane, end), (target.x + side * target.half_w, end)]
    else:
        top = target.y - target.half_h
        points += [(lane, top - GAP_Y / 2), (target.x, top - GAP_Y / 2), (target.x, top)]
    y_start = next(y for x, y in points if x == lane)
    y_end = [y for x, y in points if x == lane][-1]
    places = [(lane, y_start + (y_end - y_start) * t) for t in (0.5, 0.35, 0.65, 0.2, 0.8)]
    return _rounded(points), places


def _outermost(box: _Box, boxes: dict[str, _Box], side: int) -> bool:
    """Whether no other box of ``box``'s row lies beyond it on ``side``."""
    return not any(other.y == box.y and (other.x - box.x) * side > 0 for other in boxes.values())


def _rounded(points: list[Point], radius: float = 8.0) -> str:
    """SVG path data through ``points`` with rounded corners."""
    data = f"M{points[0][0]:.1f} {points[0][1]:.1f}"
    for before, corner, after in zip(points, points[1:], points[2:], strict=False):
        r_in = min(radius, _distance(before, corner) / 2)
        r_out = min(radius, _distance(corner, after) / 2)
        a = _toward(corner, before, r_in)
        b = _toward(corner, after, r_out)
        data += f"L{a[0]:.1f} {a[1]:.1f}Q{corner[0]:.1f} {corner[1]:.1f} {b[0]:.1f} {b[1]:.1f}"
    return data + f"L{points[-1][0]:.1f} {points[-1][1]:.1f}"


def _distance(a: Point, b: Point) -> float:
    return float(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5)


def _toward(start: Point, goal: Point, length: float) -> Point:
    whole = _distance(start, goal) or 1.0
    return (
        start[0] + (goal[0] - start[0]) * length / whole,
        start[1] + (goal[1] - start[1]) * length / whole,
    )


def _rect(box: _Box, pad: float = 0.0) -> Rect:
    return (
        box.x - box.half_w - pad,
        box.y - box.half_h - pad,
        box.x + box.half_w + pad,
        box.y + box.half_h + pad,
    )


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_width(text: str) -> float:
    return len(text) * 6.2 + 10


def _label_room(label: str) -> float:
    """Space a lane needs beside it so that its label (centred on it) is not cut off."""
    return MARGIN / 2 + (_label_width(_fit(label, LABEL_CHARS) + " x9") / 2 if label else MARGIN)


def _phase_node(
    phase: Phase, box: _Box, mark: str | None, instance: WorkflowInstanceState | None
) -> str:
    name, title = phase.name, phase.title
    heading = title or name
    details = [name] if title else []
    if phase.requires_approval:
        details.append("needs approval")
    if phase.max_visits is not None:
        details.append(f"max {phase.max_visits} visits")
    if phase.exit_requires.requires_anything:
        details.append("exit gate")
    kind = "n" + (" gate" if phase.requires_approval else "") + (f" {mark}" if mark else "")
    left, top = box.x - box.half_w, box.y - box.half_h
    sub_y = box.y + 13 if details else box.y
    parts = [
        f'<g class="{kind}" data-phase="{_xml(name)}"><title>{_xml(heading)}</title>',
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{NODE_W}" height="{NODE_H}" rx="10"/>',
        f'<text class="t" x="{box.x:.1f}" y="{(box.y - 3 if details else box.y + 5):.1f}" '
        f'text-anchor="middle">{_xml(_fit(heading, 27))}</text>',
    ]
    if details:
        parts.append(
            f'<text class="s" x="{box.x:.1f}" y="{sub_y:.1f}" text-anchor="middle">'
            f"{_xml(_fit(' · '.join(details), 32))}</text>"
        )
    visits = instance.visits.get(name, 0) if instance is not None else 0
    if visits > 1:
        bx, by = left + NODE_W - 6, top + 6
        parts.append(
            f'<circle class="badge" cx="{bx:.1f}" cy="{by:.1f}" r="11"/>'
            f'<text class="badge-t" x="{bx:.1f}" y="{by + 3.5:.1f}" '
            f'text-anchor="middle">{TIMES}{visits}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _terminal(node: str, box: _Box, *, reached: bool) -> str:
    label = {START: "start", END: "end", FAIL: "fail"}[node]
    kind = "term" + (" fail" if node == FAIL else "") + (" reached" if reached else "")
    return (
        f'<g class="{kind}" data-node="{node}">'
        f'<circle cx="{box.x:.1f}" cy="{box.y:.1f}" r="{TERMINAL_R}"/>'
        f'<text x="{box.x:.1f}" y="{box.y + 4:.1f}" text-anchor="middle">{label}</text></g>'
    )


def _marks(instance: WorkflowInstanceState | None) -> dict[str, str]:
    """Phase -> ``done``, ``current``, ``waiting`` (paused) or ``failed``."""
    if instance is None:
        return {}
    marks = {entry.phase: "done" for entry in instance.history if entry.status == "completed"}
    status = instance.status
    if status is InstanceStatus.FAILED:
        marks[instance.current_phase] = "failed"
    elif status is InstanceStatus.PAUSED:
        marks[instance.current_phase] = "waiting"
    elif not status.is_finished:
        marks[instance.current_phase] = "current"
    return marks


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _xml(text: str) -> str:
    """``text`` safe inside an XML text node or quoted attribute.

    >>> _xml('a<b\x01"')
    'a&lt;b\u2401&quot;'
    """
    return escape(_CONTROL.sub(_picture, text))


def _picture(found: re.Match[str]) -> str:
    """The visible stand-in of a control character (U+2400 block; U+FFFD for C1)."""
    code = ord(found.group())
    return chr(0x2400 + code) if code < 0x20 else "\u2421" if code == 0x7F else "\ufffd"


def _fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (boxes have a fixed width)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
