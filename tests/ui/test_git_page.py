"""The page lists each visit's commits (git links), as the server's view gives them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.ui import UIServer

pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_each_visit_shows_its_commits(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("CHATFLOW_GIT", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "T")
    git(repo, "config", "user.email", "t@example.com")
    monkeypatch.chdir(repo)
    engine = WorkflowEngine(storage_dir=tmp_path / "store", durable=False)
    flow = {"name": "paged", "phases": [{"name": "plan"}, {"name": "build"}]}
    iid = engine.start_workflow_instance(flow, feature_id="feat_page")
    (repo / "plan.md").write_text("plan", encoding="utf-8")
    git(repo, "add", "plan.md")
    git(repo, "commit", "-q", "-m", "plan")
    sha = git(repo, "rev-parse", "--short=7", "HEAD")
    engine.trigger_next_step(iid)
    app = UIServer(engine).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(app.url)
        page.goto(f"{app.origin}/#/instance/{iid}")
        commits = page.locator("#instance .tl-row .commits")
        commits.first.wait_for()
        assert commits.all_text_contents() == [
            f"git (no commit yet) main → {sha} main",
            f"git {sha} main",
        ]
    finally:
        context.close()
        app.shutdown()
