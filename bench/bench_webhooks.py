"""Webhook delivery benchmark: what the sender adds to each POST (feed read, signing,
lease check, cursor write in the store), per store.

Run:  python bench/bench_webhooks.py [--events 300] [--rounds 5]
      [--stores file,sqlite,postgres,memory] [--pg-url ...] [--quick] [--json]

For each store (``durable=False``; filling is not timed), ``--events`` events are
committed over 10 instances and one hook takes them all, posting to a local
``http.server`` receiver in this process that answers 204. Each round puts the hook's
cursor back at the feed's start and times ``Sender.deliver_all()`` delivering every
event; the reference, interleaved round by round, POSTs as many bodies of the same size
to the same receiver with the same ``urllib`` call and nothing else. Reported: per-event
min / median, deliveries per second, and the ratio of medians.

Target (bench/targets.toml): ``webhook-delivery-overhead``, a delivered event over a
bare POST (medians) <= 3x on the file store and SQLite (and PostgreSQL and memory when
measured): the store's part of a delivery stays below the network's.
"""

from __future__ import annotations

import http.server
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from _harness import Report, interleaved, min_median_ms, parser, quick_sizes
from bench_feed import opened, postgres_reachable
from chatflow.storage import IWorkflowStateStore
from chatflow.testing import make_state
from chatflow.webhooks import Sender, hooks
from chatflow.webhooks.sender import post

INSTANCES = 10


class _Quick(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def fill(store: IWorkflowStateStore, events: int) -> None:
    """``events`` committed events over ``INSTANCES`` instances."""
    ids = []
    for n in range(INSTANCES):
        state = make_state("feat_bench", f"wfi_hook_{n}")
        store.create_state(state)
        ids.append(state["instance_id"])
    for n in range(events - INSTANCES):
        iid = ids[n % INSTANCES]
        store.step(
            iid,
            lambda head, load, n=n: {"kind": "update", "set": {"n": n}, "unset": [], "lists": {}},
        )


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--events", type=int, default=300)
    options.add_argument("--rounds", type=int, default=5)
    options.add_argument("--stores", default="file,sqlite,postgres,memory")
    options.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = quick_sizes(options.parse_args(), events=20, rounds=1)
    report = Report.start("bench_webhooks", args)
    kinds = args.stores.split(",")
    if "postgres" in kinds and (why := postgres_reachable(args.pg_url)):
        report.note(f"PostgreSQL left out: {why}")
        kinds.remove("postgres")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quick)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/in"
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="chatflow_bench_") as folder:
            for kind in kinds:
                with opened(kind, Path(folder), "hooks", args.pg_url) as store:
                    rows.append(_measure(report, kind, store, url, args))
    finally:
        server.shutdown()
        server.server_close()
    report.table(
        f"{args.events} events delivered by one hook vs as many bare POSTs, per event "
        f"(min / median of {args.rounds} rounds)",
        ["store", "bare POST", "delivered", "deliveries/s (median)", "ratio (medians)"],
        rows,
    )
    return report.finish()


def _measure(
    report: Report, kind: str, store: IWorkflowStateStore, url: str, args: Any
) -> list[str]:
    fill(store, args.events)
    hook = hooks.add(store, url, cursor=None)
    body = b"x" * 600  # about a delivery's size
    headers = {"Content-Type": "application/json"}

    def deliver() -> None:
        hooks.reset(store, hook["id"], None)
        sender = Sender(store)
        assert sender.deliver_all()[0].delivered == args.events
        sender.release()

    def bare() -> None:
        for _ in range(args.events):
            assert post(url, body, headers, 10.0) == 204

    deliver()  # warm: connections, caches
    samples = interleaved({"bare": bare, "deliver": deliver}, args.rounds)
    per = {name: [s / args.events for s in values] for name, values in samples.items()}
    median = {name: sorted(values)[len(values) // 2] for name, values in per.items()}
    value = median["deliver"] / median["bare"]
    report.check("webhook-delivery-overhead", value, kind)
    return [
        kind,
        min_median_ms(per["bare"]),
        min_median_ms(per["deliver"]),
        f"{1 / median['deliver']:,.0f}",
        f"{value:.2f}x",
    ]


if __name__ == "__main__":
    sys.exit(main())
