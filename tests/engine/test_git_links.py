"""Git links (chatflow.core.gitlinks, chatflow._git) in real git repositories created by
each test: the commit, branch and dirtiness each visit started and ended at, on every
store; ``verify --git`` after a rewritten history; ``start --branch``; and nothing
recorded, nothing raised, without a repository or without git."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatflow import WorkflowEngine
from chatflow.core.models import WorkflowInstanceState
from store_harness import PostgresHarness

SRC = Path(__file__).resolve().parents[2] / "src"

FLOW: dict[str, Any] = {
    "name": "git_flow",
    "phases": [
        {"name": "plan"},
        {"name": "review", "requires_approval": True, "max_retries": 2},
        {"name": "build"},
    ],
}


@pytest.fixture(autouse=True)
def _no_outside_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No global or system git configuration, and no repository above the test's folder."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.delenv("CHATFLOW_GIT", raising=False)
    monkeypatch.delenv("CHATFLOW_DIR", raising=False)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text, encoding="utf-8")
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"{name}: {text}")
    return head(repo)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree with one commit on ``main``; the test runs in it."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(work, "config", "user.name", "Test User")
    git(work, "config", "user.email", "test@example.com")
    commit(work, "README", "one")
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder in no git repository; the test runs in it."""
    folder = tmp_path / "plain"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


StoreKind = str
STORES = ("file", "sqlite", "postgres", "memory")


@pytest.fixture(params=STORES)
def make_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., WorkflowEngine]]:
    """An engine on each store kind (the folder-based ones under ``tmp_path/store``)."""
    kind: StoreKind = request.param
    engines: list[WorkflowEngine] = []
    stores: list[Any] = []
    harness: PostgresHarness | None = None
    if kind == "postgres":
        harness = request.getfixturevalue("pg_harness")

    def make(**options: Any) -> WorkflowEngine:
        folder = tmp_path / "store"
        if kind == "file":
            engine = WorkflowEngine(storage_dir=folder, **options)
        elif kind == "sqlite":
            folder.mkdir(exist_ok=True)
            engine = WorkflowEngine(storage_dir=f"sqlite:///{folder / 'state.db'}", **options)
        elif kind == "memory":
            engine = WorkflowEngine(storage_dir="memory://", **options)
        else:
            assert harness is not None
            stores.append(harness.open())
            engine = WorkflowEngine(store=stores[-1], **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()
    for store in stores:
        store.close()


def stamps(state: WorkflowInstanceState) -> list[dict[str, Any] | None]:
    return [entry.git for entry in state.history]


def where(commit_id: str | None, *, branch: str | None = "main", dirty: bool = False) -> Any:
    return {"commit": commit_id, "branch": branch, "dirty": dirty}


# -- recorded per phase, on every store ---------------------------------------------------


def test_each_visit_records_where_it_started_and_ended_on_every_store(
    repo: Path, make_engine: Callable[..., WorkflowEngine]
) -> None:
    engine = make_engine()
    first = head(repo)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_git")
    second = commit(repo, "plan.md", "the plan")
    engine.trigger_next_step(iid)  # plan -> review (waits for approval to enter)
    engine.resume(iid, approved_by="alice")
    third = commit(repo, "code.py", "print(1)")
    engine.trigger_next_step(iid)  # review -> build
    (repo / "code.py").write_text("print(2)", encoding="utf-8")  # uncommitted
    state = engine.trigger_next_step(iid)  # build -> completed

    assert stamps(state) == [
        {"start": where(first), "end": where(second)},
        {"start": where(second), "end": where(third)},
        {"start": where(third), "end": where(third, dirty=True)},
    ]
    stored = engine.get_workflow_instance_status(iid)  # read back: the stamps were stored
    assert stored is not None
    assert stamps(stored) == stamps(state)
    assert engine.verify(iid) is None  # stamps are inside the hash-chained events
    assert engine.verify_git(iid) == []


def test_a_store_outside_any_repository_records_nothing_and_raises_nothing(
    outside: Path, make_engine: Callable[..., WorkflowEngine]
) -> None:
    engine = make_engine()
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_plain")
    engine.trigger_next_step(iid)
    engine.jump_to(iid, "build", force=True)
    state = engine.trigger_next_step(iid)
    assert state.status.value == "completed"
    assert stamps(state) == [None, None, None]
    assert engine.verify_git(iid) == []
    assert all(row["commits"] == [] for row in _view(state)["timeline"])


def test_outside_any_repository_a_step_runs_no_git(
    outside: Path, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatflow import _git

    ran: list[list[str]] = []
    real = _git.run

    def counted(args: list[str], cwd: Path, stdin: str | None = None) -> Any:
        ran.append(list(args))
        return real(args, cwd, stdin)

    monkeypatch.setattr(_git, "run", counted)
    engine = WorkflowEngine(storage_dir=storage_dir)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_cheap")
    engine.trigger_next_step(iid)
    assert ran == []


def _view(state: WorkflowInstanceState) -> dict[str, Any]:
    from chatflow import views

    return views.instance_view(state)


def test_the_store_folder_is_the_work_tree_when_the_current_folder_is_in_none(
    tmp_path: Path, outside: Path
) -> None:
    store_repo = tmp_path / "project"
    store_repo.mkdir()
    git(store_repo, "init", "-q", "-b", "trunk")
    git(store_repo, "config", "user.name", "T")
    git(store_repo, "config", "user.email", "t@example.com")
    sha = commit(store_repo, "a.txt", "a")
    engine = WorkflowEngine(storage_dir=store_repo / ".chatflow")
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_store")
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    assert stamps(state) == [{"start": where(sha, branch="trunk")}]


# -- which steps record what --------------------------------------------------------------


def test_every_step_that_moves_a_visit_records_and_no_other_runs_git(
    repo: Path, storage_dir: Path
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    calls: list[int] = []
    real = engine.git_snapshot

    def counted() -> dict[str, Any] | None:
        calls.append(1)
        return real()

    engine.git_snapshot = counted  # type: ignore[method-assign]
    sha = head(repo)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_steps")
    engine.pause(iid, "lunch")
    engine.resume(iid)
    assert len(calls) == 1  # start only: pausing and resuming move no visit
    engine.trigger_next_step(iid)  # into review: waits for approval
    engine.reject(iid, rejected_by="bob")  # back to plan
    engine.fail_phase(iid, "model timed out")
    engine.retry_phase(iid)
    engine.jump_to(iid, "build", force=True)
    engine.cancel(iid, "done with it")
    assert len(calls) == 7
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    statuses = [(entry.phase, entry.status) for entry in state.history]
    assert statuses == [
        ("plan", "completed"),
        ("review", "rejected"),
        ("plan", "failed"),
        ("plan", "jumped"),
        ("build", "cancelled"),
    ]
    assert all(entry.git == {"start": where(sha), "end": where(sha)} for entry in state.history)


def test_a_fork_keeps_the_parents_stamps_and_stamps_its_fresh_visit(
    repo: Path, storage_dir: Path
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    first = head(repo)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_fork")
    second = commit(repo, "b.txt", "b")
    engine.trigger_next_step(iid)
    third = commit(repo, "c.txt", "c")
    child = engine.fork(iid, 1, force=True)
    state = engine.get_workflow_instance_status(child)
    assert state is not None
    assert stamps(state) == [
        {"start": where(first), "end": where(second)},
        {"start": where(third)},
    ]
    assert engine.verify(child) is None


def test_dirty_counts_tracked_changes_staged_or_not_but_not_untracked_files(
    repo: Path, storage_dir: Path
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    assert engine.git_snapshot() == where(head(repo))  # the store folder is untracked
    (repo / "new.txt").write_text("untracked", encoding="utf-8")
    assert engine.git_snapshot() == where(head(repo))
    (repo / "README").write_text("changed", encoding="utf-8")
    assert engine.git_snapshot() == where(head(repo), dirty=True)
    git(repo, "add", "README")
    assert engine.git_snapshot() == where(head(repo), dirty=True)
    git(repo, "commit", "-q", "-m", "readme")
    assert engine.git_snapshot() == where(head(repo))


def test_an_unborn_branch_and_a_detached_head(tmp_path: Path, outside: Path) -> None:
    work = tmp_path / "fresh"
    work.mkdir()
    git(work, "init", "-q", "-b", "start")
    git(work, "config", "user.name", "T")
    git(work, "config", "user.email", "t@example.com")
    engine = WorkflowEngine(storage_dir=work / ".chatflow")
    assert engine.git_snapshot() == where(None, branch="start")
    sha = commit(work, "x", "1")
    git(work, "checkout", "-q", "--detach")
    assert engine.git_snapshot() == where(sha, branch=None)


def test_git_false_and_chatflow_git_0_turn_it_off(
    repo: Path, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = WorkflowEngine(storage_dir=storage_dir, git=False)
    iid = off.start_workflow_instance(FLOW, feature_id="feat_off")
    assert stamps(off.trigger_next_step(iid)) == [None, None]
    monkeypatch.setenv("CHATFLOW_GIT", "0")
    by_env = WorkflowEngine(storage_dir=storage_dir)
    iid = by_env.start_workflow_instance(FLOW, feature_id="feat_off")
    assert stamps(by_env.trigger_next_step(iid)) == [None, None]
    forced = WorkflowEngine(storage_dir=storage_dir, git=True)  # the option wins
    iid = forced.start_workflow_instance(FLOW, feature_id="feat_on")
    assert stamps(forced.trigger_next_step(iid))[0] is not None


def test_git_missing_from_path_records_nothing(
    repo: Path, storage_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    engine = WorkflowEngine(storage_dir=storage_dir)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_nogit")
    state = engine.trigger_next_step(iid)
    assert stamps(state) == [None, None]
    assert engine.verify_git(iid) == []


@pytest.mark.parametrize(
    "script",
    [
        "#!/bin/sh\necho '# branch.oid not-a-sha'\necho '# branch.head main'\n",
        "#!/bin/sh\necho broken >&2\nexit 2\n",
        "#!/bin/sh\nexec sleep 30\n",
    ],
    ids=["nonsense", "error", "hangs"],
)
def test_a_git_that_misbehaves_records_nothing_and_never_fails_a_step(
    repo: Path,
    storage_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
) -> None:
    from chatflow import _git

    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "git").write_text(script, encoding="utf-8")
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(_git, "TIMEOUT_S", 0.2)  # the hanging git is killed at the limit
    engine = WorkflowEngine(storage_dir=storage_dir)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_fake")
    state = engine.trigger_next_step(iid)
    assert stamps(state) == [None, None]


# -- carried by the chain, copies and upgrades ----------------------------------------------


def test_stamps_are_covered_by_the_hash_chain(repo: Path, storage_dir: Path) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    sha = head(repo)
    iid = engine.start_workflow_instance(FLOW, feature_id="feat_chain")
    engine.trigger_next_step(iid)
    assert engine.verify(iid) is None
    logs = [p for p in storage_dir.rglob("*.jsonl") if sha in p.read_text(encoding="utf-8")]
    assert logs, "the commit is stored in the event log"
    for log in logs:
        log.write_text(log.read_text(encoding="utf-8").replace(sha, "f" * 40), encoding="utf-8")
    assert engine.verify(iid) is not None


def test_stamps_survive_export_import_migrate_and_upgrade(
    repo: Path, tmp_path: Path, storage_dir: Path
) -> None:
    engine = WorkflowEngine(storage_dir=storage_dir)
    engine.register_schema(FLOW)
    iid = engine.start_workflow_instance(schema_name="git_flow", feature_id="feat_copy")
    engine.trigger_next_step(iid)
    before = engine.get_workflow_instance_status(iid)
    assert before is not None and before.history[0].git is not None
    engine.register_schema({**FLOW, "version": 2, "phases": [*FLOW["phases"], {"name": "ship"}]})
    engine.upgrade_instance(iid, to_version=2)
    upgraded = engine.get_workflow_instance_status(iid)
    assert upgraded is not None and stamps(upgraded) == stamps(before)

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cli = [sys.executable, "-m", "chatflow"]
    exported = tmp_path / "export.jsonl"
    for args in (
        ["--dir", str(storage_dir), "export", "--all", "-o", str(exported)],
        ["--dir", str(tmp_path / "imported"), "import", str(exported)],
        ["migrate", "--from", str(storage_dir), "--to", f"sqlite:///{tmp_path / 'm.db'}"],
    ):
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    for target in (tmp_path / "imported", f"sqlite:///{tmp_path / 'm.db'}"):
        copy = WorkflowEngine(storage_dir=target, git=False)
        state = copy.get_workflow_instance_status(iid)
        assert state is not None and stamps(state) == stamps(upgraded)
        assert copy.verify(iid) is None
        copy.close()


# -- the command: show, verify --git, start --branch -----------------------------------------


def chatflow(cwd: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "chatflow", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def write_flow(folder: Path) -> Path:
    flow = folder / "flow.json"
    flow.write_text(json.dumps(FLOW), encoding="utf-8")
    return flow


def test_show_lists_each_visits_commits(repo: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    flow = write_flow(tmp_path)
    first = head(repo)
    started = chatflow(repo, "--dir", store, "start", str(flow), "--feature", "feat_show", "--json")
    assert started.returncode == 0, started.stderr
    iid = json.loads(started.stdout)["instance_id"]
    second = commit(repo, "a.txt", "a")
    assert chatflow(repo, "--dir", store, "next", iid).returncode == 0
    view = json.loads(chatflow(repo, "--dir", store, "show", iid, "--json").stdout)
    first_row, second_row = view["timeline"]
    assert [(c["when"], c["commit"]) for c in first_row["commits"]] == [
        ("start", first),
        ("end", second),
    ]
    assert first_row["commits_text"] == f"{first[:7]} main → {second[:7]} main"
    assert second_row["commits"] == [
        {"when": "start", "commit": second, "branch": "main", "dirty": False, "short": second[:7]}
    ]
    text = chatflow(repo, "--dir", store, "show", iid).stdout
    assert "COMMITS (START → END)" in text
    assert f"{first[:7]} main → {second[:7]} main" in text


def test_verify_git_names_the_commits_a_rewritten_history_lost(repo: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    flow = write_flow(tmp_path)
    started = chatflow(
        repo, "--dir", store, "start", str(flow), "--feature", "feat_amend", "--json"
    )
    iid = json.loads(started.stdout)["instance_id"]
    kept = head(repo)  # the start's commit stays
    lost = commit(repo, "work.txt", "draft")
    assert chatflow(repo, "--dir", store, "next", iid).returncode == 0
    ok = chatflow(repo, "--dir", store, "verify", "--all", "--git")
    assert ok.returncode == 0, ok.stderr

    git(repo, "commit", "-q", "--amend", "-m", "rewritten")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    failed = chatflow(repo, "--dir", store, "verify", "--all", "--git")
    assert failed.returncode == 1
    assert lost in failed.stderr and kept not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1  # one line per missing commit
    report = json.loads(chatflow(repo, "--dir", store, "verify", "--all", "--git", "--json").stdout)
    assert {row["commit"] for row in report["missing_commits"]} == {lost}
    assert {(row["phase"], row["when"]) for row in report["missing_commits"]} == {
        ("plan", "end"),
        ("review", "start"),
    }
    assert report["verified"] == 0
    plain = chatflow(repo, "--dir", store, "verify", "--all")  # without --git: not checked
    assert plain.returncode == 0, plain.stderr


def test_verify_git_in_another_repository_names_every_commit(repo: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    flow = write_flow(tmp_path)
    started = chatflow(
        repo, "--dir", store, "start", str(flow), "--feature", "feat_moved", "--json"
    )
    iid = json.loads(started.stdout)["instance_id"]
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    failed = chatflow(other, "--dir", store, "verify", iid, "--git")
    assert failed.returncode == 1
    assert head(repo) in failed.stderr and "not in the repository" in failed.stderr
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    unchecked = chatflow(nowhere, "--dir", store, "verify", iid, "--git")
    assert unchecked.returncode == 1
    assert "no git repository to check it in" in unchecked.stderr


def test_start_branch_creates_the_features_branch_and_records_it(
    repo: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    flow = write_flow(tmp_path)
    (repo / "README").write_text("work in progress", encoding="utf-8")  # kept, never clobbered
    started = chatflow(
        repo, "--dir", store, "start", str(flow), "--feature", "feat_login", "--branch", "--json"
    )
    assert started.returncode == 0, started.stderr
    assert git(repo, "branch", "--show-current") == "feat_login"
    assert (repo / "README").read_text(encoding="utf-8") == "work in progress"
    view = json.loads(started.stdout)
    assert view["timeline"][0]["commits"][0]["branch"] == "feat_login"
    assert view["timeline"][0]["commits"][0]["dirty"] is True

    again = chatflow(
        repo, "--dir", store, "start", str(flow), "--feature", "feat_login", "--branch"
    )
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "already on branch 'feat_login'" in again.stderr
    git(repo, "checkout", "-q", "main")
    exists = chatflow(
        repo, "--dir", store, "start", str(flow), "--feature", "feat_login", "--branch"
    )
    assert exists.returncode == 1
    assert "branch 'feat_login' already exists" in exists.stderr
    assert "git switch feat_login" in exists.stderr
    assert git(repo, "branch", "--show-current") == "main"


def test_start_branch_refuses_without_a_repository_and_undoes_a_failed_start(
    repo: Path, tmp_path: Path, outside: Path
) -> None:
    flow = write_flow(tmp_path)
    store = str(tmp_path / "store")
    refused = chatflow(outside, "--dir", store, "start", str(flow), "--feature", "f", "--branch")
    assert refused.returncode == 1
    assert "--branch needs a git repository" in refused.stderr
    assert not Path(store).exists()  # nothing written
    missing = chatflow(repo, "--dir", store, "start", "nosuch.json", "--feature", "f", "--branch")
    assert missing.returncode == 3
    assert git(repo, "branch", "--list", "f") == ""
    assert git(repo, "branch", "--show-current") == "main"
    no_git = chatflow(
        repo, "--dir", store, "start", str(flow), "--feature", "f", "--branch", path=str(outside)
    )
    assert no_git.returncode == 1 and "needs git" in no_git.stderr
