"""UI benchmark: the features overview of 10,000 instances, served and rendered.

Run:  python bench/bench_ui.py [--instances 10000] [--repeat 5] [--stores file,sqlite]
      [--quick] [--json]

For each store and layout it fills a fresh store (``durable=False``; filling is not
timed), starts ``UIServer`` in this process, and measures:

* ``/api/overview`` over HTTP (the JSON the overview shows: roll-ups and totals), first
  request and then warm (min / median of ``--repeat``);
* the overview in Chromium, when Playwright and /usr/bin/chromium are available:
  "page" is the page's own measure, from navigation start to the first frame drawn with
  its rows (300 at most, newest activity first; the filter searches all); "driver" is
  the same seen from Playwright, whose round trips add a few hundred ms.

Layouts: 100 features x 100 instances (a busy project), and every instance its own
feature (the worst case: one roll-up per instance). A 10-instance store measured the
same way in the same run is the reference, so the ratio shows what 10,000 add on this
(shared) machine. Target (bench/targets.toml): ``ui-overview-drawn``, the overview of
10,000 instances drawn by the page.
"""

from __future__ import annotations

import http.client
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _harness import Report, parser, quick_sizes, timed
from chatflow import WorkflowEngine
from chatflow.ui import UIServer

SCHEMA: dict[str, Any] = {
    "name": "code_generation",
    "phases": [{"name": "requirement_analysis"}, {"name": "design"}, {"name": "implementation"}],
}
CHROMIUM = "/usr/bin/chromium"
PAGE_ROWS = 300  # the overview draws this many rows first (app.js), then more on request
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def fill(engine: WorkflowEngine, instances: int, features: int) -> None:
    """``instances`` instances spread over ``features`` features, a third of them stepped."""
    for index in range(instances):
        iid = engine.start_workflow_instance(SCHEMA, {}, f"feat_{index % features:05d}")
        for _ in range(index % 3):
            engine.trigger_next_step(iid, {"n": index})


def target(kind: str, folder: Path) -> str:
    return str(folder / "store") if kind == "file" else f"sqlite:///{folder / 'state.db'}"


@contextmanager
def serving(kind: str, instances: int, features: int) -> Iterator[UIServer]:
    with tempfile.TemporaryDirectory() as folder:
        where = target(kind, Path(folder))
        fill(WorkflowEngine(storage_dir=where, durable=False), instances, features)
        app = UIServer(WorkflowEngine(storage_dir=where, durable=False)).start()  # cold cache
        try:
            yield app
        finally:
            app.shutdown()


def in_page(action: Callable[[], float], repeat: int) -> list[float]:
    """Times the page measured itself (``performance`` marks), without the driver's."""
    return [action() for _ in range(repeat)]


def fetch_features(app: UIServer) -> Callable[[], object]:
    def run() -> object:
        connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
        connection.request("GET", "/api/overview", headers={"Authorization": f"Bearer {app.token}"})
        body = connection.getresponse().read()
        connection.close()
        return body

    return run


@contextmanager
def overview(app: UIServer, context: Any, features: int) -> Iterator[Callable[[], float]]:
    """A page of the browser ``context`` on ``app``'s overview, and a function that loads it
    again and returns the page's own time to draw it. One context serves every layout:
    each server has its own port, so its own origin, cookie and cache."""
    page = context.new_page()
    page.goto(app.url)  # trade the token for the cookie once
    page.locator("#overview").wait_for(timeout=60_000)
    last = f"#overview tbody tr:nth-child({min(features, PAGE_ROWS)})"

    def run() -> float:
        page.goto(f"{app.origin}/?r={time.perf_counter()}")
        page.locator(last).wait_for(state="attached", timeout=60_000)
        for _ in range(1000):
            drawn = page.evaluate(DRAWN)
            if drawn is not None:
                return float(drawn) / 1000
            time.sleep(0.005)
        raise RuntimeError("the overview never marked itself drawn")

    try:
        yield run
    finally:
        page.close()


# Navigation start to the first frame after the rows were built (app.js marks it).
DRAWN = """() => {
  const mark = performance.getEntriesByName("chatflow:overview-drawn")[0];
  return mark ? mark.startTime : null;
}"""


def launch() -> tuple[Any, Any] | tuple[None, None]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, None
    if not Path(CHROMIUM).exists():
        return None, None
    manager = sync_playwright().start()
    return manager, manager.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def ms(values: list[float]) -> str:
    return f"{min(values) * 1000:,.0f} / {statistics.median(values) * 1000:,.0f} ms"


def main() -> int:
    options = parser(__doc__)
    options.add_argument("--instances", type=int, default=10_000)
    options.add_argument("--repeat", type=int, default=5)
    options.add_argument("--stores", default="file,sqlite")
    args = quick_sizes(options.parse_args(), instances=20, repeat=1)
    report = Report.start("bench_ui", args)
    manager, browser = launch()
    context = browser.new_context() if browser is not None else None
    if browser is None:
        report.note(f"no browser (Playwright and {CHROMIUM}): pages not drawn, nor judged")
    layouts = [
        ("reference: 10 instances, 2 features", 10, 2),
        (f"{args.instances:,} instances, 100 features", args.instances, min(100, args.instances)),
        (f"{args.instances:,} instances, 1 feature each", args.instances, args.instances),
    ]
    rows = []
    for kind in args.stores.split(","):
        reference = None
        for label, instances, features in layouts:
            with serving(kind, instances, features) as app:
                first = timed(fetch_features(app), 1)[0]
                api = timed(fetch_features(app), args.repeat)
                rendered = drawn = "(no browser)"
                versus = ""
                if context is not None:
                    with overview(app, context, features) as run:
                        rendered = ms(timed(run, args.repeat))
                        marks = in_page(run, args.repeat)
                    drawn = ms(marks)
                    reference = reference or statistics.median(marks)
                    versus = f"{statistics.median(marks) / reference:.1f}x"
                    if instances == args.instances:
                        page = statistics.median(marks) * 1000
                        report.check("ui-overview-drawn", page, f"{kind}, {label}", versus)
            rows.append([kind, label, f"{first * 1000:,.0f} ms", ms(api), rendered, drawn, versus])
            report.say(f"{kind}, {label}: done")
    header = ("store", "layout", "api first", "api min / median", "driver", "page", "x reference")
    report.table(
        "the overview (driver: Playwright's goto until the rows are in the DOM;"
        " page: navigation start to the first frame with the rows, the page's own"
        " mark)",
        header,
        rows,
    )
    if browser is not None:
        browser.close()
        manager.stop()
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
