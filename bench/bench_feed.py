"""Change-feed benchmark: reading from a cursor costs what is new, not the history.

Run:  python bench/bench_feed.py [--behind 10000] [--rounds 200]
      [--stores file,sqlite,postgres,memory] [--pg-url ...] [--quick] [--json]

For each store, two stores are filled (``durable=False``; filling is not timed): one
with ``--behind`` events, one with 10; in each, half the history is one instance's log
(the instance that then gets the new event) and half is spread over other instances,
so neither a long log nor a long feed can hide. Then one more event is committed and
``events_since(cursor)`` from just before it (1 new event) is timed in both, interleaved
round by round; min / median of the rounds.

Target (bench/targets.toml): ``feed-seek-10000``, the read with 10,000 events behind the
cursor over the read with 10 behind (medians) <= 2x, on the file store and SQLite (and
PostgreSQL and memory when measured): a cursor seeks, it never scans history.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _harness import Report, interleaved, min_median_ms, parser, quick_sizes
from chatflow.storage import IWorkflowStateStore
from chatflow.testing import make_state

SMALL = 10
SPREAD = 50  # other instances holding the spread half of the history


def _step(store: IWorkflowStateStore, iid: str, n: int) -> None:
    store.step(
        iid, lambda head, load: {"kind": "update", "set": {"n": n}, "unset": [], "lists": {}}
    )


def fill(store: IWorkflowStateStore, behind: int) -> tuple[str, str]:
    """``behind`` events, then one more; return the cursor before it and its instance."""
    main = make_state("feat_bench", "wfi_main")
    store.create_state(main)
    others = [make_state("feat_bench", f"wfi_other_{n}") for n in range(min(SPREAD, behind // 2))]
    for state in others:
        store.create_state(state)
    own = behind // 2 - 1
    spread = behind - 1 - own - len(others)
    for n in range(max(own, 0)):
        _step(store, main["instance_id"], n)
    for n in range(max(spread, 0)):
        _step(store, others[n % len(others)]["instance_id"], n)
    cursor = store.feed_end()
    _step(store, main["instance_id"], -1)  # the 1 new event
    return cursor, main["instance_id"]


@contextmanager
def opened(kind: str, folder: Path, tag: str, pg_url: str) -> Iterator[IWorkflowStateStore]:
    """A fresh, non-durable store of ``kind``, closed (and dropped) afterwards."""
    store: IWorkflowStateStore
    if kind == "file":
        from chatflow.storage import FileStateStore

        store = FileStateStore(folder / tag, durable=False)
    elif kind == "sqlite":
        from chatflow.storage.sqlite import SQLiteStore

        store = SQLiteStore(folder / f"{tag}.db", durable=False)
    elif kind == "memory":
        from chatflow.storage import MemoryStore

        store = MemoryStore()
    else:
        from chatflow.storage.postgres import PostgresStore

        schema = f"chatflow_bench_feed_{os.getpid()}_{tag}"
        store = PostgresStore(pg_url, schema=schema, durable=False)
    try:
        yield store
    finally:
        store.close()
        if kind == "postgres":
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def reader(store: IWorkflowStateStore, cursor: str) -> Callable[[], Any]:
    def read() -> None:
        page = store.events_since(cursor)
        assert len(page.events) == 1, len(page.events)

    return read


def postgres_reachable(url: str) -> str | None:
    """``None`` if the server answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as error:  # noqa: BLE001 - any failure means "leave PostgreSQL out"
        return str(error).strip().splitlines()[0]


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--behind", type=int, default=10_000)
    options.add_argument("--rounds", type=int, default=200)
    options.add_argument("--stores", default="file,sqlite,postgres,memory")
    options.add_argument(
        "--pg-url",
        default=os.environ.get("CHATFLOW_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = quick_sizes(options.parse_args(), behind=200, rounds=3)
    report = Report.start("bench_feed", args)
    kinds = args.stores.split(",")
    if "postgres" in kinds and (why := postgres_reachable(args.pg_url)):
        report.note(f"PostgreSQL left out: {why}")
        kinds.remove("postgres")
    rows = []
    with tempfile.TemporaryDirectory(prefix="chatflow_bench_") as folder:
        for kind in kinds:
            with (
                opened(kind, Path(folder), "big", args.pg_url) as big,
                opened(kind, Path(folder), "small", args.pg_url) as small,
            ):
                reads = {
                    "big": reader(big, fill(big, args.behind)[0]),
                    "small": reader(small, fill(small, SMALL)[0]),
                }
                for read in reads.values():
                    read()  # warm: connections, caches
                samples = interleaved(reads, args.rounds)
            value = (
                sorted(samples["big"])[len(samples["big"]) // 2]
                / sorted(samples["small"])[len(samples["small"]) // 2]
            )
            rows.append(
                [
                    kind,
                    min_median_ms(samples["small"]),
                    min_median_ms(samples["big"]),
                    f"{value:.2f}x",
                ]
            )
            report.check("feed-seek-10000", value, kind)
    report.table(
        f"events_since(cursor) with 1 new event: {SMALL} vs {args.behind:,} events behind "
        f"(min / median of {args.rounds} rounds)",
        ["store", f"{SMALL} behind", f"{args.behind:,} behind", "ratio (medians)"],
        rows,
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
