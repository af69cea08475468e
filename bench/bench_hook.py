"""Hook benchmark: ``chatflow hook claude EVENT`` against ``chatflow list``, same store.

Run:  python bench/bench_hook.py [--repeat 15] [--instances 100] [--quick] [--json]

Target (bench/targets.toml): ``hook-vs-list``: Claude Code runs a hook on every tool
call, so one hook call (process start to exit, the event's JSON on stdin) must cost at
most 1.5x ``chatflow list`` on the same store of 100 instances, whose work tree is bound
to one of them. Every command is a fresh process, run round-robin in the same run (the
machine is shared: only the ratio holds); the slowest event's median is checked.
``PostToolUse`` writes (a durable ``files_touched`` event); the others read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _harness import Report, interleaved, median, min_median_ms, parser, quick_sizes
from chatflow import WorkflowEngine

SCHEMA = {
    "name": "bench",
    "phases": [
        {"name": "a", "template": "Do {{ goal }}.", "exit_requires": {"artifacts": ["prompt"]}},
        {"name": "b"},
    ],
}
LIST = "chatflow list"


def payloads(folder: Path) -> dict[str, dict[str, object]]:
    """One payload per event, shaped as Claude Code's hooks reference documents them."""
    common = {
        "session_id": "bench",
        "transcript_path": str(folder / "transcript.jsonl"),
        "cwd": str(folder),
        "permission_mode": "default",
    }
    written = str(folder / "src" / "app.py")
    return {
        "SessionStart": {**common, "hook_event_name": "SessionStart", "source": "startup"},
        "UserPromptSubmit": {**common, "hook_event_name": "UserPromptSubmit", "prompt": "go"},
        "PostToolUse": {
            **common,
            "hook_event_name": "PostToolUse",
            "tool_name": "Write",
            "tool_input": {"file_path": written, "content": "x = 1\n"},
            "tool_response": {"filePath": written, "success": True},
            "tool_use_id": "toolu_bench",
        },
        "Stop": {**common, "hook_event_name": "Stop", "stop_hook_active": False},
    }


def runner(command: list[str], env: dict[str, str], cwd: Path, stdin: bytes) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(
            command,
            env=env,
            cwd=cwd,
            input=stdin,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    return run


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--repeat", type=int, default=15, help="runs of each command")
    options.add_argument("--instances", type=int, default=100, help="instances in the store")
    args = quick_sizes(options.parse_args(), repeat=1, instances=5)
    report = Report.start("bench_hook", args)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "NO_COLOR")}
    env.pop("CHATFLOW_DIR", None)
    executable = str(Path(sys.executable).parent / "chatflow")
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHATFLOW_BENCH_DIR")) as tmp:
        folder = Path(tmp)
        (folder / ".git").mkdir()  # the work tree's root, as in a repository
        (folder / "src").mkdir()
        (folder / "src" / "app.py").write_text("x = 1\n", encoding="utf-8")
        engine = WorkflowEngine(storage_dir=folder / ".chatflow")
        bound = ""
        for number in range(args.instances):
            bound = engine.start_workflow_instance(SCHEMA, {"goal": "it"}, f"feat_{number % 10}")
        engine.close()
        subprocess.run(
            [executable, "use", bound], env=env, cwd=folder, check=True, stdout=subprocess.DEVNULL
        )
        runs = {LIST: runner([executable, "list"], env, folder, b"")}
        for event, body in payloads(folder).items():
            command = [executable, "hook", "claude", event]
            runs[event] = runner(command, env, folder, json.dumps(body).encode())
        for run in runs.values():  # warm caches and write bytecode
            run()
        walls = interleaved(runs, args.repeat)
    reference = median(walls[LIST])
    rows = [
        [name, min_median_ms(samples), f"{median(samples) / reference:.2f}x"]
        for name, samples in walls.items()
    ]
    report.table("fresh processes, round-robin", ("command", "min / median", "x list"), rows)
    slowest = max((name for name in walls if name != LIST), key=lambda n: median(walls[n]))
    report.check(
        "hook-vs-list",
        median(walls[slowest]) / reference,
        f"{args.instances} instances",
        f"slowest: {slowest}",
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
