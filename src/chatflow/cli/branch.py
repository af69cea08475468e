"""``chatflow start --branch``: a git branch named after the feature, created and checked
out before the instance starts, so that its first visit records the new branch.

The branch starts at ``HEAD`` (``git checkout -b``), which carries uncommitted changes
over and so never overwrites a file; anything git refuses is refused with git's reason
in one line. If the instance then fails to start, the previous branch is checked out
again and the new, still empty branch deleted: nothing is left half done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatflow import _git
from chatflow.errors import ChatFlowError


class BranchRefusedError(ChatFlowError):
    """``--branch`` cannot make its branch (no git, no repository, the branch exists): exit 1."""


def create(feature_id: str, folders: list[Path]) -> tuple[str, Callable[[], None]]:
    """Create and check out the feature's branch in the work tree's repository (the first
    of ``folders`` inside one); return its name and how to undo it."""
    if not _git.installed():
        raise BranchRefusedError("--branch needs git, which is not on PATH")
    repository = _git.toplevel(folders)
    if repository is None:
        looked = ", ".join(str(folder) for folder in folders)
        raise BranchRefusedError(f"--branch needs a git repository; none contains {looked}")
    name = _git.branch_name(feature_id, repository)
    if name is None:
        raise BranchRefusedError(f"feature {feature_id!r} makes no valid git branch name")
    before = _git.snapshot([repository])
    if before is not None and before["branch"] == name:
        raise BranchRefusedError(f"already on branch {name!r}; start without --branch")
    if _git.branch_exists(name, repository):
        raise BranchRefusedError(
            f"branch {name!r} already exists in {repository}; switch to it "
            f"(git switch {name}) and start without --branch"
        )
    done = _git.run(["checkout", "-q", "-b", name], repository)
    if done is None or done.returncode != 0:
        raise BranchRefusedError(f"cannot create branch {name!r}: {_git.first_line(done)}")
    return name, lambda: _undo(repository, name, before)


def _undo(repository: Path, name: str, before: dict[str, Any] | None) -> None:
    """Back to where ``before`` was, dropping the new branch (it has no commit of its own)."""
    if before is None:
        return
    if before["commit"] is None:  # an unborn branch: only HEAD moved
        if before["branch"]:
            _git.run(["symbolic-ref", "HEAD", f"refs/heads/{before['branch']}"], repository)
        return
    _git.run(["checkout", "-q", before["branch"] or before["commit"]], repository)
    _git.run(["branch", "-q", "-D", name], repository)
