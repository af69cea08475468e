"""UI benchmark: the features overview of 10,000 instances, served and rendered.

Run:  python bench/bench_ui.py [--instances 10000] [--repeat 5] [--stores file,sqlite]

For each store and layout it fills a fresh store (``durable=False``; filling is not
timed), starts ``UIServer`` in this process, and measures:

* ``/api/features`` over HTTP (the JSON the overview shows), first request and then
  warm (min / median of ``--repeat``);
* the overview in Chromium, when Playwright and /usr/bin/chromium are available:
  "page" is the page's own measure, from navigation start to the first frame drawn with
  its rows (300 at most, newest activity first; the filter searches all); "driver" is
  the same seen from Playwright, whose round trips add a few hundred ms.

Layouts: 100 features x 100 instances (a busy project), and every instance its own
feature (the worst case: one roll-up per instance). A 10-instance store measured the
same way in the same run is the reference, so the ratio shows what 10,000 add on this
(shared) machine. Target: the overview of 10,000 instances renders in <= 1 s.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def in_page(action: Callable[[], float], repeat: int) -> list[float]:
    """Times the page measured itself (``performance`` marks), without the driver's."""
    return [action() for _ in range(repeat)]


def fetch_features(app: UIServer) -> Callable[[], object]:
    def run() -> object:
        connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
        connection.request("GET", "/api/features", headers={"Authorization": f"Bearer {app.token}"})
        body = connection.getresponse().read()
        connection.close()
        return body

    return run


def render_overview(app: UIServer, browser: Any, features: int) -> Callable[[], object]:
    context = browser.new_context()
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

    return run


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
    return f"{min(values) * 1000:8.1f} {statistics.median(values) * 1000:8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stores", default="file,sqlite")
    args = parser.parse_args()
    manager, browser = launch()
    layouts = [
        ("reference: 10 instances, 2 features", 10, 2),
        (f"{args.instances:,} instances, 100 features", args.instances, 100),
        (f"{args.instances:,} instances, 1 feature each", args.instances, args.instances),
    ]
    print(f"{'store':<7} {'layout':<38} {'api first':>9} {'api min   median':>17}", end="")
    print(f" {'driver min  median':>18} {'page min   median':>18} {'ratio':>6}")
    for kind in args.stores.split(","):
        reference = None
        for label, instances, features in layouts:
            with serving(kind, instances, features) as app:
                first = timed(fetch_features(app), 1)[0]
                api = timed(fetch_features(app), args.repeat)
                rendered = drawn = "      (no browser)"
                ratio = ""
                if browser is not None:
                    run = render_overview(app, browser, features)
                    rendered = ms(timed(run, args.repeat))
                    marks = in_page(run, args.repeat)
                    drawn = ms(marks)
                    reference = reference or statistics.median(marks)
                    ratio = f"{statistics.median(marks) / reference:6.1f}"
            print(
                f"{kind:<7} {label:<38} {first * 1000:9.1f} {ms(api)} {rendered:>18} "
                f"{drawn:>18} {ratio}"
            )
            sys.stdout.flush()
    print(
        "ms; driver = Playwright's goto until the rows are in the DOM; page = navigation start"
        " to the first frame with the rows (the page's own mark); ratio = page vs reference"
    )
    if browser is not None:
        browser.close()
        manager.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
