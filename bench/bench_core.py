"""Core benchmark: the file store's step rate against the disk's physical limit.

Run:  python bench/bench_core.py [--steps 300] [--rounds 5] [--instances 10000]
      [--quick] [--json]

Prints one table. Every figure that has a target is shown as a ratio against a
reference measured in the same run, interleaved round by round, because this machine is
shared and noisy (targets: bench/targets.toml):

* durable ``trigger_next_step`` vs the physical limit (write + fsync + rename + folder
  fsync of a file of the same size): ``core-step-vs-physical``;
* the same with durability off, against write + rename (no target);
* a step at 1,000 history entries vs one at 10: ``core-step-1000``;
* ``get_feature_status`` over 10,000 instances, warm (``core-rollup-warm``) and in a
  fresh process;
* ``import chatflow`` in a fresh interpreter: ``core-import``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import Report, Stats, interleaved, median, ms, parser, quick_sizes, timed
from chatflow import WorkflowEngine
from chatflow.storage._atomic import write_atomic

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
DATA = {"step": 0, "result": "ok" * 20}


def endless_instance(builder: WorkflowEngine, engine: WorkflowEngine, history: int) -> str:
    """An instance that never finishes, advanced by ``builder`` (not durable: the build is
    not measured) until it has ``history`` entries, then stepped once by ``engine``."""
    iid = builder.start_workflow_instance(LOOPING_SCHEMA, {"user_request": "bench"}, "feat_bench")
    for step in range(history - 1):
        builder.trigger_next_step(iid, trigger_data={"step": step, "result": "ok" * 20})
    engine.trigger_next_step(iid, trigger_data=DATA)  # warm: the first step reads the file
    return iid


def head_size(store_dir: Path, iid: str) -> int:
    return (store_dir / "instances" / f"{iid}.json").stat().st_size


def step_and_physical(
    store_dir: Path, folder: Path, history: int, steps: int, *, durable: bool
) -> dict[str, list[float]]:
    """Seconds of each of ``steps`` steps on instances of ``history`` entries and of as
    many physical writes of a file of the head's size, alternating call by call. Each
    instance takes only a few steps, so its history stays within 5% of ``history``."""
    builder = WorkflowEngine(storage_dir=store_dir, durable=False)
    engine = WorkflowEngine(storage_dir=store_dir, durable=durable)
    target = folder / "physical.json"
    samples: dict[str, list[float]] = {"step": [], "physical": []}
    while len(samples["step"]) < steps:
        iid = endless_instance(builder, engine, history)
        payload = b"x" * head_size(store_dir, iid)
        found = interleaved(
            {
                "step": lambda i=iid: engine.trigger_next_step(i, trigger_data=DATA),
                "physical": lambda p=payload: write_atomic(target, p, durable=durable),
            },
            rounds=min(max(10, history // 20), steps - len(samples["step"])),
        )
        for name, values in found.items():
            samples[name] += values
    return samples


def bench_steps(folder: Path, args: argparse.Namespace, report: Report) -> None:
    rows = []
    for durable in (True, False):
        label = "durable" if durable else "no fsync"
        samples = step_and_physical(folder / label, folder, 10, args.steps, durable=durable)
        step, physical = Stats.of(samples["step"]), Stats.of(samples["physical"])
        speed = physical.median / step.median
        rows.append([f"trigger_next_step, {label}", steps_figure(step), f"{speed:.2f}x"])
        rows.append([f"  physical write, {label}", steps_figure(physical), "reference"])
        if durable:
            report.check("core-step-vs-physical", speed, "10 entries")
    report.table("steps at 10 entries vs the disk", ("measurement", "per step", "x physical"), rows)


def steps_figure(stats: Stats) -> str:
    return (
        f"{stats.rate:,.0f}/s, min / median / p99"
        f" {ms(stats.min)} / {ms(stats.median)} / {ms(stats.p99)} ms"
    )


def bench_history(folder: Path, args: argparse.Namespace, report: Report) -> None:
    rows = []
    for durable in (True, False):
        label = "durable" if durable else "no fsync"
        store_dir = folder / f"history-{label}"
        costs = {
            history: step_and_physical(store_dir, folder, history, args.steps // 3, durable=durable)
            for history in (10, args.history)
        }
        long, short = costs[args.history], costs[10]
        growth = median(long["step"]) / median(short["step"])
        rows.append(
            [
                f"step at {args.history:,} vs 10 entries, {label}",
                f"{ms(median(long['step']))} vs {ms(median(short['step']))} ms",
                f"{growth:.2f}x",
            ]
        )
        rows.append(
            [
                f"  physical write at those sizes, {label}",
                f"{ms(median(long['physical']))} vs {ms(median(short['physical']))} ms",
                f"{median(long['physical']) / median(short['physical']):.2f}x (reference)",
            ]
        )
        if durable:
            report.check("core-step-1000", growth, f"{args.history:,} entries")
    report.table("step cost by history (medians)", ("measurement", "long vs short", "ratio"), rows)


FRESH = (
    "import time, sys; t = time.perf_counter(); from chatflow import WorkflowEngine;"
    "WorkflowEngine(storage_dir=sys.argv[1]).get_feature_status('feat_big');"
    "print(time.perf_counter() - t)"
)


def bench_feature_status(folder: Path, args: argparse.Namespace, report: Report) -> None:
    store_dir = folder / "features"
    engine = WorkflowEngine(storage_dir=store_dir, durable=False)
    schema = {"name": "bench", "phases": [{"name": "a"}, {"name": "b"}]}
    for number in range(args.instances):
        iid = engine.start_workflow_instance(schema, {"n": number}, "feat_big")
        if number % 3 == 0:
            engine.trigger_next_step(iid)
    engine.get_feature_status("feat_big")
    warm = timed(lambda: engine.get_feature_status("feat_big"), args.rounds * 3)
    fresh = [run_python(FRESH, str(store_dir)) for _ in range(min(args.rounds, 3))]
    rows = [
        ["warm", f"{ms(min(warm))} / {ms(median(warm))} ms"],
        [
            "fresh process (import and reading every file)",
            f"{ms(min(fresh))} / {ms(median(fresh))} ms",
        ],
    ]
    report.table(f"get_feature_status, {args.instances:,} instances", ("", "min / median"), rows)
    report.check("core-rollup-warm", median(warm) * 1000, f"{args.instances:,} instances")


def run_python(code: str, *argv: str) -> float:
    """The number ``code`` prints, run in a fresh interpreter with bytecode caches as an
    installed package has them (pip compiles on install; PYTHONDONTWRITEBYTECODE would
    hide them)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    command = [sys.executable, "-c", code, *argv]
    return float(
        subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    )


IMPORT = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def bench_import(args: argparse.Namespace, report: Report) -> None:
    """Import time inside a fresh interpreter, against ``import json`` in the same run."""
    found: dict[str, list[float]] = {"chatflow": [], "json": []}
    for module in found:  # write bytecode
        run_python(IMPORT.format(module))
    for _ in range(args.rounds * 2 - 1):
        for module, samples in found.items():
            samples.append(run_python(IMPORT.format(module)))
    rows = [[f"import {m}", f"{ms(min(s))} / {ms(median(s))} ms"] for m, s in found.items()]
    report.table("import in a fresh interpreter", ("", "min / median"), rows)
    report.check(
        "core-import",
        median(found["chatflow"]) * 1000,
        detail=f"import json: {ms(median(found['json']))} ms",
    )


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--steps", type=int, default=300, help="timed steps per measurement")
    options.add_argument("--rounds", type=int, default=5, help="repeats: 3x for roll-ups")
    options.add_argument("--instances", type=int, default=10_000, help="instances in one feature")
    options.add_argument("--history", type=int, default=1000, help="entries of a long history")
    args = quick_sizes(options.parse_args(), steps=3, rounds=1, instances=20, history=20)
    report = Report.start("bench_core", args)
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHATFLOW_BENCH_DIR")) as tmp:
        folder = Path(tmp)
        bench_steps(folder, args, report)
        bench_history(folder, args, report)
        bench_feature_status(folder, args, report)
        bench_import(args, report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
