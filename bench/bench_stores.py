"""Store benchmark: the file, SQLite and PostgreSQL stores side by side in one table.

Run:  python bench/bench_stores.py [--steps 300] [--instances 10000] [--processes 4]
      [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--stores file,sqlite,postgres]
      [--quick] [--json]

Every figure goes through the public engine API with durable stores (fsync on commit),
except the 10,000-instance fixtures, which are loaded with ``durable=False``:

* durable steps/s, p50 and p99 of ``trigger_next_step`` in one process (instances of the
  SPEC's 3-phase workflow, a new one started whenever one completes; starts not timed);
* ``get_feature_status`` of a feature with 10,000 instances, warm (median of 20);
* steps/s of 4 processes, each on its own instances (steps/2 each), and all 4 on one
  shared instance of a looping workflow (steps/4 each, so its history grows to ``steps``
  entries: the shared rate includes handling an ever longer state).

Targets (bench/targets.toml): ``stores-sqlite-vs-file``, SQLite's durable steps/s
against the file store's in the same run; ``stores-postgres-4-processes``;
``stores-rollup-warm``, feature status at 10,000 instances on SQLite and PostgreSQL.
PostgreSQL runs in a schema of its own, dropped at the end; it is left out (with a note)
when no server is reachable. ``bench_log.py`` measures the event-log targets.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _harness import Report, parser, quick_sizes
from chatflow import WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.storage.sqlite import SQLiteStore

# The SPEC's workflow: short instances, so a step's cost is the store's, not the history's.
SCHEMA: dict[str, Any] = {
    "name": "code_generation",
    "phases": [{"name": "requirement_analysis"}, {"name": "design"}, {"name": "implementation"}],
}
# For the shared instance: review loops back to implementation until approved, so one
# instance takes any number of steps with a schema of ordinary size.
ENDLESS_SCHEMA: dict[str, Any] = {
    "name": "endless",
    "phases": [
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
StoreFactory = Callable[[bool], IWorkflowStateStore]


# -- workloads ---------------------------------------------------------------------------


def run_steps(engine: WorkflowEngine, steps: int, feature: str) -> list[float]:
    """Seconds per ``trigger_next_step``, restarting instances as they complete."""
    samples = []
    instance = engine.start_workflow_instance(SCHEMA, {}, feature)
    for step in range(steps):
        started = time.perf_counter()
        state = engine.trigger_next_step(instance, trigger_data={"step": step})
        samples.append(time.perf_counter() - started)
        if state.status.is_finished:
            instance = engine.start_workflow_instance(SCHEMA, {}, feature)
    return samples


def _worker(
    factory: StoreFactory, steps: int, instance: str | None, barrier: Any
) -> tuple[float, float]:
    """One benchmark process: its own store and engine; returns its (start, end) times."""
    engine = WorkflowEngine(store=factory(True))
    engine.list_features()  # connect before the clock starts
    barrier.wait()
    started = time.monotonic()
    if instance is None:
        run_steps(engine, steps, f"feat_{os.getpid()}")
    else:
        for step in range(steps):
            engine.trigger_next_step(instance, trigger_data={"step": step})
    return started, time.monotonic()


def parallel_rate(factory: StoreFactory, processes: int, steps: int, shared: bool) -> float:
    """Steps/s of ``processes`` processes together, on one shared instance or their own."""
    instance = None
    if shared:
        engine = WorkflowEngine(store=factory(True))
        instance = engine.start_workflow_instance(ENDLESS_SCHEMA, {}, "feat_shared")
        engine.state_store.close()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(processes)
        with context.Pool(processes) as pool:
            spans = pool.starmap(_worker, [(factory, steps, instance, barrier)] * processes)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return processes * steps / wall


def feature_status_ms(factory: StoreFactory, instances: int) -> float:
    """Median warm ``get_feature_status`` time over a feature of ``instances`` instances."""
    loader = WorkflowEngine(store=factory(False))
    for _ in range(instances):
        loader.start_workflow_instance(SCHEMA, {}, "feat_big")
    loader.state_store.close()
    engine = WorkflowEngine(store=factory(True))
    status = engine.get_feature_status("feat_big")
    assert status["total_instances"] == instances, status
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        engine.get_feature_status("feat_big")
        samples.append(time.perf_counter() - started)
    engine.state_store.close()
    return statistics.median(samples) * 1000


# -- stores ------------------------------------------------------------------------------


class Factory:
    """Picklable store factory: ``factory(durable)`` opens a store on one location."""

    def __init__(self, kind: str, location: str, schema: str = "") -> None:
        self.kind, self.location, self.schema = kind, location, schema

    def __call__(self, durable: bool) -> IWorkflowStateStore:
        if self.kind == "file":
            from chatflow.storage import FileStateStore

            return FileStateStore(self.location, durable=durable)
        if self.kind == "sqlite":
            return SQLiteStore(self.location, durable=durable)
        from chatflow.storage.postgres import PostgresStore

        return PostgresStore(self.location, schema=self.schema, durable=durable)


@contextmanager
def locations(kind: str, workdir: Path, pg_url: str, tag: str) -> Iterator[Factory]:
    """A fresh location for ``kind`` (per measurement ``tag``), cleaned up afterwards."""
    if kind == "postgres":
        schema = f"chatflow_bench_{os.getpid()}_{tag}"
        try:
            yield Factory(kind, pg_url, schema)
        finally:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return
    suffix = ".db" if kind.startswith("sqlite") else ""
    yield Factory(kind, str(workdir / f"{kind}_{tag}{suffix}"))


def postgres_reachable(url: str) -> str | None:
    """``None`` if the server answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as error:  # noqa: BLE001 - any failure means "leave PostgreSQL out"
        return str(error).strip().splitlines()[0]


def measure(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    results: dict[str, float] = {}
    with locations(kind, workdir, args.pg_url, "steps") as factory:
        engine = WorkflowEngine(store=factory(True))
        samples = run_steps(engine, args.steps, "feat_steps")
        engine.state_store.close()
    results["steps/s"] = len(samples) / sum(samples)
    results["p50 ms"] = statistics.median(samples) * 1000
    results["p99 ms"] = statistics.quantiles(samples, n=100)[98] * 1000
    with locations(kind, workdir, args.pg_url, "status") as factory:
        results[f"status@{args.instances} ms"] = feature_status_ms(factory, args.instances)
    for shared in (False, True):
        label = f"{args.processes} procs {'shared' if shared else 'distinct'} steps/s"
        with locations(kind, workdir, args.pg_url, f"p{int(shared)}") as factory:
            steps = args.steps // (4 if shared else 2)
            results[label] = parallel_rate(factory, args.processes, steps, shared)
    return results


def print_table(results: dict[str, dict[str, float]], report: Report) -> None:
    kinds = list(results)
    metrics = list(next(iter(results.values())))
    rows = [[metric, *(f"{results[kind][metric]:,.1f}" for kind in kinds)] for metric in metrics]
    report.table("the stores side by side", ("metric", *kinds), rows)


def check_targets(
    results: dict[str, dict[str, float]], args: argparse.Namespace, report: Report
) -> None:
    status = f"status@{args.instances} ms"
    distinct = f"{args.processes} procs distinct steps/s"
    if "file" in results and "sqlite" in results:
        ratio = results["sqlite"]["steps/s"] / results["file"]["steps/s"]
        report.check("stores-sqlite-vs-file", ratio)
    if "postgres" in results:
        report.check(
            "stores-postgres-4-processes",
            results["postgres"][distinct],
            f"{args.processes} processes",
        )
    for kind in ("sqlite", "postgres"):
        if kind in results:
            report.check(
                "stores-rollup-warm", results[kind][status], f"{kind}, {args.instances:,} instances"
            )


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--steps", type=int, default=300)
    options.add_argument("--instances", type=int, default=10_000)
    options.add_argument("--processes", type=int, default=4)
    options.add_argument("--stores", default="file,sqlite,postgres")
    options.add_argument(
        "--pg-url",
        default=os.environ.get("CHATFLOW_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = quick_sizes(options.parse_args(), steps=8, instances=20, processes=1)
    report = Report.start("bench_stores", args)
    kinds = args.stores.split(",")
    if "postgres" in kinds and (why := postgres_reachable(args.pg_url)):
        report.note(f"PostgreSQL left out: {why}")
        kinds.remove("postgres")
    results = {}
    with tempfile.TemporaryDirectory(prefix="chatflow_bench_") as folder:
        for kind in kinds:
            started = time.monotonic()
            results[kind] = measure(kind, args, Path(folder))
            report.say(f"{kind}: measured in {time.monotonic() - started:.0f} s")
    print_table(results, report)
    check_targets(results, args, report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
