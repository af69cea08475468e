"""Event-log benchmark: every target of the log model, measured in one run, as ratios.

Run:  python bench/bench_log.py [--stores memory,file,sqlite,postgres] [--rounds 7]
      [--steps 40] [--instances 10000] [--old-rev 548874d] [--kills 200]
      [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--skip crash,rss]
      [--quick] [--json]

The machine is shared and noisy: every figure is the min and median of ``--rounds``
rounds, and every target is a ratio against a reference measured in the same run
(interleaved round by round with the measurement it is compared with).

Targets (bench/targets.toml, the ``log-*`` entries; docs/performance.md cites them):
* durable step at 1,000 and 10,000 history entries against one at 10, every store;
* file store step against its physical write pattern (append + fdatasync one event,
  replace the head without fsync) and against the previous release's file store
  (``--old-rev``: that commit's ``src/``, extracted with ``git archive`` and run in a
  subprocess);
* SQLite step against a bare SQLite commit of the same writes (insert one event row,
  update one head row, WAL, synchronous=FULL);
* PostgreSQL durable steps/s with 4 processes;
* roll-up of a 10,000-instance feature, warm and in a fresh process;
* creating the last 500 instances of a 10,000-instance feature against the first 500;
* lost or doubled steps: 8 processes x 500 triggers on one instance;
* unreadable states, lost acknowledged steps or artifacts after ``--kills`` SIGKILLs;
* the peak RSS of a process touching 100,000 instances.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# The SPEC's workflow, and one whose review loops back until approved (any number of steps).
from _harness import Report, interleaved, min_median_ms, ms, parser, quick_sizes, ratio, timed
from bench_stores import ENDLESS_SCHEMA as LOOP
from bench_stores import SCHEMA as SPEC
from chatflow import WorkflowEngine
from chatflow.storage import IWorkflowStateStore
from chatflow.storage._atomic import write_atomic

TRIGGER = {"result": "x" * 200}


def open_store(kind: str, where: str, *, durable: bool) -> IWorkflowStateStore:
    from chatflow.storage import FileStateStore, MemoryStore
    from chatflow.storage.postgres import PostgresStore
    from chatflow.storage.sqlite import SQLiteStore

    if kind == "memory":
        return _MEMORY.setdefault(where, MemoryStore())
    if kind == "file":
        return FileStateStore(where, durable=durable)
    if kind == "sqlite":
        return SQLiteStore(where, durable=durable)
    url, schema = where.split("#")
    return PostgresStore(url, schema=schema, durable=durable)


_MEMORY: dict[str, IWorkflowStateStore] = {}


# -- step cost by history size ---------------------------------------------------------


def grow(engine: WorkflowEngine, iid: str, entries: int) -> None:
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    for _ in range(entries - len(state.history)):
        engine.trigger_next_step(iid, TRIGGER)


def step_costs(
    kind: str,
    where: str,
    args: argparse.Namespace,
    reference: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Per-step seconds of durable steps on instances of each of ``args.sizes`` entries,
    and of ``reference`` (a physical write), interleaved round by round."""
    builder = WorkflowEngine(store=open_store(kind, where, durable=False))
    engine = WorkflowEngine(store=open_store(kind, where, durable=True))
    actions: dict[str, Callable[[], object]] = {}
    for size in args.sizes:
        iid = builder.start_workflow_instance(LOOP, {}, f"feat_size_{size}")
        grow(builder, iid, size)
        actions[str(size)] = lambda i=iid: engine.trigger_next_step(i, TRIGGER)
    if reference is not None:
        actions["reference"] = reference
    return interleaved(actions, args.rounds, args.steps)


def physical_file(folder: Path, event: int, head: int) -> Callable[[], None]:
    """One step of the file store's write pattern: append + fdatasync one event-sized
    line, then replace a head-sized file (no fsync)."""
    folder.mkdir(parents=True, exist_ok=True)
    log, target = folder / "events.jsonl", folder / "head.json"
    line, data = b"e" * (event - 1) + b"\n", b"h" * head

    def write() -> None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, line)
        os.fdatasync(fd)
        os.close(fd)
        write_atomic(target, data, durable=False)

    return write


def bare_sqlite(path: Path, event: int, head: int) -> Callable[[], None]:
    """One bare transaction: read the head row, insert an event row, update the head row
    (WAL, synchronous=FULL, as the store)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE e (i TEXT, s INTEGER, v TEXT, PRIMARY KEY (i, s))")
    conn.execute("CREATE TABLE h (i TEXT PRIMARY KEY, status TEXT, s INTEGER, v TEXT)")
    conn.execute("INSERT INTO h VALUES ('x', 'running', 0, '')")
    seq = [0]

    def commit() -> None:
        seq[0] += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("SELECT v FROM h WHERE i = 'x'").fetchone()
        conn.execute("INSERT INTO e VALUES ('x', ?, ?)", (seq[0], "e" * event))
        conn.execute("UPDATE h SET s = ?, v = ? WHERE i = 'x'", (seq[0], "h" * head))
        conn.execute("COMMIT")

    return commit


def sizes_of(kind: str, where: str) -> tuple[int, int]:
    """Bytes of one step's event and of a head, as the store writes them."""
    from chatflow.storage import _log

    store = open_store(kind, where, durable=False)
    engine = WorkflowEngine(store=store)
    iid = engine.start_workflow_instance(LOOP, {}, "feat_sizes")
    grow(engine, iid, 10)
    found = store._read(iid)
    assert found is not None
    head, events = found
    return len(_log.canonical(events[-1])) + 1, len(_log.canonical(head))


OLD_STEP = """
import sys, time, json
from chatflow import WorkflowEngine
schema = json.loads(sys.argv[2])
sizes = json.loads(sys.argv[5])
engine = WorkflowEngine(storage_dir=sys.argv[1], durable=False)
ids = {}
for size in sizes:
    ids[size] = engine.start_workflow_instance(schema, {}, "f")
    for _ in range(size - 1):
        engine.trigger_next_step(ids[size], {"result": "x" * 200})
engine = WorkflowEngine(storage_dir=sys.argv[1], durable=True)
out = {size: [] for size in sizes}
for _ in range(int(sys.argv[3])):
    for size in sizes:
        start = time.perf_counter()
        for _ in range(int(sys.argv[4])):
            engine.trigger_next_step(ids[size], {"result": "x" * 200})
        out[size].append((time.perf_counter() - start) / int(sys.argv[4]))
print(json.dumps(out))
"""


OLD_RELEASE = "548874d"  # the last 1.x commit: one JSON document per instance


def extract_src(rev: str, into: Path, report: Report) -> Path | None:
    """``src/`` of commit ``rev`` of this repository in ``into``, or None outside a checkout."""
    repo = Path(__file__).resolve().parent.parent
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", rev, "src"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        report.note(f"no 1.x comparison: git archive {rev} failed")
        return None
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def old_file_store(
    old_src: str, folder: Path, rounds: int, steps: int, sizes: list[int]
) -> dict[str, list[float]]:
    """Per-step seconds of the 1.x file store at ``sizes`` entries, keyed by str(size)."""
    env = {**os.environ, "PYTHONPATH": old_src}
    args = [sys.executable, "-c", OLD_STEP, str(folder), json.dumps(LOOP), str(rounds), str(steps)]
    args.append(json.dumps(sizes))
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    result: dict[str, list[float]] = json.loads(done.stdout)
    return result


# -- roll-ups and creation -------------------------------------------------------------


def create_feature(kind: str, where: str, count: int, batch: int) -> tuple[float, float]:
    """Create ``count`` instances of one feature; per-create seconds of the first and last
    ``batch`` (durable)."""
    engine = WorkflowEngine(store=open_store(kind, where, durable=True))
    times = []
    for _ in range(count):
        start = time.perf_counter()
        engine.start_workflow_instance(SPEC, {}, "feat_big")
        times.append(time.perf_counter() - start)
    return statistics.median(times[:batch]), statistics.median(times[-batch:])


def warm_rollup(kind: str, where: str, rounds: int) -> list[float]:
    engine = WorkflowEngine(store=open_store(kind, where, durable=True))
    engine.get_feature_status("feat_big")
    return timed(lambda: engine.get_feature_status("feat_big"), rounds * 3)


FRESH = """
import sys, time
sys.path.insert(0, sys.argv[3])
from bench_log import open_store
from chatflow import WorkflowEngine
engine = WorkflowEngine(store=open_store(sys.argv[1], sys.argv[2], durable=True))
start = time.perf_counter()
rollup = engine.get_feature_status("feat_big")
print(time.perf_counter() - start, rollup["total_instances"])
"""


def fresh_rollup(kind: str, where: str, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        args = [sys.executable, "-c", FRESH, kind, where, str(Path(__file__).parent)]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        samples.append(float(done.stdout.split()[0]))
    return samples


# -- correctness under contention and kills --------------------------------------------


_ENGINES: dict[tuple[str, str], WorkflowEngine] = {}


def _trigger_many(kind: str, where: str, iid: str, count: int) -> int:
    """``count`` steps on ``iid``; a worker process keeps its engine (and PostgreSQL
    pool) across calls, so a timed call measures steps, not start-up."""
    engine = _ENGINES.get((kind, where))
    if engine is None:
        engine = _ENGINES[kind, where] = WorkflowEngine(store=open_store(kind, where, durable=True))
    for _ in range(count):
        engine.trigger_next_step(iid, {"n": 1})
    return count


def contention(kind: str, where: str, processes: int, each: int) -> tuple[int, int, float]:
    """8 processes x ``each`` triggers on one instance: (lost or doubled, steps, steps/s)."""
    engine = WorkflowEngine(store=open_store(kind, where, durable=True))
    iid = engine.start_workflow_instance(LOOP, {}, "feat_contention")
    start = time.perf_counter()
    if kind == "memory":
        import threading

        threads = [
            threading.Thread(target=_trigger_many, args=(kind, where, iid, each))
            for _ in range(processes)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            pool.starmap(_trigger_many, [(kind, where, iid, each)] * processes)
    elapsed = time.perf_counter() - start
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    steps = processes * each
    problems = abs(state.version - 1 - steps) + abs(len(state.history) - 1 - steps)
    problems += 0 if engine.verify(iid) is None else 1
    return problems, steps, steps / elapsed


def four_processes(kind: str, where: str, each: int) -> float:
    """Durable steps/s of 4 processes, each on an instance of its own; the workers are
    started and connected (one untimed step each) before the clock starts."""
    engine = WorkflowEngine(store=open_store(kind, where, durable=True))
    ids = [engine.start_workflow_instance(LOOP, {}, "feat_four") for _ in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(_trigger_many, [(kind, where, iid, 1) for iid in ids], chunksize=1)
        start = time.perf_counter()
        pool.starmap(_trigger_many, [(kind, where, iid, each) for iid in ids], chunksize=1)
        return 4 * each / (time.perf_counter() - start)


KILL_LOOP = """
import sys
sys.path.insert(0, sys.argv[4])
from bench_log import open_store
from chatflow import WorkflowEngine
engine = WorkflowEngine(store=open_store(sys.argv[1], sys.argv[2], durable=True))
iid, n = sys.argv[3], 0
while True:
    n += 1
    if n % 2:
        engine.trigger_next_step(iid, {"n": n})
    else:
        engine.record_task_artifacts(iid, f"prompt {n}", f"response {n}")
    print(n, flush=True)
"""


def kills(kind: str, where: str, count: int) -> tuple[int, int]:
    """SIGKILL a writer alternating steps and artifact recording ``count`` times; return
    (unreadable or lost, acknowledged operations)."""
    import random

    engine = WorkflowEngine(store=open_store(kind, where, durable=True))
    iid = engine.start_workflow_instance(LOOP, {}, "feat_kill")
    problems = acknowledged_total = 0
    for _ in range(count):
        before = engine.get_workflow_instance_status(iid)
        assert before is not None
        args = [sys.executable, "-c", KILL_LOOP, kind, where, iid, str(Path(__file__).parent)]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        child.stdout.readline()
        time.sleep(random.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        acknowledged = 1 + sum(1 for line in child.stdout if line.strip())
        child.wait()
        acknowledged_total += acknowledged
        try:
            after = engine.get_workflow_instance_status(iid)
            assert after is not None
            steps = (acknowledged + 1) // 2
            if len(after.history) < len(before.history) + steps:
                problems += 1
            if engine.verify(iid) is not None:
                problems += 1
        except Exception:  # noqa: BLE001 - any failure to read counts as a problem
            problems += 1
    return problems, acknowledged_total


RSS = """
import resource, sys, tempfile
from chatflow import WorkflowEngine
engine = WorkflowEngine(storage_dir=sys.argv[1], durable=False)
ids = [str(engine.start_workflow_instance({"name": "w", "phases": [{"name": "a"}, {"name": "b"}]},
       {}, f"feat_{i % 100}")) for i in range(int(sys.argv[2]))]
engine = WorkflowEngine(storage_dir=sys.argv[1], durable=False)
for iid in ids:
    engine.trigger_next_step(iid)
    engine.get_workflow_instance_status(iid)
for feature in engine.list_features():
    engine.get_feature_status(feature)
try:  # this process's own peak: Linux carries the parent's peak into ru_maxrss over exec
    with open("/proc/self/status") as status:
        print(next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024)
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def rss(folder: Path, count: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", RSS, str(folder), str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


# -- main ------------------------------------------------------------------------------


def pg_where(url: str, report: Report) -> str | None:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            pass
    except Exception as error:  # noqa: BLE001 - reported, and PostgreSQL is left out
        report.note(f"PostgreSQL left out: {str(error).strip().splitlines()[0]}")
        return None
    return f"{url}#bench_log_{os.getpid()}"


def drop_pg(where: str) -> None:
    import psycopg

    url, schema = where.split("#")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--stores", default="memory,file,sqlite,postgres")
    options.add_argument("--rounds", type=int, default=7)
    options.add_argument("--steps", type=int, default=40, help="steps per round and size")
    options.add_argument(
        "--sizes", default="10,1000,10000", help="history sizes: the first is the reference"
    )
    options.add_argument("--instances", type=int, default=10_000)
    options.add_argument("--writers", type=int, default=8, help="processes on one instance")
    options.add_argument("--triggers", type=int, default=500, help="triggers per process")
    options.add_argument("--kills", type=int, default=200)
    options.add_argument("--rss-instances", type=int, default=100_000)
    options.add_argument(
        "--old-rev", default=OLD_RELEASE, help="commit of the 1.x release to compare with"
    )
    options.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    options.add_argument(
        "--skip", default="", help="comma list of: size,rollup,contention,crash,rss"
    )
    args = quick_sizes(
        options.parse_args(),
        rounds=1,
        steps=2,
        sizes="2,4,6",
        instances=20,
        writers=2,
        triggers=3,
        kills=2,
        rss_instances=50,
    )
    args.sizes = [int(size) for size in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    report = Report.start("bench_log", args)
    tmp = Path(tempfile.mkdtemp(prefix="bench_log_"))
    for kind in args.stores.split(","):
        where = {
            "memory": "m",
            "file": str(tmp / kind),
            "sqlite": str(tmp / "state.db"),
        }.get(kind) or pg_where(args.pg_url, report)
        if where is None:
            continue
        rows: list[list[str]] = []
        try:
            run_store(kind, where, args, skip, tmp, report, rows)
        finally:
            if kind == "postgres":
                drop_pg(where)
            report.table(f"{kind} store, {args.rounds} rounds", HEADER, rows)
    return report.finish()


HEADER = ("measurement", "min / median", "target")


def run_store(  # noqa: PLR0912, PLR0915 - one section per target, in the docstring's order
    kind: str,
    where: str,
    args: argparse.Namespace,
    skip: set[str],
    tmp: Path,
    report: Report,
    rows: list[list[str]],
) -> None:
    """Measure every target that applies to store ``kind``, adding its figures to ``rows``."""
    base, sizes = args.sizes[0], args.sizes
    if "size" not in skip:
        reference = None
        if kind in ("file", "sqlite"):
            event, head = sizes_of(kind, where)
            if kind == "file":
                reference = physical_file(tmp / "physical", event, head)
            else:
                reference = bare_sqlite(tmp / "bare.db", event, head)
        costs = step_costs(kind, where, args, reference)
        for size in sizes:
            rows.append([f"durable step at {size:,} entries", min_median_ms(costs[str(size)]), ""])
        for size, name in zip(sizes[1:], ("log-step-1000", "log-step-10000"), strict=False):
            growth = ratio(costs[str(size)], costs[str(base)])
            rows.append([f"step at {size:,} / at {base:,} (medians)", f"{growth:.2f}x", name])
            report.check(name, growth, f"{kind}, {size:,} entries")
        if reference is not None:
            what = "physical append+fdatasync, head replace" if kind == "file" else "bare commit"
            name = "log-file-vs-physical" if kind == "file" else "log-sqlite-vs-bare-commit"
            speed = ratio(costs["reference"], costs[str(base)])
            rows.append([what, min_median_ms(costs["reference"]), ""])
            rows.append([f"{what} / step (medians)", f"{speed:.2f}x", name])
            report.check(name, speed, f"{base:,} entries")
        old_src = extract_src(args.old_rev, tmp / "old_src", report) if kind == "file" else None
        if old_src is not None:
            compared = sizes[:2]
            old = old_file_store(str(old_src), tmp / "old", args.rounds, args.steps, compared)
            for size in compared:
                speed = ratio(old[str(size)], costs[str(size)])
                rows.append(
                    [f"previous release step at {size:,}", min_median_ms(old[str(size)]), ""]
                )
                rows.append(
                    [f"speed-up vs previous at {size:,}", f"{speed:.2f}x", "log-file-vs-1x"]
                )
                report.check("log-file-vs-1x", speed, f"{size:,} entries")
    if "rollup" not in skip:
        batch = max(1, args.instances // 20)
        first, last = create_feature(kind, where, args.instances, batch)
        growth = last / first
        rows.append(
            [
                f"create, last {batch:,} / first {batch:,} of {args.instances:,}",
                f"{ms(first)} -> {ms(last)} ms = {growth:.2f}x",
                "log-create-last-vs-first",
            ]
        )
        report.check("log-create-last-vs-first", growth, kind)
        warm = warm_rollup(kind, where, args.rounds)
        rows.append(
            [f"roll-up of {args.instances:,}, warm", min_median_ms(warm), "log-rollup-warm"]
        )
        report.check(
            "log-rollup-warm", statistics.median(warm) * 1000, f"{kind}, {args.instances:,}"
        )
        if kind != "memory":
            fresh = fresh_rollup(kind, where, min(args.rounds, 5))
            rows.append(
                [
                    f"roll-up of {args.instances:,}, fresh process",
                    min_median_ms(fresh),
                    "log-rollup-fresh",
                ]
            )
            report.check(
                "log-rollup-fresh", statistics.median(fresh) * 1000, f"{kind}, {args.instances:,}"
            )
    if "contention" not in skip:
        problems, _, rate = contention(kind, where, args.writers, args.triggers)
        rows.append(
            [
                f"{args.writers} x {args.triggers} triggers on one instance",
                f"{problems} lost/doubled ({rate:.0f} steps/s)",
                "log-contention",
            ]
        )
        report.check("log-contention", problems, kind, f"{rate:,.0f} steps/s")
        if kind == "postgres":
            rate = four_processes(kind, where, args.triggers)
            rows.append(
                ["4 processes, durable steps/s", f"{rate:,.0f}", "log-postgres-4-processes"]
            )
            report.check("log-postgres-4-processes", rate, "4 processes")
    if "crash" not in skip and kind != "memory":
        problems, acknowledged = kills(kind, where, args.kills)
        rows.append(
            [
                f"{args.kills} SIGKILLs in steps + artifacts",
                f"{problems} problems, {acknowledged} acknowledged",
                "log-kills",
            ]
        )
        report.check("log-kills", problems, f"{kind}, {args.kills} kills")
    if "rss" not in skip and kind == "file":
        peak = rss(tmp / "rss", args.rss_instances)
        rows.append(
            [f"peak RSS touching {args.rss_instances:,} instances", f"{peak:.0f} MB", "log-rss"]
        )
        report.check("log-rss", peak, f"{args.rss_instances:,} instances")


if __name__ == "__main__":
    sys.exit(main())
