"""One view model, read by every front end (issue 16).

The same instances -- running, looped back, failed, paused for approval, paused for
risk, paused by hand, forked, upgraded, cancelled, completed, one whose response text
was edited, and one whose log is damaged -- go through ``chatflow.views``, the real
``chatflow ... --json`` command, ``/api/`` of a real ``UIServer`` over HTTP and the MCP
operations, and every one of them reports the same progress, allowed actions, visit
numbers and verification, and the same overview totals (``views.overview_totals``). A
real Chromium then checks that the page offers exactly the allowed actions and shows the
server's totals, and shows the damaged instance as unreadable without breaking.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import launched
from chatflow import WorkflowEngine, views
from chatflow.agent import operations
from chatflow.ui import UIServer
from cli_runner import run_in_process
from repo_paths import EXAMPLES

GATED: dict[str, Any] = {
    "name": "gated",
    "version": 1,
    "phases": [
        {"name": "draft"},
        {"name": "sign_off", "requires_approval": True},
        {"name": "ship"},
    ],
}
GATED_2: dict[str, Any] = {**GATED, "version": 2, "phases": [*GATED["phases"], {"name": "notes"}]}

World = tuple[WorkflowEngine, dict[str, str], Path]


def _chatcoder(engine: WorkflowEngine, feature: str, steps: list[dict[str, Any]]) -> str:
    iid = engine.start_workflow_instance(
        schema_name="chatcoder_feature", initial_context={}, feature_id=feature
    )
    for data in steps:
        engine.record_task_artifacts(iid, f"prompt {len(data)}", f"response {data}")
        engine.trigger_next_step(iid, data, meta={"actor": "ai_agent"})
    return iid


LOOP = [{}, {}, {}, {"failed": 2}]  # analyze, design, code, test -> back to code


def _build(engine: WorkflowEngine, store: Path) -> dict[str, str]:
    engine.register_schema(EXAMPLES / "chatcoder_feature.yaml")
    engine.register_schema(GATED)
    engine.register_schema(GATED_2)
    ids = {
        "running": _chatcoder(engine, "feat_run", [{}]),
        "looped": _chatcoder(engine, "feat_run", LOOP),
        "completed": _chatcoder(
            engine, "feat_done", [*LOOP, {}, {"failed": 0}, {"verdict": "approved"}, {}]
        ),
        "risk": _chatcoder(engine, "feat_wait", [{}, {"risk": 90}]),
    }
    failed = _chatcoder(engine, "feat_bad", [{}])
    engine.fail_phase(failed, "AI call timed out", actor="ai_agent")
    ids["failed"] = failed
    approval = engine.start_workflow_instance(None, {}, "feat_wait", schema_name="gated")
    engine.trigger_next_step(approval, {})
    ids["approval"] = approval
    manual = _chatcoder(engine, "feat_wait", [{}])
    engine.pause(manual, "waiting for the spec", actor="dev_alice")
    ids["manual"] = manual
    ids["forked"] = engine.fork(ids["looped"], 3, actor="dev_alice")
    upgraded = engine.start_workflow_instance(
        None, {}, "feat_up", schema_name="gated", schema_version=1
    )
    engine.upgrade_instance(upgraded, to_version=2, actor="dev_alice")
    ids["upgraded"] = upgraded
    cancelled = _chatcoder(engine, "feat_bad", [{}])
    engine.cancel(cancelled, "not needed", actor="dev_alice")
    ids["cancelled"] = cancelled
    edited = _chatcoder(engine, "feat_edit", [{}])
    text = store / "instances" / edited / "tasks" / "analyze.v1.ai_response.md"
    text.write_text(text.read_text(encoding="utf-8") + " (edited)", encoding="utf-8")
    ids["edited"] = edited
    damaged = _chatcoder(engine, "feat_bad", [{}])
    (store / "instances" / damaged / "events.jsonl").write_text("{broken\n", encoding="utf-8")
    ids["damaged"] = damaged
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    store = tmp_path_factory.mktemp("one_model") / "store"
    engine = WorkflowEngine(storage_dir=store, durable=False)
    return engine, _build(engine, store), store


@pytest.fixture(scope="module")
def app(world: World) -> Iterator[UIServer]:
    server = UIServer(world[0], allow_actions=True).start()
    yield server
    server.shutdown()


def _cli(store: Path, *args: str) -> tuple[int, Any]:
    """``chatflow --dir STORE args --json`` (in process): its exit code and JSON."""
    result = run_in_process(
        ["--dir", str(store), *args, "--json"], cwd=store.parent, env=os.environ
    )
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout) if result.stdout else None


def _api(app: UIServer, path: str) -> tuple[int, Any]:
    """``GET /api/<path>`` as a script does (Bearer token): status and JSON."""
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        connection.request(
            "GET",
            "/api/" + path,
            headers={"Authorization": f"Bearer {app.token}", "Host": f"127.0.0.1:{app.port}"},
        )
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        connection.close()


def _model(view: dict[str, Any]) -> dict[str, Any]:
    """What every front end must agree on: progress, actions, visits, verification."""
    return {
        "status": view["status"],
        "progress": view["progress"],
        "actions": view["actions"],
        "finished": view["finished"],
        "visits": [(row["phase"], row["visit"]) for row in view["timeline"]],
        "verification": [
            None
            if row["artifacts"] is None
            else {
                key: row["artifacts"][key]
                for key in ("verified", "prompt_verified", "response_verified", "prompt_sha256")
            }
            for row in view["timeline"]
        ],
        "summary": view["summary"],
    }


READABLE = (
    "running",
    "looped",
    "completed",
    "risk",
    "failed",
    "approval",
    "manual",
    "forked",
    "upgraded",
    "cancelled",
    "edited",
)


def test_the_views_say_what_each_instance_is(world: World) -> None:
    engine, ids, _ = world
    found = {}
    for role in READABLE:
        state = engine.get_workflow_instance_status(ids[role])
        assert state is not None
        found[role] = _model(views.instance_view(state, views.artifact_checks(engine, state)))
    assert found["completed"]["progress"] == 1.0
    for role in ("looped", "failed", "forked", "running", "cancelled"):
        assert found[role]["progress"] < 1.0, role  # a loop or a failure is never 100 %
    assert [visit for phase, visit in found["looped"]["visits"] if phase == "code"] == [1, 2]
    assert found["forked"]["visits"] == found["looped"]["visits"][:4]  # a fresh visit at 3
    assert found["approval"]["actions"] == ["approve", "reject", "cancel"]
    assert found["risk"]["actions"] == ["approve", "reject", "cancel"]
    assert found["manual"]["actions"] == ["resume", "cancel"]
    assert found["failed"]["actions"] == ["retry", "cancel"]
    assert found["running"]["actions"] == ["pause", "retry", "cancel"]
    assert found["cancelled"]["actions"] == [] and found["completed"]["actions"] == []
    assert found["cancelled"]["finished"] and not found["manual"]["finished"]
    assert found["looped"]["summary"]["visits"] == 5
    assert found["failed"]["summary"]["failures"] == 1
    assert found["risk"]["summary"]["pauses"] == 1
    assert found["risk"]["summary"]["waiting_since"] is not None  # still waiting
    assert found["cancelled"]["summary"]["waiting_since"] is None
    edited = found["edited"]["verification"][0]
    assert edited is not None
    assert edited["verified"] is False and edited["prompt_verified"] is True
    assert edited["response_verified"] is False and len(edited["prompt_sha256"]) == 64
    assert found["completed"]["verification"][0]["verified"] is True  # type: ignore[index]


def test_visit_numbers_have_one_owner(world: World) -> None:
    """The event log's ``phase_entered`` visits, the views' rows and the task keys of
    recorded visits all come from ``history.visit_numbers``."""
    from chatflow.domain.history import timeline, visit_numbers
    from chatflow.domain.models import EventKind
    from chatflow.domain.schema import task_key

    engine, ids, _ = world
    for role in ("looped", "forked", "completed"):
        state = engine.get_workflow_instance_status(ids[role])
        assert state is not None
        numbers = visit_numbers(state.history)
        entered = [e.data["visit"] for e in timeline(state) if e.kind is EventKind.PHASE_ENTERED]
        rows = views.instance_view(state)["timeline"]
        assert entered == [row["visit"] for row in rows] == numbers, role
        for entry, visit in zip(state.history, numbers, strict=True):
            assert entry.task in ("", task_key(entry.phase, visit)), role
    looped = engine.get_workflow_instance_status(ids["looped"])
    assert looped is not None and 2 in visit_numbers(looped.history)


def test_cli_api_and_mcp_return_the_same_model(world: World, app: UIServer) -> None:
    engine, ids, store = world
    for role in READABLE:
        iid = ids[role]
        state = engine.get_workflow_instance_status(iid)
        assert state is not None
        expected = views.instance_view(state, views.artifact_checks(engine, state))
        code, shown = _cli(store, "show", iid)
        assert code == (1 if role == "edited" else 0), role  # an unverified text is exit 1
        status, served = _api(app, f"instances/{iid}")
        assert status == 200
        document = operations.instance_document(engine, iid)
        for view in (shown, served, document):
            assert _model(view) == _model(expected), role
        short = operations.status(engine, instance_id=iid)["instance"]
        assert (short["progress"], short["actions"]) == (expected["progress"], expected["actions"])
        _, artifacts = _api(app, f"instances/{iid}/artifacts")
        recorded = [row for row in expected["timeline"] if row["artifacts"] is not None]
        assert [(a["phase"], a["visit"], a["history_index"]) for a in artifacts] == [
            (row["phase"], row["visit"], row["index"]) for row in recorded
        ]
        assert [
            (a["verified"], a["prompt_verified"], a["response_verified"], a["prompt_sha256"])
            for a in artifacts
        ] == [
            (c["verified"], c["prompt_verified"], c["response_verified"], c["prompt_sha256"])
            for c in (row["artifacts"] for row in recorded)
        ]


def test_every_listing_shows_the_damaged_instance_as_unreadable(
    world: World, app: UIServer
) -> None:
    engine, ids, store = world
    code, listed = _cli(store, "list")
    assert code == 1  # the damaged instance is warned about
    status, served = _api(app, "instances")
    assert status == 200
    summaries = engine.list_instances()
    summaries.sort(key=lambda summary: summary.created_at, reverse=True)
    expected = views.listed_rows(engine, summaries)
    assert listed == served == expected
    rows = {row["instance_id"]: row for row in expected}
    assert rows[ids["damaged"]]["status"] == views.UNREADABLE
    assert "events.jsonl" in rows[ids["damaged"]]["problem"]
    assert rows[ids["looped"]]["progress"] == _api(app, f"instances/{ids['looped']}")[1]["progress"]
    mcp = operations.feature(engine, "feat_bad")["instances"]
    assert mcp == [row for row in expected if row["feature_id"] == "feat_bad"]
    assert _api(app, "instances?feature=feat_bad")[1] == mcp
    status, error = _api(app, f"instances/{ids['damaged']}")
    assert status == 500 and error["type"] == "CorruptStateError"


def _totals(engine: WorkflowEngine) -> dict[str, Any]:
    """The totals as the views make them from the engine's roll-ups."""
    return views.overview_totals(
        views.feature_view(rollup) for rollup in engine.list_feature_rollups()
    )


def test_every_front_end_shows_the_same_totals(world: World, app: UIServer) -> None:
    engine, ids, store = world
    expected = _totals(engine)
    assert expected["features"] == 6 and expected["instances"] == len(ids)
    assert sum(expected["counts"].values()) == expected["instances"]
    assert expected["counts"]["paused"] == 3 and expected["counts"]["completed"] == 1
    assert expected["counts"]["failed"] == 1 and expected["counts"]["cancelled"] == 1
    code, shown = _cli(store, "features", "--totals")
    assert code == 0
    status, served = _api(app, "overview")
    assert status == 200
    mcp = operations.status(engine)
    assert shown["totals"] == served["totals"] == mcp["totals"] == expected
    assert served["totals"] == views.overview_totals(served["features"])  # they add up
    assert served["features"] == _api(app, "features")[1]  # the same roll-ups
    assert [f["feature_id"] for f in shown["features"]] == sorted(
        f["feature_id"] for f in served["features"]
    )
    assert _cli(store, "status", "--totals")[1]["totals"] == expected


def test_the_page_shows_the_servers_totals(world: World, app: UIServer) -> None:
    _, served = _api(app, "overview")
    totals = served["totals"]
    with launched() as browser:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.goto(app.url)
        page.locator("#overview .stat").first.wait_for()
        shown = page.locator("#overview .stat").evaluate_all(
            "(stats) => Object.fromEntries(stats.map((s) => "
            "[s.dataset.stat, s.querySelector('.stat-v').textContent]))"
        )
    counts = totals["counts"]
    assert shown == {
        "features": str(totals["features"]),
        "instances": str(totals["instances"]),
        "active": str(totals["active"]),
        "waiting": str(counts["paused"]),
        "failed": str(counts["failed"]),
        "completed": str(counts["completed"]),
        **({"cancelled": str(counts["cancelled"])} if counts["cancelled"] else {}),
    }
    assert totals["active"] == counts["created"] + counts["running"]


def test_the_page_offers_exactly_the_allowed_actions(world: World, app: UIServer) -> None:
    ids = world[1]
    with launched() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(app.url)
        for role in READABLE:
            iid = ids[role]
            page.goto(f"{app.origin}/#/instance/{iid}")
            page.locator(f"#instance h1:text-is('{iid}')").wait_for()
            page.locator("#instance .tl-row").first.wait_for()
            offered = page.locator("[data-action]").evaluate_all(
                "(buttons) => buttons.map((b) => b.dataset.action)"
            )
            _, view = _api(app, f"instances/{iid}")
            assert offered == view["actions"], role
        page.goto(f"{app.origin}/#/feature/feat_bad")
        row = page.locator(f"#feature tr.unreadable[data-instance='{ids['damaged']}']")
        row.wait_for()
        assert "unreadable" in (row.text_content() or "")
        assert page.locator("#feature tbody tr").count() == 3
        page.goto(f"{app.origin}/#/instance/{ids['damaged']}")
        page.locator("[data-error='CorruptStateError']").wait_for()
        assert errors == []


def test_the_cli_roll_up_fallback_is_the_engines_rule(world: World) -> None:
    """``views.rollup_of`` (what ``chatflow features`` falls back on when the store's
    counts cannot be read) gives the engine's roll-up for the same instances."""
    engine, ids, _ = world
    for feature in ("feat_run", "feat_wait", "feat_done", "feat_up"):
        states = [
            engine.get_workflow_instance_status(i) for i in engine.list_feature_instances(feature)
        ]
        readable = [state for state in states if state is not None]
        engine_view = views.feature_view(engine.get_feature_status(feature))
        assert views.rollup_of(feature, readable) == engine_view, feature
    readable = [
        state
        for i in engine.list_feature_instances("feat_bad")
        if i != ids["damaged"] and (state := engine.get_workflow_instance_status(i)) is not None
    ]
    fallback = views.rollup_of("feat_bad", readable, [ids["damaged"]])
    counted = views.feature_view(engine.get_feature_status("feat_bad"))
    assert fallback["total_instances"] == counted["total_instances"] - 1  # the damaged one
    assert fallback["unreadable_instances"] == [ids["damaged"]]
    # The store's counts still hold the damaged (running) instance; the fallback cannot.
    assert (fallback["status"], counted["status"]) == ("failed", "in_progress")
