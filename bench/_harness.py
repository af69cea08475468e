"""What every benchmark shares: its options, timing, tables, targets and verdict.

The machine the benchmarks run on is shared and its disk's fsync latency swings several
fold between minutes, so a lone figure says little. Each bench therefore repeats every
measurement, reports min / median, and states a target either as a ratio against a
reference measured in the same run, interleaved round by round (``interleaved``), or as
a bound where the issue set one a user feels directly (a latency, a rate, a size).

Every target lives in ``bench/targets.toml`` (read here, and cited by name in
docs/performance.md); a bench checks only names found there. ``Report.finish`` prints
target against measured and gives the exit status: 0 when every measured target is met,
``MISSED`` (3) when one is not. ``--quick`` (tiny sizes, one round) only proves the bench
still runs: a miss is printed but never fails it, so CI asserts no timing. ``--json``
prints one JSON document on stdout (figures and verdicts); the tables go to stderr.

Requires Python 3.11 (``tomllib``); the package itself supports 3.10.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import tomllib

# The benches measure the engine and its stores; the time git links add to a step (one
# `git status`, when the current folder is in a repository, as it is when the benches run
# from a checkout) is bench_git's alone, which turns them on per engine.
os.environ.setdefault("CHATFLOW_GIT", "0")

TARGETS_FILE = Path(__file__).with_name("targets.toml")
MISSED = 3  # exit status when a target is missed (1 stays a crash, 2 a usage error)
_BOUND_KEYS = {"bench", "what", "unit", "kind", "reference", "min", "max"}
KINDS = ("ratio", "difference", "bound")  # against a same-run reference, or absolute


# -- targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One entry of targets.toml: a ratio against a same-run reference, or a bound."""

    name: str
    bench: str
    what: str
    unit: str
    kind: str  # "ratio" or "difference" against ``reference`` (same run), or "bound"
    reference: str = ""
    min: float | None = None
    max: float | None = None

    def met(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    @property
    def bound(self) -> str:
        """The target as people read it: ``<= 1.3x``, ``>= 1,000 steps/s``."""
        if self.max == 0:
            return f"0 {self.unit}"
        limit, sign = (self.max, "<=") if self.max is not None else (self.min, ">=")
        return f"{sign} {number(limit or 0)}{unit_suffix(self.unit)}"


def load_targets(path: Path = TARGETS_FILE) -> dict[str, Target]:
    """Every target of ``path``, by name; a malformed entry is refused with its name."""
    with path.open("rb") as file:
        raw = tomllib.load(file)
    targets = {}
    for name, entry in raw.items():
        unknown = set(entry) - _BOUND_KEYS
        if unknown or ("min" in entry) == ("max" in entry):
            raise ValueError(f"{path.name} [{name}]: needs exactly one of min/max, no {unknown}")
        kind = entry.get("kind")
        if kind not in KINDS or (kind != "bound") != bool(entry.get("reference")):
            raise ValueError(
                f"{path.name} [{name}]: kind is one of {KINDS}, with a reference unless a bound"
            )
        targets[name] = Target(name=name, **entry)
    return targets


def unit_suffix(unit: str) -> str:
    return "x" if unit == "x" else (f" {unit}" if unit else "")


def number(value: float) -> str:
    """``1,000``, ``0.7``, ``12.5``: as few digits as the value needs, at most three."""
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}".rstrip("0").rstrip(".")


# -- timing -----------------------------------------------------------------------------


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    """Seconds taken by each of ``repeat`` calls of ``action``."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def interleaved(
    actions: dict[str, Callable[[], object]], rounds: int, calls: int = 1
) -> dict[str, list[float]]:
    """Per-call seconds of each action, one sample per round: every round runs each
    action ``calls`` times in turn, so a swing of the machine's load or disk speed hits a
    measurement and its reference alike, and their ratio holds."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            started = time.perf_counter()
            for _ in range(calls):
                action()
            samples[name].append((time.perf_counter() - started) / calls)
    return samples


@dataclass(frozen=True)
class Stats:
    """Min, median and p99 of some per-operation seconds, and their rate per second."""

    min: float
    median: float
    p99: float
    rate: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return cls(ordered[0], statistics.median(ordered), p99, len(ordered) / sum(ordered))


def median(samples: Iterable[float]) -> float:
    return statistics.median(samples)


def ratio(samples: Sequence[float], reference: Sequence[float]) -> float:
    """Median over median: how many times the reference's time a measurement takes."""
    return statistics.median(samples) / statistics.median(reference)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}" if abs(seconds) < 0.01 else f"{seconds * 1000:.1f}"


def min_median_ms(samples: Sequence[float]) -> str:
    """``0.710 / 0.720 ms``: how every bench shows repeated timings."""
    return f"{ms(min(samples))} / {ms(statistics.median(samples))} ms"


# -- tables -----------------------------------------------------------------------------


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with padded columns: readable in a terminal, pasteable in docs."""
    cells = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            + " |"
        )

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


# -- options and the report -------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every bench has: ``--quick`` and ``--json``."""
    result = argparse.ArgumentParser(
        description=(doc or "").splitlines()[0],
        epilog=f"Exit status: 0 every measured target met, {MISSED} one missed (never with"
        " --quick), 1 a crash. Targets: bench/targets.toml.",
    )
    result.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one round: proves the bench runs; a missed target does not fail",
    )
    result.add_argument(
        "--json", action="store_true", help="print the results as JSON on stdout (tables: stderr)"
    )
    return result


@dataclass
class Check:
    """One target checked: its measured value, for one label (a store, a layout)."""

    target: str
    label: str
    value: float
    met: bool
    detail: str = ""


@dataclass
class Report:
    """A bench's figures and target checks, printed as they come and summed up at the end."""

    bench: str
    quick: bool = False
    as_json: bool = False
    targets: dict[str, Target] = field(default_factory=dict)
    figures: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: tuple[float, ...] = ()

    @classmethod
    def start(cls, bench: str, args: argparse.Namespace) -> Report:
        """The report of ``bench``, with only its own targets; says how busy the machine is."""
        mine = {name: t for name, t in load_targets().items() if t.bench == bench}
        report = cls(bench, quick=args.quick, as_json=args.json, targets=mine)
        report.load = os.getloadavg()
        mode = "quick (sizes too small for figures; misses do not fail)" if args.quick else "full"
        report.say(
            f"{bench}: {mode} run; {os.cpu_count()} CPUs, load average"
            f" {report.load[0]:.1f} at start (the machine is shared)"
        )
        return report

    @property
    def out(self) -> TextIO:
        return sys.stderr if self.as_json else sys.stdout

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A remark that belongs with the results (a store left out, a missing browser)."""
        self.notes.append(text)
        self.say(f"({text})")

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Print a table of figures and keep its rows for ``--json``."""
        self.say(f"\n{title}\n{format_table(header, rows)}")
        self.figures += [{"table": title, **dict(zip(header, row, strict=True))} for row in rows]

    def check(self, name: str, value: float, label: str = "", detail: str = "") -> bool:
        """Hold ``value`` to target ``name`` of targets.toml (for ``label``: a store...)."""
        target = self.targets.get(name)
        if target is None:
            raise KeyError(f"{self.bench} checks {name!r}, which bench/targets.toml lacks")
        met = target.met(value)
        self.checks.append(Check(name, label, value, met, detail))
        return met

    def finish(self) -> int:
        """Print every target against its measured values; the exit status."""
        rows = []
        for name, target in self.targets.items():
            checks = [check for check in self.checks if check.target == name]
            rows += [self._row(target, check) for check in checks] or [self._row(target, None)]
        self.say(f"\ntargets (bench/targets.toml)\n{format_table(TARGET_HEADER, rows)}")
        missed = [check for check in self.checks if not check.met]
        end_load = os.getloadavg()[0]
        verdict = (
            f"{len(missed)} of {len(self.checks)} checks missed"
            if missed
            else f"all {len(self.checks)} checks met"
        )
        if self.quick:
            verdict += " (quick run: not judged)"
        self.say(f"{self.bench}: {verdict}; load average {end_load:.1f} at the end")
        if self.as_json:
            json.dump(self._document(end_load), sys.stdout, indent=2)
            print()
        return MISSED if missed and not self.quick else 0

    def _row(self, target: Target, check: Check | None) -> list[str]:
        if check is None:
            return [target.name, "", target.bound, "not measured", ""]
        shown = f"{number(check.value)}{unit_suffix(target.unit)}"
        if check.detail:
            shown += f" ({check.detail})"
        return [target.name, check.label, target.bound, shown, "met" if check.met else "MISSED"]

    def _document(self, end_load: float) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "quick": self.quick,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpus": os.cpu_count(),
            "load_average": {"start": self.load[0], "end": end_load},
            "notes": self.notes,
            "figures": self.figures,
            "targets": {name: asdict(target) for name, target in self.targets.items()},
            "checks": [asdict(check) for check in self.checks],
            "missed": sum(1 for check in self.checks if not check.met),
        }


TARGET_HEADER = ("target", "for", "bound", "measured", "")


def quick_sizes(args: argparse.Namespace, **tiny: Any) -> argparse.Namespace:
    """Under ``--quick``, replace the sizes in ``args`` by ``tiny`` ones (a bench's own
    choice: just enough for every code path to run once)."""
    if args.quick:
        for name, value in tiny.items():
            setattr(args, name, value)
    return args


# A two-phase loop (code, review, back to code until trigger.stop): steps without end.
LOOP: dict[str, Any] = {
    "name": "loop",
    "phases": [
        {"name": "code"},
        {
            "name": "review",
            "transitions": [
                {"to": "$end", "when": {"path": "trigger.stop", "op": "==", "value": True}},
                {"to": "code"},
            ],
        },
    ],
}
