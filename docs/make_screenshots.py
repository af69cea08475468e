"""Regenerate docs/ui-overview.png, ui-instance.png and ui-fork.png (Playwright + Chromium).

Run:  python docs/make_screenshots.py [--dark]

The store is filled on a simulated clock (minutes per phase rather than the
milliseconds a script takes), so durations and waits on the pictures look like a
real day's work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

import chatflow.core.engine  # noqa: F401 - loads every module that reads the clock
from chatflow import WorkflowEngine
from chatflow.ui import UIServer

DOCS = Path(__file__).resolve().parent
EXAMPLES = DOCS.parent / "examples" / "workflows"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


class Clock:
    """Stands in for ``generate_timestamp``: advances only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.5
        return self.now

    def wait(self, minutes: float) -> None:
        self.now += minutes * 60


def use_clock(clock: Clock) -> None:
    """Every engine module that stamps times reads ``clock`` (each imported its own name)."""
    for name, module in list(sys.modules.items()):
        reads = name.startswith("chatflow.") and module is not sys.modules["chatflow.domain.models"]
        if reads and hasattr(module, "generate_timestamp"):
            module.generate_timestamp = clock


def work(engine: WorkflowEngine, clock: Clock, iid: str, minutes: float, trigger: dict) -> bool:
    """Spend ``minutes`` on the current phase, record its prompt and response, step;
    ``False`` once the instance has finished."""
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    phase = state.current_phase
    clock.wait(minutes)
    request = state.variables.get("user_request", "the feature")
    engine.record_task_artifacts(
        iid,
        f"# {phase.title()}\n\nYou are working on: {request}.\n"
        f"Produce the {phase} for this change. Keep it short and list open questions.",
        f"## {phase.title()} for {request}\n\n- done in small steps\n- tests first\n"
        f"- open question: none\n",
    )
    return not engine.trigger_next_step(
        iid, trigger, meta={"actor": "claude_agent"}
    ).status.is_finished


def fill(engine: WorkflowEngine, clock: Clock) -> tuple[str, str]:
    engine.register_schema(EXAMPLES / "chatcoder_feature.yaml")
    features = {
        "feat_user_auth": 6,
        "feat_billing_export": 4,
        "feat_dark_mode": 3,
        "feat_search_filters": 5,
        "feat_audit_log": 2,
        "feat_rate_limits": 3,
    }
    for feature, count in features.items():
        for n in range(count):
            iid = engine.start_workflow_instance(
                schema_name="chatcoder_feature",
                initial_context={"user_request": feature.removeprefix("feat_").replace("_", " ")},
                feature_id=feature,
                meta={"actor": "dev_alice"},
            )
            steps = (n * 3 + len(feature)) % 8
            for step in range(steps):
                trigger = {"failed": 1} if step == 3 and n % 2 else {"verdict": "approved"}
                if not work(engine, clock, iid, 9 + step * 4, trigger):
                    break
            if n % 5 == 4 and steps < 6:
                engine.fail_phase(iid, "model returned an empty diff", actor="claude_agent")
            clock.wait(35)
    return story(engine, clock)


def story(engine: WorkflowEngine, clock: Clock) -> tuple[str, str]:
    """The instance on the second picture (a loop, a failure and retry, an approval) and
    the one on the third: a fork of it from its second visit of code."""
    iid = engine.start_workflow_instance(
        schema_name="chatcoder_feature",
        initial_context={"user_request": "password reset by e-mail"},
        feature_id="feat_password_reset",
        meta={"actor": "dev_alice"},
    )
    work(engine, clock, iid, 12, {})
    work(engine, clock, iid, 25, {})
    work(engine, clock, iid, 41, {})
    work(engine, clock, iid, 8, {"failed": 2})
    clock.wait(6)
    engine.fail_phase(iid, "AI call timed out after 120 s", actor="claude_agent")
    clock.wait(3)
    engine.retry_phase(iid, note="smaller context window", actor="dev_alice")
    work(engine, clock, iid, 17, {})
    work(engine, clock, iid, 7, {"failed": 0, "risk": 85})
    clock.wait(18)
    engine.resume(iid, approved_by="dev_alice", note="touches the token table; reviewed")
    clock.wait(4)
    fork = engine.fork(iid, 4, meta={"actor": "dev_bob"})
    work(engine, clock, fork, 14, {})
    work(engine, clock, fork, 6, {"failed": 0})
    clock.wait(3)
    return iid, fork


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dark", action="store_true", help="dark colour scheme")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    probe = Clock(0.0)  # a rehearsal in memory: how long the simulated story lasts
    use_clock(probe)
    fill(WorkflowEngine(storage_dir="memory://"), probe)
    clock = Clock(time.time() - probe.now)  # so that it ends now
    with tempfile.TemporaryDirectory() as folder:
        use_clock(clock)
        engine = WorkflowEngine(storage_dir=folder, durable=False)
        iid, fork = fill(engine, clock)
        app = UIServer(engine, allow_actions=True).start()
        suffix = "-dark" if args.dark else ""
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, args=CHROMIUM_ARGS
                )
                page = browser.new_page(
                    viewport={"width": 1360, "height": 860},
                    color_scheme="dark" if args.dark else "light",
                    device_scale_factor=1,
                )
                page.goto(app.url)
                page.locator("#overview tbody tr").first.wait_for()
                page.screenshot(path=DOCS / f"ui-overview{suffix}.png")
                page.goto(f"{app.origin}/#/instance/{iid}")
                page.locator("img.graph[data-loaded]").wait_for()
                page.set_viewport_size({"width": 1360, "height": 1900})
                page.screenshot(path=DOCS / f"ui-instance{suffix}.png")
                page.set_viewport_size({"width": 1360, "height": 860})
                page.goto(f"{app.origin}/#/instance/{fork}")
                page.locator("img.graph[data-loaded]").wait_for()
                page.locator(".facts .fact-id").wait_for()
                page.set_viewport_size({"width": 1360, "height": 1480})
                page.screenshot(path=DOCS / f"ui-fork{suffix}.png")
                browser.close()
        finally:
            app.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
