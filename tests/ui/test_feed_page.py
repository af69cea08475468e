"""The page's live update follows the store's change feed (``/api/events``): one request
per tick whatever it shows, and it reloads only what changed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._support import Served, serving_with_actions
from .test_server import Client

STEP = (
    "import sys; from chatflow import WorkflowEngine; "
    "WorkflowEngine(storage_dir=sys.argv[1]).trigger_next_step(sys.argv[2], {'ok': 1})"
)
START = (
    "import sys; from chatflow import WorkflowEngine; WorkflowEngine(storage_dir=sys.argv[1])"
    ".start_workflow_instance({'name': 'w', 'phases': [{'name': 'a'}]}, {}, 'feat_brand_new')"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving_with_actions(tmp_path) as served:
        yield served


def test_api_events_follows_the_feed(served: Served, tmp_path: Path) -> None:
    app, engine, ids = served
    client = Client(app)
    now = client.get("/api/events")
    assert (now["changes"], now["more"]) == ([], False)
    subprocess.run(
        [sys.executable, "-c", STEP, str(tmp_path / "store"), ids["running"]], check=True
    )
    page = client.get(f"/api/events?cursor={now['cursor']}")
    assert [(c["instance_id"], c["kind"]) for c in page["changes"]] == [(ids["running"], "update")]
    assert client.get(f"/api/events?cursor={page['cursor']}")["changes"] == []
    other = client.get(f"/api/events?cursor={now['cursor']}&instance={ids['completed']}")
    assert other["changes"] == []
    feature = engine.get_workflow_instance_status(ids["running"]).feature_id  # type: ignore[union-attr]
    mine = client.get(f"/api/events?cursor={now['cursor']}&feature={feature}")
    assert len(mine["changes"]) == 1
    for bad in ("garbage", "00ff00ff00ff00ff.1"):
        reply = client.request(f"/api/events?cursor={bad}")
        assert reply.status == 400
        assert "cursor" in reply.json()["error"]


@pytest.mark.slow
def test_pages_follow_the_feed_not_each_instance(
    browser: Any, served: Served, tmp_path: Path
) -> None:
    app, _, ids = served
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(app.url)
    page.locator("#overview tbody tr").first.wait_for()
    subprocess.run([sys.executable, "-c", START, str(tmp_path / "store")], check=True)
    page.locator("#overview a:text-is('feat_brand_new')").wait_for(timeout=10_000)

    page.goto(f"{app.origin}/#/instance/{ids['running']}")
    rows = page.locator("#instance .tl-row")
    rows.first.wait_for()
    before = rows.count()
    subprocess.run(
        [sys.executable, "-c", STEP, str(tmp_path / "store"), ids["running"]], check=True
    )
    rows.nth(before).wait_for(timeout=10_000)
    context.close()
    assert errors == []
    assert any("/api/events?cursor=" in url for url in asked)
    assert not any(url.endswith("/stamp") for url in asked)  # no per-instance polling
