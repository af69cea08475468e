"""OpenTelemetry stays optional and costs nothing unless asked for: without it, the
library and the ``chatflow`` command import none of it; with it installed, nothing loads
it until the application does; an explicit request for tracing without it is one line
naming what to install, with nothing written. Each case runs in a fresh interpreter:
"not installed" is an import blocker on ``sys.meta_path``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow import WorkflowEngine
from chatflow.core._otel import INSTALL
from chatflow.errors import ChatFlowError

BLOCKER = """\
import sys

class _NoOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoOpenTelemetry())
"""

FLOW = {
    "name": "flow",
    "phases": [{"name": "code"}, {"name": "review", "requires_approval": True}, {"name": "ship"}],
}

# Every kind of action, through the library and through the command line; then the
# OpenTelemetry modules loaded, one per line (none expected).
EVERY_ACTION = """\
import io, json, sys, contextlib
store, flow = sys.argv[1], sys.argv[2]
import chatflow
from chatflow import WorkflowEngine
from chatflow.cli.main import main
engine = WorkflowEngine(store, git=False)
iid = engine.start_workflow_instance(flow, {}, "feat_x", actor="ana")
engine.trigger_next_step(iid, {"input_tokens": 5, "cost_usd": 0.1})
engine.resume(iid, approved_by="ana")
engine.record_usage(iid, output_tokens=3)
engine.fork(iid, 1)
quiet = io.StringIO()
with contextlib.redirect_stdout(quiet):
    for argv in (["start", flow, "--feature", "feat_y"], ["list"], ["next", iid],
                 ["record", iid, "--usage", "cost_usd=0.2"], ["show", iid], ["due", "--apply"]):
        assert main(["--dir", store, *argv]) == 0, argv
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")))
"""


def _env(tmp_path: Path, *, hidden: bool, **more: str) -> dict[str, str]:
    paths = [os.environ.get("PYTHONPATH", "")]
    if hidden:
        hider = tmp_path / "hide"
        hider.mkdir(exist_ok=True)
        (hider / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
        paths.insert(0, str(hider))
    env = {k: v for k, v in os.environ.items() if k != "CHATFLOW_OTEL"}
    return {**env, "PYTHONPATH": os.pathsep.join(paths), "CHATFLOW_GIT": "0", **more}


def _python(
    tmp_path: Path, code: str, *args: str, hidden: bool, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True,
        env=_env(tmp_path, hidden=hidden, **env), timeout=120, check=False,
    )  # fmt: skip


def _flow(tmp_path: Path) -> str:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(FLOW), encoding="utf-8")
    return str(path)


def _loaded(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_the_blocker_really_hides_opentelemetry(tmp_path: Path) -> None:
    done = _python(tmp_path, "import opentelemetry.trace", hidden=True)
    assert done.returncode == 1
    assert "No module named 'opentelemetry" in done.stderr


def test_without_opentelemetry_nothing_imports_it(tmp_path: Path) -> None:
    store, flow = str(tmp_path / "store"), _flow(tmp_path)
    assert _loaded(_python(tmp_path, EVERY_ACTION, store, flow, hidden=True)) == []


def test_installed_but_not_loaded_by_the_application_it_stays_unloaded(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.trace")
    store, flow = str(tmp_path / "store"), _flow(tmp_path)
    assert _loaded(_python(tmp_path, EVERY_ACTION, store, flow, hidden=False)) == []


def test_asking_for_tracing_without_it_says_what_to_install(tmp_path: Path) -> None:
    store, flow = str(tmp_path / "store"), _flow(tmp_path)
    code = "import sys; from chatflow.cli.main import main; sys.exit(main(sys.argv[1:]))"
    done = _python(
        tmp_path, code, "--dir", store, "start", flow, "--feature", "f", hidden=True,
        CHATFLOW_OTEL="1",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"chatflow: error: {INSTALL}"]
    assert INSTALL == "tracing needs OpenTelemetry: pip install 'chatflow-engine[otel]'"
    listed = _python(tmp_path, code, "--dir", store, "list", "--json", hidden=True)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []  # nothing written
    library = (
        "from chatflow import WorkflowEngine\n"
        "try:\n    WorkflowEngine(tracing=True)\n"
        "except Exception as error:\n    print(type(error).__name__, error)"
    )
    done = _python(tmp_path, library, hidden=True)
    assert done.stdout.splitlines() == [f"ChatFlowError {INSTALL}"]


GLOBAL_PROVIDER = """\
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
from chatflow.cli.main import main
store, flow = sys.argv[1], sys.argv[2]
assert main(["--dir", store, "start", flow, "--feature", "feat_g"]) == 0
print(json.dumps([span.name for span in exporter.get_finished_spans()]))
"""


@pytest.mark.parametrize(("switch", "names"), [("", ["chatflow.start"]), ("0", [])])
def test_a_global_provider_the_application_set_is_used_unless_switched_off(
    tmp_path: Path, switch: str, names: list[str]
) -> None:
    pytest.importorskip("opentelemetry.sdk")
    store, flow = str(tmp_path / "store"), _flow(tmp_path)
    done = _python(tmp_path, GLOBAL_PROVIDER, store, flow, hidden=False, CHATFLOW_OTEL=switch)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == names


def test_tracing_must_be_a_switch_or_a_provider(tmp_path: Path) -> None:
    with pytest.raises(ChatFlowError, match="tracing must be True, False, None or an"):
        WorkflowEngine(tmp_path, tracing="yes")  # type: ignore[arg-type]


LATE_PROVIDER = """\
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from chatflow import WorkflowEngine
engine = WorkflowEngine(sys.argv[1], tracing=True, git=False)
iid = engine.start_workflow_instance(sys.argv[2], {}, "feat_l")  # no provider yet: no span
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
engine.trigger_next_step(iid)
print(json.dumps([span.name for span in exporter.get_finished_spans()]))
"""


def test_a_provider_set_after_the_engine_is_built_is_used_from_then_on(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk")
    store, flow = str(tmp_path / "store"), _flow(tmp_path)
    done = _python(tmp_path, LATE_PROVIDER, store, flow, hidden=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["chatflow.trigger_next"]
