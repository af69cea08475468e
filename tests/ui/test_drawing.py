"""The page's drawing measured in a real Chromium: on workflows with loops, fallbacks,
a ``$fail`` exit and a fork, labels do not overlap, edges go around the boxes they do
not join, timeline bars stay on their card, and the forked-from id is one line.

Geometry comes from the browser (``getBBox``, ``getPointAtLength``,
``getBoundingClientRect``), so a layout the page draws wrong fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.ui import UIServer
from chatflow.ui.graph import instance_svg

from ._support import EXAMPLES, GATED

pytestmark = pytest.mark.slow

LOOPS: dict[str, Any] = {
    "name": "loops_and_exits",
    "title": "Loops, fallbacks and a failure exit",
    "phases": [
        {"name": "analyze", "title": "Requirement analysis"},
        {"name": "code", "title": "Implementation", "max_visits": 3, "fallback": "summary"},
        {
            "name": "test",
            "title": "Tests",
            "transitions": [
                {"to": "code", "when": {"path": "trigger.failed", "op": ">", "value": 0}},
                {"to": "review"},
            ],
        },
        {
            "name": "review",
            "title": "Code review",
            "transitions": [
                {
                    "to": "summary",
                    "when": {"path": "trigger.verdict", "op": "==", "value": "approved"},
                },
                {"to": "$fail", "when": {"path": "trigger.abandon", "op": "exists"}},
                {"to": "code", "label": "changes requested"},
            ],
        },
        {"name": "summary", "title": "Summary for the developer", "max_visits": 2},
    ],
}

GEOMETRY = """() => {
  const box = (el) => {
    const b = el.getBBox();
    return [b.x, b.y, b.x + b.width, b.y + b.height];
  };
  const nodes = {};
  for (const g of document.querySelectorAll("g.n")) {
    nodes[g.dataset.phase] = box(g.querySelector("rect"));
  }
  for (const g of document.querySelectorAll("g.term")) {
    nodes[g.dataset.node] = box(g.querySelector("circle"));
  }
  const labels = [...document.querySelectorAll("g.label rect")].map(box);
  const edges = [...document.querySelectorAll("g.e:not(.label)")].map((g) => {
    const path = g.querySelector("path");
    const length = path.getTotalLength();
    const points = [];
    for (let at = 0; at <= length; at += 2) {
      const p = path.getPointAtLength(at);
      points.push([p.x, p.y]);
    }
    return { from: g.dataset.from, to: g.dataset.to, points };
  });
  return { nodes, labels, edges };
}"""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == []


@pytest.fixture
def store(tmp_path: Path) -> tuple[WorkflowEngine, dict[str, str]]:
    """Instances that looped, fell back, failed out, and a fork of one of them."""
    engine = WorkflowEngine(storage_dir=tmp_path / "store", durable=False)
    engine.register_schema(EXAMPLES / "chatcoder_feature.yaml")
    ids = {}
    looped = engine.start_workflow_instance(LOOPS, {}, "feat_draw", meta={"actor": "dev"})
    for trigger in [{}, {}, {"failed": 1}, {}, {"failed": 0}, {"verdict": "no"}, {}]:
        engine.trigger_next_step(looped, trigger)
    ids["looped"] = looped
    failed = engine.start_workflow_instance(LOOPS, {}, "feat_draw")
    for trigger in [{}, {}, {}, {"abandon": True}]:
        engine.trigger_next_step(failed, trigger)
    ids["failed_out"] = failed
    ids["fork"] = engine.fork(looped, 3)
    engine.trigger_next_step(ids["fork"], {})
    feature = engine.start_workflow_instance(
        schema_name="chatcoder_feature", initial_context={}, feature_id="feat_example"
    )
    for trigger in [{}, {}, {}, {"failed": 2}, {}, {"failed": 0}, {"verdict": "approved"}]:
        engine.trigger_next_step(feature, trigger)
    ids["example"] = feature
    ids["gated"] = engine.start_workflow_instance(GATED, {}, "feat_gated")
    return engine, ids


def inside(point: list[float], rect: list[float], margin: float = 1.5) -> bool:
    x, y = point
    return rect[0] + margin < x < rect[2] - margin and rect[1] + margin < y < rect[3] - margin


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("role", ["looped", "failed_out", "fork", "example", "gated"])
def test_graph_labels_apart_and_edges_around_boxes(
    page: Any, store: tuple[WorkflowEngine, dict[str, str]], role: str
) -> None:
    engine, ids = store
    state = engine.get_workflow_instance_status(ids[role])
    assert state is not None
    page.set_content(f"<!doctype html><body style='margin:0'>{instance_svg(state)}</body>")
    drawn = page.evaluate(GEOMETRY)
    nodes, labels, edges = drawn["nodes"], drawn["labels"], drawn["edges"]
    assert edges and len(nodes) >= 3
    for i, label in enumerate(labels):
        for other in labels[i + 1 :]:
            assert not overlap(label, other), (role, label, other)
        for name, rect in nodes.items():
            assert not overlap(label, rect), (role, label, name)
    for edge in edges:
        for name, rect in nodes.items():
            if name in (edge["from"], edge["to"]):
                continue
            crossing = [point for point in edge["points"] if inside(point, rect)]
            assert crossing == [], (role, edge["from"], edge["to"], "crosses", name)


def test_fork_page_keeps_bars_on_their_card_and_the_parent_id_on_one_line(
    page: Any, store: tuple[WorkflowEngine, dict[str, str]]
) -> None:
    engine, ids = store
    app = UIServer(engine).start()
    try:
        page.goto(app.url)
        page.goto(f"{app.origin}/#/instance/{ids['fork']}")
        page.locator("#instance .tl-row").first.wait_for()
        parent = page.locator(".facts .fact-id a")
        assert parent.text_content() == ids["looped"]
        for width in (1360, 1180, 1000, 700, 420):
            page.set_viewport_size({"width": width, "height": 1000})
            lines = parent.evaluate("(a) => a.getClientRects().length")
            assert lines == 1, f"the id wraps at a {width} px wide window"
            box = parent.bounding_box()
            fact = page.locator(".facts .fact-id").bounding_box()
            assert box["x"] + box["width"] <= fact["x"] + fact["width"] + 0.5, width
        state = engine.get_workflow_instance_status(ids["fork"])
        assert state is not None
        rows = page.locator("#instance .tl-row")
        assert rows.count() == len(state.history)
        fresh = rows.nth(state.parent["history_index"])  # the fork begins here, not before
        assert fresh.locator(".note.m-started").all_text_contents() == [
            f"forked from {ids['looped']}"
        ]
        assert page.locator(".tl-row .note.m-started").count() == 1
        for index in range(rows.count()):
            track = rows.nth(index).locator(".track-row").bounding_box()
            bar = rows.nth(index).locator(".bar").bounding_box()
            assert track["x"] - 0.5 <= bar["x"], index
            assert bar["x"] + bar["width"] <= track["x"] + track["width"] + 0.5, index
    finally:
        app.shutdown()
