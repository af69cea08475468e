"""The page in a real Chromium (Playwright driving Debian's browser): navigation,
timeline and artifacts, escaping, live updates from another process, and approving.

Skipped with the reason when Playwright or Chromium is missing, unless ``CI`` is set.
Screenshots go to each test's temporary folder.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatflow.ui import UIServer

from ._support import (
    HOSTILE,
    Served,
    serving_with_actions,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving_with_actions(tmp_path) as served:
        yield served


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("dialog", lambda dialog: errors.append(f"dialog opened: {dialog.message}"))
    yield opened
    context.close()
    assert errors == []  # no script error, and no alert() from stored text


def test_overview_to_instance_shows_timeline_and_artifacts(
    page: Any, served: Served, tmp_path: Path
) -> None:
    app, engine, ids = served
    page.goto(app.url)
    assert page.url == f"{app.origin}/"  # the token left the address bar
    rows = page.locator("#overview tbody tr")
    rows.first.wait_for()
    assert rows.count() == len(engine.list_features())
    page.screenshot(path=tmp_path / "overview.png", full_page=True)
    page.fill("input.filter", "payments")
    assert page.locator("#overview tbody tr:visible").count() == 1
    page.fill("input.filter", "")

    page.click("a:text-is('feat_login')")
    page.locator("#feature tbody tr").first.wait_for()
    assert page.locator("#feature tbody tr").count() == 2
    page.click(f"a:text-is('{ids['completed']}')")

    page.locator("#instance .tl-row").first.wait_for()
    page.locator("img.graph[data-loaded]").wait_for()
    state = engine.get_workflow_instance_status(ids["completed"])
    assert state is not None
    phases = page.locator(".tl-row .tl-phase").all_text_contents()
    assert phases == [entry.phase for entry in state.history]
    assert page.locator(".tl-row[data-phase='code'] .visit").all_text_contents() == ["visit 2"]
    artifacts = page.locator(".artifact")
    assert artifacts.count() == len(state.history)
    assert page.locator(".artifact .verified.ok").count() == len(state.history)
    newest = artifacts.first
    assert newest.get_attribute("data-task") == "summary"
    assert newest.locator(".pane pre").first.text_content() == "# summary\nWrite the summary."
    assert "sha256" in (newest.locator(".sha.ok").first.text_content() or "")
    assert page.locator("[data-verify]").count() == 1
    page.screenshot(path=tmp_path / "instance.png", full_page=True)
    assert (tmp_path / "overview.png").stat().st_size > 10_000
    assert (tmp_path / "instance.png").stat().st_size > 10_000


def test_stored_markup_shows_as_text_and_runs_nothing(page: Any, served: Served) -> None:
    app, _, ids = served
    page.goto(app.url)
    page.goto(f"{app.origin}/#/instance/{ids['running']}")
    shown = page.locator(".artifact[data-task='design'] .pane pre")
    shown.first.wait_for()
    assert shown.nth(0).text_content() == HOSTILE
    assert shown.nth(1).text_content() == f"response {HOSTILE}"
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("img[src='x']").count() == 0


def test_step_by_another_process_appears_without_reload(
    page: Any, served: Served, tmp_path: Path
) -> None:
    app, _, ids = served
    iid = ids["running"]
    page.goto(app.url)
    loads: list[int] = []
    page.on("load", lambda _: loads.append(1))
    page.goto(f"{app.origin}/#/instance/{iid}")
    rows = page.locator("#instance .tl-row")
    rows.first.wait_for()
    before, loaded = rows.count(), len(loads)
    step = (
        "import sys; from chatflow import WorkflowEngine; "
        "WorkflowEngine(storage_dir=sys.argv[1]).trigger_next_step(sys.argv[2], {'ok': 1})"
    )
    subprocess.run([sys.executable, "-c", step, str(tmp_path / "store"), iid], check=True)
    stepped = time.monotonic()
    page.locator("#instance .tl-row").nth(before).wait_for(timeout=5000)
    elapsed = time.monotonic() - stepped
    assert elapsed <= 2.0, f"the step took {elapsed:.2f} s to appear"
    assert rows.count() == before + 1
    assert len(loads) == loaded  # updated in place, not reloaded
    assert page.locator(".tl-row").last.get_attribute("data-phase") == "code"


def test_approve_a_gated_phase_with_actions_on(page: Any, served: Served, tmp_path: Path) -> None:
    app, engine, ids = served
    iid = ids["gated"]
    page.goto(app.url)
    page.goto(f"{app.origin}/#/instance/{iid}")
    page.locator(".banner.b-paused").wait_for()
    assert "sign_off" in (page.locator(".banner.b-paused").text_content() or "")
    page.click("button[data-action='approve']")
    page.fill("#act-actor", "dev_carol")
    page.fill("#act-note", "release notes read")
    page.screenshot(path=tmp_path / "approve-dialog.png")
    page.click("#act-go")
    page.locator("#instance .title-row .pill.s-running").wait_for()
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.status.value == "running"
    approved = engine.get_workflow_history(iid)[-1]
    assert approved.data["approved_by"] == "dev_carol"
    assert approved.data["note"] == "release notes read"
    page.locator(".note.m-resumed").wait_for()
    assert "approved by dev_carol" in (page.locator(".note.m-resumed").text_content() or "")
    page.screenshot(path=tmp_path / "approved.png", full_page=True)


def test_a_refused_action_is_worded_as_the_command_words_it(page: Any, served: Served) -> None:
    """The page shows the server's error, in the command's terms (``USER_TERMS``)."""
    app, engine, ids = served
    iid = ids["gated"]
    page.goto(app.url)
    page.goto(f"{app.origin}/#/instance/{iid}")
    page.locator(".banner.b-paused").wait_for()
    page.click("button[data-action='reject']")
    page.fill("#act-actor", "dev_carol")
    engine.resume(iid, approved_by="dev_bob")  # meanwhile, elsewhere: approved, then
    engine.pause(iid, "lunch", actor="dev_bob")  # paused by hand: nothing to reject
    page.click("#act-go")
    shown = page.locator("#act-error")
    shown.filter(has_text="not waiting for approval").wait_for()
    text = shown.text_content() or ""
    assert f"use chatflow resume {iid} or chatflow cancel {iid}" in text
    assert "()" not in text


def test_a_manual_resume_shows_as_a_resume_not_an_approval(page: Any, served: Served) -> None:
    """Issue 20: only a resume that ends an approval pause is an approval decision."""
    app, engine, ids = served
    iid = ids["running"]
    engine.pause(iid, "lunch", actor="dev_alice")
    engine.resume(iid, approved_by="dev_alice", note="back")  # a manual pause
    engine.pause(iid, "meeting", actor="dev_alice")
    engine.resume(iid, actor="dev_bob")
    page.goto(app.url)
    page.goto(f"{app.origin}/#/instance/{iid}")
    page.locator(".note.m-resumed").first.wait_for()
    notes = page.locator(".note.m-resumed").all_text_contents()
    assert notes == ["resumed — \u201cback\u201d", "resumed"]
    logged = page.locator("tr.ev-resumed td:nth-child(2)").all_text_contents()
    assert logged == ["resumed", "resumed — \u201cback\u201d"]  # newest first
    approvals = page.locator(".chip2", has_text="Approvals").locator(".chip-v")
    assert approvals.text_content() == "0"


def test_read_only_page_offers_no_actions(browser: Any, served: Served) -> None:
    _, engine, ids = served
    app = UIServer(engine).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(app.url)
        page.goto(f"{app.origin}/#/instance/{ids['gated']}")
        page.locator(".banner.b-paused").wait_for()
        assert page.locator("button[data-action]").count() == 0
        assert page.locator("#mode").text_content() == "read-only"
    finally:
        context.close()
        app.shutdown()


def test_files_touched_show_on_their_visit(page: Any, served: Served, tmp_path: Path) -> None:
    """What a hook records (``record_files``) appears on the visit's row, from the view."""
    app, engine, ids = served
    iid = ids["running"]
    written = tmp_path / "login.py"
    written.write_text("print('hi')\n", encoding="utf-8")
    files = engine.record_files(iid, [written], root=tmp_path, actor="claude-code")
    page.goto(app.url)
    page.goto(f"{app.origin}/#/instance/{iid}")
    shown = page.locator("#instance .tl-row .files code")
    shown.first.wait_for()
    assert shown.count() == 1
    assert (shown.first.text_content() or "").startswith("login.py " + files[0]["sha256"][:12])
    assert shown.first.get_attribute("title") == "sha256 " + files[0]["sha256"]


def test_spend_per_phase_and_allowing_more_from_the_page(
    page: Any, served: Served, tmp_path: Path
) -> None:
    """Issue 19: spend per phase as bars, budgets with their share, the wait under a
    deadline, and approving a budget pause allows more (what the server's view says)."""
    app, engine, _ = served
    schema = {
        "name": "spend_page",
        "budget": {"cost_usd": 1},
        "phases": [
            {"name": "code"},
            {"name": "review", "deadline": "4h", "deadline_of": "phase"},
        ],
    }
    iid = engine.start_workflow_instance(schema, {}, "feat_spend", meta={"actor": "dev_alice"})
    engine.record_usage(iid, input_tokens=900, output_tokens=100, cost_usd=0.5)
    engine.trigger_next_step(iid, {"cost_usd": 0.75})  # crosses the budget: paused
    page.goto(app.url)
    page.goto(f"{app.origin}/#/instance/{iid}")
    page.locator("#spend").wait_for()
    assert "Over budget" in (page.locator(".banner.b-paused").first.text_content() or "")
    assert page.locator("#spend tr[data-phase='code']").count() == 1
    assert "$1.2500" in (page.locator("#spend h2").text_content() or "")
    assert "$1.25 of $1.00" in (page.locator("#budgets").text_content() or "")
    assert "phase for" in (page.locator(".facts").text_content() or "")
    page.screenshot(path=tmp_path / "spend.png", full_page=True)
    page.click("button[data-action='approve']")
    page.fill("#act-actor", "dev_carol")
    page.fill("#act-note", "cost_usd=1")
    page.click("#act-go")
    page.locator("#instance .title-row .pill.s-running").wait_for()
    extended = [e for e in engine.get_workflow_history(iid) if e.kind.value == "budget_extended"]
    assert extended[0].data == {"by": "dev_carol", "more": {"cost_usd": 1.0}, "note": None}
    page.goto(f"{app.origin}/#/feature/feat_spend")
    page.locator("#feature #spend").wait_for()
    assert "$1.2500" in (page.locator("#feature #spend h2").text_content() or "")
