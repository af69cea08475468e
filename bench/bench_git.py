"""Git links: the time recording the work tree's commit adds to a step that moves a visit.

Each step that opens or closes a visit runs one ``git status`` (chatflow.core.gitlinks).
This bench builds a git repository of ``--files`` tracked files, works in it, and times
the same step (``retry_phase``: closes a visit and opens the next) with git links on and
off, interleaved round by round on one file store outside the repository. Target
``git-link-step`` (bench/targets.toml) bounds the difference of the medians.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import Report, interleaved, median, min_median_ms, parser, quick_sizes
from chatflow import WorkflowEngine

FLOW = {"name": "bench_git", "phases": [{"name": "work"}, {"name": "done"}]}


def make_repository(folder: Path, files: int) -> None:
    """A repository of ``files`` small tracked files in 10 folders, one commit."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "Bench")
    git("config", "user.email", "bench@example.com")
    for index in range(files):
        sub = folder / f"pkg{index % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"module_{index}.py").write_text(f"VALUE = {index}\n", encoding="utf-8")
    git("add", "-A")
    git("commit", "-q", "-m", "seed")


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--files", type=int, default=1000, help="tracked files in the repo")
    options.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    options.add_argument("--steps", type=int, default=20, help="steps per round and setting")
    args = quick_sizes(options.parse_args(), files=20, rounds=1, steps=2)
    report = Report.start("bench_git", args)
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHATFLOW_BENCH_DIR")) as tmp:
        repository, store = Path(tmp) / "repo", Path(tmp) / "store"
        repository.mkdir()
        make_repository(repository, args.files)
        os.chdir(repository)  # the work tree is the current folder's repository
        engines = {on: WorkflowEngine(storage_dir=store, git=on) for on in (True, False)}
        ids = {on: engines[on].start_workflow_instance(FLOW, feature_id="bench") for on in engines}
        samples = interleaved(
            {
                "git links on": lambda: engines[True].retry_phase(ids[True]),
                "git links off": lambda: engines[False].retry_phase(ids[False]),
            },
            rounds=args.rounds,
            calls=args.steps,
        )
        recorded = engines[True].get_workflow_instance_status(ids[True])
        if recorded is None or recorded.history[-1].git is None:
            raise SystemExit("bench_git: git links recorded nothing in the repository")
        os.chdir(tmp)
    added = median(samples["git links on"]) - median(samples["git links off"])
    report.table(
        f"a durable step that moves a visit, file store, repository of {args.files} files",
        ("setting", "min / median per step"),
        [(name, min_median_ms(values)) for name, values in samples.items()],
    )
    report.check("git-link-step", added * 1000)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
