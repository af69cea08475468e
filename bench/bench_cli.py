"""Start-up benchmark: ``import chatflow`` and ``chatflow list`` against a bare interpreter.

Run:  python bench/bench_cli.py [--repeat 15] [--instances 100] [--quick] [--json]

Targets (bench/targets.toml): ``cli-import``, what ``import chatflow`` adds to ``python
-c pass`` with bytecode caches, and ``cli-list``, ``chatflow list`` on 100 instances. The
machine is shared and noisy, so each figure is the wall time of a fresh process,
measured round-robin with ``python -c pass`` in the same run, and shown as min/median
plus its ratio to that reference and the time it adds on top of it.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _harness import Report, interleaved, median, ms, parser, quick_sizes
from chatflow import WorkflowEngine

SCHEMA = {"name": "bench", "phases": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
PASS = "python -c pass"
IMPORT = "python -c 'import chatflow'"


def runner(
    command: list[str], env: dict[str, str], cwd: Path, cpus: list[float]
) -> Callable[[], None]:
    """A run of ``command`` for ``interleaved``, appending its CPU time (user + system) to
    ``cpus``: a loaded machine stretches wall time far more than CPU time."""

    def run() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

    return run


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--repeat", type=int, default=15, help="runs of each command")
    options.add_argument("--instances", type=int, default=100, help="instances to list")
    args = quick_sizes(options.parse_args(), repeat=1, instances=5)
    report = Report.start("bench_cli", args)
    # Bytecode caches as an installed package has them (pip compiles on install).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "NO_COLOR")}
    executable = Path(sys.executable).parent / "chatflow"
    listing = f"chatflow list ({args.instances} instances)"
    commands = {
        PASS: [sys.executable, "-c", "pass"],
        IMPORT: [sys.executable, "-c", "import chatflow"],
        listing: [str(executable), "list"],
        "chatflow --version": [str(executable), "--version"],
    }
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHATFLOW_BENCH_DIR")) as tmp:
        folder = Path(tmp)
        engine = WorkflowEngine(storage_dir=folder / ".chatflow", durable=False)
        for number in range(args.instances):
            iid = engine.start_workflow_instance(SCHEMA, {}, f"feat_{number % 10}")
            engine.trigger_next_step(iid, {"n": number})
        runs = {
            name: runner(command, env, folder, cpus[name]) for name, command in commands.items()
        }
        for run in runs.values():  # warm caches and write bytecode
            run()
        for samples in cpus.values():
            samples.clear()
        walls = interleaved(runs, args.repeat)
    reference, cpu_reference = median(walls[PASS]), median(cpus[PASS])
    rows = []
    for name, samples in walls.items():
        wall, cpu = median(samples), median(cpus[name])
        rows.append(
            [
                name,
                f"{ms(min(samples))} / {ms(wall)} ms",
                f"{wall / reference:.2f}x",
                f"{ms(wall - reference)} ms",
                f"{ms(cpu)} ms",
                f"{cpu / cpu_reference:.2f}x",
            ]
        )
    header = ("command", "wall min / median", "x pass", "added", "cpu median", "cpu x pass")
    report.table("start-up, fresh processes, round-robin", header, rows)
    report.check("cli-import", (median(walls[IMPORT]) - reference) * 1000)
    report.check(
        "cli-list",
        median(walls[listing]) * 1000,
        f"{args.instances} instances",
        f"{median(walls[listing]) / reference:.1f}x python -c pass",
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
