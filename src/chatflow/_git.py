"""Git, run as a subprocess: the state of a work tree, whether commits exist, branches.

No git library: ``git`` on ``PATH`` runs with a time limit and a fixed locale. Any
failure (git not installed, not a repository, an error, a timeout) is "no answer"
(``None``), never an exception: recording where the code was must never fail a step.
``GIT_OPTIONAL_LOCKS=0`` keeps ``git status`` from writing the index, so a step never
competes with the user's own git commands for ``index.lock``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

TIMEOUT_S = 5.0
"""The longest one git call may take; past it the call is killed and counts as no answer."""

NOT_A_REPOSITORY = 128
"""git's exit code for "not a git repository" (and other fatal errors)."""


def run(
    args: Sequence[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str] | None:
    """``git ARGS`` in ``cwd``; ``None`` if git is not installed, cannot start, or times out."""
    git = shutil.which("git")
    if git is None:
        return None
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(
            [git, *args],
            cwd=cwd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError, UnicodeDecodeError):
        return None


def installed() -> bool:
    """Whether a ``git`` program is on ``PATH``."""
    return shutil.which("git") is not None


def snapshot(folders: Iterable[Path]) -> dict[str, Any] | None:
    """Where the first of ``folders`` inside a git work tree stands: ``{"commit": HEAD's
    sha or None (an unborn branch), "branch": name or None (detached), "dirty": bool}``.

    A folder with no ``.git`` in it or above it is skipped without running git (a few
    ``stat`` calls), so outside any repository a step costs no subprocess; one ``git
    status`` per folder tried otherwise. ``dirty`` means tracked files differ from
    ``HEAD`` (staged or not); untracked files do not count, as in ``git describe
    --dirty``, and are not scanned (the cost stays low in large trees).
    """
    for folder in folders:
        if not may_be_repository(folder):
            continue
        done = run(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], folder)
        if done is None:
            return None  # no git at all: no other folder will do better
        if done.returncode == 0:
            return _parse_status(done.stdout)
    return None


def may_be_repository(folder: Path) -> bool:
    """Whether git could find a repository from ``folder``: ``$GIT_DIR`` is set, or a
    ``.git`` (folder or file) is in it or a folder above it."""
    if os.environ.get("GIT_DIR"):
        return True
    return any((place / ".git").exists() for place in (folder, *folder.parents))


def _parse_status(text: str) -> dict[str, Any] | None:
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            value = line[len("# branch.oid ") :].strip()
            commit = None if value == "(initial)" else value
        elif line.startswith("# branch.head "):
            value = line[len("# branch.head ") :].strip()
            branch = None if value == "(detached)" else value
        elif line and not line.startswith("#"):
            dirty = True
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        return None  # not what git status prints: record nothing rather than nonsense
    return {"commit": commit, "branch": branch, "dirty": dirty}


def toplevel(folders: Iterable[Path]) -> Path | None:
    """The root of the work tree the first of ``folders`` inside one belongs to."""
    for folder in folders:
        done = run(["rev-parse", "--show-toplevel"], folder)
        if done is None:
            return None
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    return None


def missing_commits(repository: Path, commits: Iterable[str]) -> list[str] | None:
    """Which of ``commits`` the repository does not have (as commits); ``None`` if git
    could not answer. One ``git cat-file --batch-check`` for all of them (the batch form
    of ``git cat-file -e SHA^{commit}``)."""
    wanted = list(dict.fromkeys(commits))
    if not wanted:
        return []
    lines = "".join(f"{sha}^{{commit}}\n" for sha in wanted)
    done = run(["cat-file", "--batch-check=%(objecttype)"], repository, stdin=lines)
    if done is None or done.returncode != 0:
        return None
    answers = done.stdout.splitlines()
    if len(answers) != len(wanted):
        return None
    return [sha for sha, answer in zip(wanted, answers, strict=True) if answer != "commit"]


def branch_name(text: str, repository: Path) -> str | None:
    """``text`` made a valid branch name (``git check-ref-format --branch``), or ``None``."""
    name = re.sub(r"[^A-Za-z0-9._/-]+", "-", text)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"/{2,}", "/", name).strip("/.-")
    name = name.removesuffix(".lock")
    if not name:
        return None
    done = run(["check-ref-format", "--branch", name], repository)
    if done is None or done.returncode != 0:
        return None
    return done.stdout.strip() or name


def branch_exists(name: str, repository: Path) -> bool:
    done = run(["rev-parse", "--verify", "--quiet", f"refs/heads/{name}"], repository)
    return done is not None and done.returncode == 0


def first_line(done: subprocess.CompletedProcess[str] | None) -> str:
    """git's own reason for a failure, in one line."""
    if done is None:
        return "git did not run (not installed, or it timed out)"
    for line in (done.stderr or done.stdout).splitlines():
        if line.strip():
            return line.strip().removeprefix("fatal: ").removeprefix("error: ")
    return f"git exited with {done.returncode}"
