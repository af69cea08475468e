"""Time-and-money benchmark: what budgets and deadlines cost a step, and ``due``'s speed.

Run:  python bench/bench_spend.py [--quick] [--json]

In one run it measures:

* a durable step on the file store of a workflow with budgets (workflow and phase) and
  a deadline on every other phase, against the same step on the same workflow without
  them, interleaved round by round (each round steps one instance of each);
* ``engine.due()`` over 10,000 instances waiting under a deadline, 1 % of them overdue,
  on SQLite and the file store (the index of waiting instances, not every head).

Targets (issue 19): spend-step-ratio, spend-due-10000.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import LOOP, Report, interleaved, median, min_median_ms, parser, ratio, timed


def limited() -> dict[str, Any]:
    """``LOOP`` with budgets that are never crossed and a deadline on ``review``."""
    code, review = (dict(phase) for phase in LOOP["phases"])
    code["budget"] = {"tokens": 10**12, "cost_usd": 10**9, "visits": 10**9}
    review.update(deadline="4h", deadline_of="phase", on_timeout="escalate", budget={"wall": "1d"})
    budget = {"tokens": 10**12, "cost_usd": 10**9, "wall": "100d", "visits": 10**9}
    return {"name": "loop_limited", "budget": budget, "phases": [code, review]}


WAITING: dict[str, Any] = {
    "name": "waiting",
    "phases": [
        {"name": "review", "requires_approval": True, "deadline": "4h", "on_timeout": "fail"},
        {"name": "ship"},
    ],
}


def step_ratio(report: Report, folder: Path, rounds: int) -> None:
    from chatflow.core.engine import WorkflowEngine

    engine = WorkflowEngine(folder / "steps")
    plain = engine.start_workflow_instance(LOOP, {}, "feat_plain")
    with_limits = engine.start_workflow_instance(limited(), {}, "feat_limited")
    for iid in (plain, with_limits):  # warm: caches, first index line
        engine.trigger_next_step(iid)
    samples = interleaved(
        {
            "plain": lambda: engine.trigger_next_step(plain),
            "limited": lambda: engine.trigger_next_step(with_limits),
        },
        rounds,
    )
    value = ratio(samples["limited"], samples["plain"])
    report.table(
        "durable step, file store (per step)",
        ["workflow", "min / median"],
        [
            ["without budgets or deadlines", min_median_ms(samples["plain"])],
            ["with budgets and a deadline", min_median_ms(samples["limited"])],
        ],
    )
    report.check("spend-step-ratio", value, "file", f"{rounds} rounds")
    engine.close()


def due_time(report: Report, folder: Path, instances: int, repeat: int) -> None:
    from chatflow.core.engine import WorkflowEngine

    rows = []
    for kind, target in (
        ("sqlite", f"sqlite:///{folder / 'due.db'}"),
        ("file", str(folder / "due")),
    ):
        engine = WorkflowEngine(target, durable=False)  # filling fast; due only reads
        engine.register_schema(WAITING)
        ids = [
            engine.start_workflow_instance(WAITING, {}, f"feat_{i % 100:03d}")
            for i in range(instances)
        ]
        first = engine.get_workflow_instance_status(ids[instances // 100])
        assert first is not None
        assert first.wait is not None
        now = float(first.wait["due_at"])  # about 1 % are overdue at this time
        found = len(engine.due(now))
        engine.close()
        fresh = WorkflowEngine(target)  # a new engine: nothing cached
        samples = timed(lambda engine=fresh, at=now: engine.due(at), repeat)
        fresh.close()
        rows.append([kind, f"{instances:,}", str(found), min_median_ms(samples)])
        report.check("spend-due-10000", median(samples) * 1000, kind, f"{found} overdue")
    header = ["store", "waiting", "overdue", "min / median"]
    report.table("engine.due() over waiting instances", header, rows)


def main() -> int:
    args = parser(__doc__).parse_args()
    report = Report.start("bench_spend", args)
    rounds, instances, repeat = (5, 200, 3) if args.quick else (200, 10_000, 15)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        step_ratio(report, Path(folder), rounds)
        due_time(report, Path(folder), instances, repeat)
    report.say(f"(took {time.perf_counter() - started:.0f} s)")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
