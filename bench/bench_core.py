"""Core benchmark: the file store's step rate against the disk's physical limit.

Run:  python bench/bench_core.py [--steps 300] [--instances 10000]

Prints one table. Every figure that has a target is shown as a ratio against a
reference measured in the same run, because this machine is shared and noisy:

* durable ``trigger_next_step`` vs the physical limit (write + fsync + rename + folder
  fsync of a file of the same size), target >= 0.7x;
* the same with durability off, against write + rename;
* a step at 1,000 history entries vs one at 10, target <= 2x;
* ``get_feature_status`` over 10,000 instances, warm (target <= 50 ms) and in a fresh
  process;
* ``import chatflow``, target <= 30 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from chatflow import WorkflowEngine
from chatflow.storage._atomic import write_atomic


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    """Seconds taken by each of ``repeat`` calls of ``action``."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> tuple[float, float, float]:
    """(operations per second, p50 ms, p99 ms)."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return len(samples) / sum(samples), statistics.median(samples) * 1e3, p99 * 1e3


# A realistic small workflow whose review loops back to implementation until approved,
# so an instance can take any number of steps with a schema of ordinary size.
LOOPING_SCHEMA = {
    "name": "bench",
    "phases": [
        {"name": "requirement_analysis"},
        {"name": "design"},
        {"name": "implementation"},
        {
            "name": "review",
            "transitions": [
                {"to": "$end", "when": {"path": "trigger.verdict", "op": "==", "value": "ok"}},
                {"to": "implementation"},
            ],
        },
    ],
}


def endless_instance(engine: WorkflowEngine, history: int) -> str:
    """An instance that never finishes, advanced until it has ``history`` entries."""
    iid = engine.start_workflow_instance(LOOPING_SCHEMA, {"user_request": "bench"}, "feat_bench")
    for step in range(history - 1):
        engine.trigger_next_step(iid, trigger_data={"step": step, "result": "ok" * 20})
    return iid


def step_samples(engine: WorkflowEngine, history: int, steps: int) -> list[float]:
    """Timed steps on instances holding about ``history`` entries: each instance takes
    only a few steps, so the history (and the file) stays the size being measured."""
    data = {"step": 0, "result": "ok" * 20}
    samples: list[float] = []
    while len(samples) < steps:
        iid = endless_instance(engine, history)
        engine.trigger_next_step(iid, trigger_data=data)  # warm: first step reads the file
        count = min(max(10, history // 20), steps - len(samples))  # history grows <= 5%
        samples += timed(lambda i=iid: engine.trigger_next_step(i, trigger_data=data), count)
    return samples


def physical_samples(folder: Path, size: int, steps: int, *, durable: bool) -> list[float]:
    target = folder / "physical.json"
    payload = b"x" * size
    return timed(lambda: write_atomic(target, payload, durable=durable), steps)


def state_size(folder: Path, iid: str) -> int:
    return (folder / "instances" / f"{iid}.json").stat().st_size


def bench_steps(folder: Path, steps: int, rows: list[tuple[str, str, str]]) -> None:
    for durable in (True, False):
        label = "durable" if durable else "no fsync"
        engine = WorkflowEngine(storage_dir=folder / label, durable=durable)
        iid = endless_instance(engine, 10)
        size = state_size(folder / label, iid)
        physical = summary(physical_samples(folder, size, steps, durable=durable))
        measured = summary(step_samples(engine, 10, steps))
        rows.append(
            (
                f"trigger_next_step, {label}",
                f"{measured[0]:8.0f} steps/s  p50 {measured[1]:.3f} ms  p99 {measured[2]:.3f} ms",
                f"{measured[0] / physical[0]:.2f}x of physical"
                + (" (target >= 0.70x)" if durable else ""),
            )
        )
        rows.append(
            (
                f"  physical limit, {label} ({size} B file)",
                f"{physical[0]:8.0f} writes/s p50 {physical[1]:.3f} ms  p99 {physical[2]:.3f} ms",
                "reference",
            )
        )


def bench_history(folder: Path, steps: int, rows: list[tuple[str, str, str]]) -> None:
    for durable in (True, False):
        label = "durable" if durable else "no fsync"
        store_dir = folder / f"history-{label}"
        engine = WorkflowEngine(storage_dir=store_dir, durable=durable)
        costs, physical = {}, {}
        for history in (10, 1000):
            costs[history] = statistics.median(step_samples(engine, history, steps // 3))
            size = max(p.stat().st_size for p in (store_dir / "instances").glob("*.json"))
            physical[history] = statistics.median(
                physical_samples(folder, size, steps // 3, durable=durable)
            )
        rows.append(
            (
                f"step at 1,000 vs 10 history entries, {label}",
                f"{costs[1000] * 1e3:.3f} ms vs {costs[10] * 1e3:.3f} ms",
                f"{costs[1000] / costs[10]:.2f}x" + (" (target <= 2x)" if durable else ""),
            )
        )
        rows.append(
            (
                f"  physical write at those sizes, {label}",
                f"{physical[1000] * 1e3:.3f} ms vs {physical[10] * 1e3:.3f} ms",
                f"{physical[1000] / physical[10]:.2f}x (reference)",
            )
        )


def bench_feature_status(folder: Path, instances: int, rows: list[tuple[str, str, str]]) -> None:
    store_dir = folder / "features"
    engine = WorkflowEngine(storage_dir=store_dir, durable=False)
    schema = {"name": "bench", "phases": [{"name": "a"}, {"name": "b"}]}
    for number in range(instances):
        iid = engine.start_workflow_instance(schema, {"n": number}, "feat_big")
        if number % 3 == 0:
            engine.trigger_next_step(iid)
    engine.get_feature_status("feat_big")
    warm = statistics.median(timed(lambda: engine.get_feature_status("feat_big"), 15))
    code = (
        "import time, sys; t = time.perf_counter(); from chatflow import WorkflowEngine;"
        f"WorkflowEngine(storage_dir={str(store_dir)!r}).get_feature_status('feat_big');"
        "print(time.perf_counter() - t)"
    )
    fresh = statistics.median(
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    )
    rows.append(
        (
            f"get_feature_status, {instances:,} instances, warm",
            f"{warm * 1e3:.1f} ms",
            "target <= 50 ms",
        )
    )
    rows.append(
        (
            f"get_feature_status, {instances:,} instances, fresh process",
            f"{fresh * 1e3:.1f} ms",
            "includes import and reading every file",
        )
    )


def bench_import(rows: list[tuple[str, str, str]]) -> None:
    """Import time in a fresh interpreter, with bytecode caches as an installed package has
    them (pip compiles on install; PYTHONDONTWRITEBYTECODE would hide them)."""
    code = "import time; t = time.perf_counter(); import chatflow; print(time.perf_counter() - t)"
    baseline = "import time; t = time.perf_counter(); import json; print(time.perf_counter() - t)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(snippet: str) -> float:
        subprocess.run([sys.executable, "-c", snippet], env=env, check=True, capture_output=True)
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", snippet],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(9)
        ]
        return statistics.median(runs)

    rows.append(
        (
            "import chatflow",
            f"{run(code) * 1e3:.1f} ms",
            f"target <= 30 ms (import json alone: {run(baseline) * 1e3:.1f} ms)",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per measurement")
    parser.add_argument("--instances", type=int, default=10_000, help="instances in one feature")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHATFLOW_BENCH_DIR")) as tmp:
        folder = Path(tmp)
        bench_steps(folder, args.steps, rows)
        bench_history(folder, args.steps, rows)
        bench_feature_status(folder, args.instances, rows)
        bench_import(rows)
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    print(f"{'measurement':<{width}}  {'result':<{value_width}}  ratio / target")
    print("-" * (width + value_width + 30))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {note}")


if __name__ == "__main__":
    main()
