"""Start-up benchmark: ``import chatflow`` and ``chatflow list`` against a bare interpreter.

Run:  python bench/bench_cli.py [--repeat 15] [--instances 100]

Targets (issue 10): ``import chatflow`` <= 30 ms with bytecode caches, and ``chatflow
list`` on 100 instances <= 150 ms wall. The machine is shared and noisy, so each figure
is the wall time of a fresh process, measured round-robin with ``python -c pass`` in the
same run, and shown as min/median plus its ratio to that reference and the time it adds
on top of it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chatflow import WorkflowEngine

SCHEMA = {"name": "bench", "phases": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}


def run(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``command``.

    CPU time is shown too because a loaded machine stretches wall time far more.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs of each command")
    parser.add_argument("--instances", type=int, default=100, help="instances to list")
    args = parser.parse_args()
    # Bytecode caches as an installed package has them (pip compiles on install).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "NO_COLOR")}
    executable = Path(sys.executable).parent / "chatflow"
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHATFLOW_BENCH_DIR")) as tmp:
        folder = Path(tmp)
        engine = WorkflowEngine(storage_dir=folder / ".chatflow", durable=False)
        for number in range(args.instances):
            iid = engine.start_workflow_instance(SCHEMA, {}, f"feat_{number % 10}")
            engine.trigger_next_step(iid, {"n": number})
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import chatflow'": [sys.executable, "-c", "import chatflow"],
            f"chatflow list ({args.instances} instances)": [str(executable), "list"],
            "chatflow --version": [str(executable), "--version"],
        }
        for command in commands.values():  # warm caches and write bytecode
            run(command, env, folder)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):  # round-robin: load changes hit every command alike
            for name, command in commands.items():
                elapsed, cpu = run(command, env, folder)
                walls[name].append(elapsed)
                cpus[name].append(cpu)
    reference = statistics.median(walls["python -c pass"])
    cpu_reference = statistics.median(cpus["python -c pass"])
    print(
        f"{'command':<34} {'wall min':>9} {'median':>8} {'x pass':>7} {'added':>8}"
        f" {'cpu median':>11} {'x pass':>7}"
    )
    print("-" * 90)
    for name, runs in walls.items():
        median, cpu = statistics.median(runs), statistics.median(cpus[name])
        print(
            f"{name:<34} {min(runs) * 1e3:7.1f}ms {median * 1e3:6.1f}ms "
            f"{median / reference:6.2f}x {(median - reference) * 1e3:6.1f}ms"
            f" {cpu * 1e3:9.1f}ms {cpu / cpu_reference:6.2f}x"
        )
    print("targets: import adds <= 30 ms; chatflow list <= 150 ms wall (median)")


if __name__ == "__main__":
    main()
