"""OpenTelemetry benchmark: what one span per action adds to a step.

Run:  python bench/bench_otel.py [--quick] [--json]

Needs opentelemetry-sdk (the ``test`` extra). On each store (the file store and SQLite,
durable; the memory store, to show a span's CPU cost alone) it steps three instances of
one workflow round by round, interleaved, each through its own engine on the same store:

* ``off``: ``tracing=False``;
* ``no provider``: ``tracing=True`` with no tracer provider configured (the API's no-op
  tracer: what an application that has OpenTelemetry but did not set it up pays);
* ``SDK``: an SDK ``TracerProvider`` exporting every span synchronously to an in-memory
  exporter (``SimpleSpanProcessor``, emptied between rounds): the upper bound of what
  ChatFlow's attributes and the SDK's span cost, without a network exporter's I/O.

Each step carries usage (tokens and a model), so the span gets its usage attributes.

Target: otel-step-ratio (SDK over off, medians, durable file store and SQLite).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _harness import LOOP, Report, interleaved, median, min_median_ms, parser, ratio

USAGE = {"input_tokens": 1200, "output_tokens": 300, "model": "bench-model"}
NEEDS = "bench_otel needs opentelemetry-sdk: pip install 'chatflow-engine[test]'"


def stores(folder: Path) -> list[tuple[str, str, bool]]:
    """(label, store URL or folder, whether it is checked against the target)."""
    return [
        ("file", str(folder / "file"), True),
        ("sqlite", f"sqlite:///{folder / 'state.db'}", True),
        ("memory", "memory://", False),
    ]


def measure(target: str, rounds: int) -> tuple[list[str], dict[str, list[float]]]:
    """One table row for the store at ``target``: the three variants' step times."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from chatflow.core.engine import WorkflowEngine
    from chatflow.storage import open_store

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = open_store(target)
    engines = {
        "off": WorkflowEngine(store=store, tracing=False, git=False),
        "no provider": WorkflowEngine(store=store, tracing=True, git=False),
        "SDK": WorkflowEngine(store=store, tracing=provider, git=False),
    }
    ids = {name: e.start_workflow_instance(LOOP, {}, "feat_otel") for name, e in engines.items()}
    for name, engine in engines.items():  # warm: caches, the first index line
        engine.trigger_next_step(ids[name], USAGE)

    def step(name: str) -> object:
        if name == "off":
            exporter.clear()  # once a round: memory stays flat, the clear is not timed
        return engines[name].trigger_next_step(ids[name], USAGE)

    samples = interleaved({name: lambda n=name: step(n) for name in engines}, rounds)
    assert len(exporter.get_finished_spans()) == 1, "one span per traced step"
    store.close()
    provider.shutdown()
    return [
        min_median_ms(samples["off"]),
        min_median_ms(samples["no provider"]),
        min_median_ms(samples["SDK"]),
        f"{ratio(samples['no provider'], samples['off']):.3f}x",
        f"{ratio(samples['SDK'], samples['off']):.3f}x",
        f"{(median(samples['SDK']) - median(samples['off'])) * 1e6:.0f} us",
    ], samples


def main() -> int:
    args = parser(__doc__).parse_args()
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        print(NEEDS, file=sys.stderr)
        return 2
    report = Report.start("bench_otel", args)
    rounds = 5 if args.quick else 1000
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, target, checked in stores(Path(folder)):
            row, samples = measure(target, rounds)
            rows.append([label, *row])
            if checked:
                value = ratio(samples["SDK"], samples["off"])
                report.check("otel-step-ratio", value, label, f"{rounds} rounds")
    header = ["store", "off", "no provider", "SDK", "no provider / off", "SDK / off", "SDK - off"]
    report.table("step with usage, per step (min / median), interleaved", header, rows)
    report.say(f"(took {time.perf_counter() - started:.0f} s)")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
