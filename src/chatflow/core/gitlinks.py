"""Git links: the commit, branch and dirtiness each visit of a phase started and ended at.

Every step that opens or closes a visit (start, trigger, jump, retry, reject, fail,
cancel, fork, a resume that completes) stamps the history entry: ``git["start"]`` on the
visit it opens, ``git["end"]`` on the visit it closes, each ``{"commit", "branch",
"dirty"}`` (``chatflow._git.snapshot``). The entry is part of the instance's state, so
the stamp travels inside the step's hash-chained event and through export, import,
migrate, fork and upgrade like any other field. A step that moves no visit (approve,
pause, record, a fork's note on its parent) runs no git at all; one that does runs one
``git status``, at most once even if the store retries the step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from chatflow import _git
from chatflow.core._stored import Change
from chatflow.core.models import WorkflowInstanceState

ENV_SWITCH = "CHATFLOW_GIT"
"""``CHATFLOW_GIT=0`` (or ``false``, ``no``, ``off``) turns git links off."""

Snapshot = Callable[[], dict[str, Any] | None]


def enabled_by_env() -> bool:
    """Whether the environment leaves git links on (the default)."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def work_tree_folders(store: object) -> list[Path]:
    """Where to look for the work tree: the process's current folder, then the store's
    folder (the file store's, the SQLite file's); the first inside a git repository wins."""
    folders = []
    with contextlib.suppress(OSError):  # the current folder may have been deleted
        folders.append(Path.cwd())
    base = getattr(store, "base_dir", None)
    path = getattr(store, "path", None)
    if isinstance(base, Path):
        folders.append(base)
    elif isinstance(path, Path):
        folders.append(path.parent)
    return [folder for folder in folders if folder.is_dir()]


def once(snapshot: Snapshot) -> Snapshot:
    """``snapshot`` run at most once: a store that retries a step reuses the answer."""
    answers: list[dict[str, Any] | None] = []

    def cached() -> dict[str, Any] | None:
        if not answers:
            answers.append(snapshot())
        return answers[0]

    return cached


def recording(change: Change, snapshot: Snapshot) -> Change:
    """``change``, then the git stamps of the visits it opened and closed."""

    def apply(state: WorkflowInstanceState) -> None:
        before = len(state.history)
        was_open = state.open_entry is not None
        change(state)
        stamp(state, before, was_open, snapshot)

    return apply


def stamp(state: WorkflowInstanceState, before: int, was_open: bool, snapshot: Snapshot) -> None:
    """Stamp the visits opened since the history had ``before`` entries, and the visit
    that was open then (``was_open``) if it is now closed."""
    closed = state.history[before - 1] if was_open and before else None
    if closed is not None and closed.ended_at is None:
        closed = None
    if closed is None and len(state.history) == before:
        return
    where = snapshot()
    if where is None:
        return
    if closed is not None:
        closed.git = {**(closed.git or {}), "end": dict(where)}
    for entry in state.history[before:]:
        entry.git = {"start": dict(where)}


def recorded(state: WorkflowInstanceState) -> list[dict[str, Any]]:
    """Every commit the instance recorded: one row per stamp, oldest visit first."""
    rows = []
    for index, entry in enumerate(state.history):
        for when in ("start", "end"):
            where = (entry.git or {}).get(when)
            if isinstance(where, dict) and isinstance(where.get("commit"), str):
                rows.append(
                    {
                        "history_index": index,
                        "phase": entry.phase,
                        "when": when,
                        "commit": where["commit"],
                    }
                )
    return rows


def unconfirmed(rows: list[dict[str, Any]], folders: Iterable[Path]) -> list[dict[str, Any]]:
    """The rows of ``recorded`` whose commit the work tree's repository does not have,
    each with the ``problem``; every row when there is no repository or git to ask."""
    if not rows:
        return []
    if not _git.installed():
        return [{**row, "problem": "git is not installed: cannot check"} for row in rows]
    folders = list(folders)
    repository = _git.toplevel(folders)
    if repository is None:
        where = ", ".join(str(folder) for folder in folders) or "nowhere"
        problem = f"no git repository to check it in (looked in {where})"
        return [{**row, "problem": problem} for row in rows]
    missing = _git.missing_commits(repository, (row["commit"] for row in rows))
    if missing is None:
        return [{**row, "problem": f"git could not check it in {repository}"} for row in rows]
    gone = set(missing)
    problem = f"not in the repository {repository}"
    return [{**row, "problem": problem} for row in rows if row["commit"] in gone]
