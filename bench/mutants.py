"""Planted-bug runner: how many realistic mistakes does the test suite catch?

Run:  python bench/mutants.py [--jobs N] [--only ID ...] [--min 95] [--timeout 600]
      python bench/mutants.py --list

Each mutant in ``bench/mutant_list.py`` is one change a developer could make by
mistake (an off-by-one, a dropped check, a loosened comparison, a removed fsync...):
a file under ``src/``, an exact snippet of it and its replacement. For each, this
copies ``src/`` into a temporary folder, applies the one change (refusing to run at
all if any snippet is not found exactly once), and runs pytest (``-x -q``) with
``PYTHONPATH`` pointing at the copy, so subprocess tests run the mutated ``chatflow``
too. The tests run are the mutant's own subset (the tests a reviewer would expect to
notice), or ``--tests``/``-k`` for all, or the whole suite with ``--full``.

A mutant is *caught* when the tests fail (or time out), *missed* when they pass.
Mutants marked equivalent (no behaviour a user could observe changes; each says why)
are listed but neither run nor counted. Prints a table and the catch rate; exits 1 if
the rate is below ``--min`` (percent), 2 if the list itself is broken.

Not run in CI: it runs the tests once per mutant (minutes, not seconds).
``--check-clean`` first runs each distinct test subset on the unchanged sources, so a
test that already fails cannot pass for a catch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutant_list import MUTANTS, Mutant  # noqa: E402 - the list lives beside this file

CAUGHT, MISSED, TIMEOUT, BROKEN = "caught", "MISSED", "timeout", "error"
SNAPSHOT_ROOT = ROOT  # replaced by main() with a private copy of the tree


@dataclass
class Result:
    """What running the tests against one mutant gave."""

    mutant: Mutant
    outcome: str
    seconds: float
    detail: str = ""

    @property
    def caught(self) -> bool:
        return self.outcome in (CAUGHT, TIMEOUT)


def check_list(mutants: Sequence[Mutant], src: Path) -> list[str]:
    """Every problem of the list: duplicate ids, missing files, snippets not found once."""
    problems = []
    seen: set[str] = set()
    for mutant in mutants:
        if mutant.id in seen:
            problems.append(f"{mutant.id}: duplicate id")
        seen.add(mutant.id)
        path = src / mutant.file
        if not path.is_file():
            problems.append(f"{mutant.id}: no file {path}")
            continue
        found = path.read_text(encoding="utf-8").count(mutant.find)
        if found != 1:
            problems.append(f"{mutant.id}: snippet found {found} times in {mutant.file}, not once")
        if mutant.find == mutant.replace:
            problems.append(f"{mutant.id}: the replacement is the snippet itself")
    return problems


SNAPSHOT = ("src", "tests", "examples", "pyproject.toml")
"""What each mutant's copy holds: the sources, the suite and what the suite reads."""


def snapshot(tree: Path, into: Path) -> Path:
    """A copy of the tree's ``SNAPSHOT`` taken once, so that edits made while a run
    goes on (other branches, a fix in progress) reach none of its mutants."""
    root = into / "snapshot"
    for name in SNAPSHOT:
        source = tree / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=_IGNORED)
        else:
            root.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def planted(mutant: Mutant | None, snapshot_root: Path, into: Path) -> Path:
    """A copy of the snapshot in ``into`` with ``mutant`` applied; the copy's root."""
    root = into / "tree"
    shutil.copytree(snapshot_root, root, ignore=_IGNORED)
    if mutant is not None:
        path = root / "src" / mutant.file
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(mutant.find, mutant.replace, 1), encoding="utf-8")
    return root


def pytest_command(tests: Sequence[str], keyword: str | None) -> list[str]:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    if keyword:
        command += ["-k", keyword]
    return command + list(tests)


_running: set[subprocess.Popen[str]] = set()


def run_tests(
    mutant: Mutant | None, tests: Sequence[str], keyword: str | None, timeout: float
) -> tuple[str, float, str]:
    """(outcome, seconds, last lines of output) of the tests against ``mutant``."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chatflow-mutant-") as temp:
        root = planted(mutant, SNAPSHOT_ROOT, Path(temp))
        env = {**os.environ, "PYTHONPATH": str(root / "src"), "CI": "true"}
        env.update(PYTHONDONTWRITEBYTECODE="1", TMPDIR=temp)  # all of it goes with the copy
        process = subprocess.Popen(
            pytest_command(tests, keyword),
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: a timeout ends every child
        )
        _running.add(process)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return TIMEOUT, time.monotonic() - started, _tail(output)
        finally:
            _running.discard(process)
    seconds = time.monotonic() - started
    code = process.returncode
    if code == 0:
        return MISSED, seconds, _tail(output)
    if code in (1, 2):  # tests failed, or could not even be collected (an import broke)
        return CAUGHT, seconds, _failure(output)
    return BROKEN, seconds, f"pytest exit {code}: " + _tail(output)


def _stop_running() -> None:
    """End the test runs still going (interrupted): each is its own process group."""
    for process in list(_running):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _tail(output: str, lines: int = 3) -> str:
    return " | ".join(line for line in output.strip().splitlines()[-lines:] if line.strip())


def _failure(output: str) -> str:
    """The first failing test's name, from pytest's short summary."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    return _tail(output, 1)


def tests_of(mutant: Mutant, args: argparse.Namespace) -> list[str]:
    if args.full:
        return ["tests"]
    return list(args.tests or mutant.tests)


def check_clean(mutants: Sequence[Mutant], args: argparse.Namespace) -> bool:
    """Run each distinct subset once on the unchanged sources; False if any fails."""
    subsets = sorted({tuple(tests_of(mutant, args)) for mutant in mutants})
    print(f"checking {len(subsets)} test subsets pass on the unchanged sources...", flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(
            pool.map(lambda tests: run_tests(None, tests, args.k, args.timeout), subsets)
        )
    clean = True
    for tests, (outcome, seconds, detail) in zip(subsets, outcomes, strict=True):
        if outcome != MISSED:  # "missed" on clean sources means: every test passed
            print(f"  FAILS without a mutant ({outcome}, {seconds:.0f} s): {' '.join(tests)}")
            print(f"    {detail}")
            clean = False
    return clean


def run(mutants: Sequence[Mutant], args: argparse.Namespace) -> list[Result]:
    """Run every mutant, ``args.jobs`` at a time, printing each result as it comes."""
    total = len(mutants)

    def one(numbered: tuple[int, Mutant]) -> Result:
        number, mutant = numbered
        outcome, seconds, detail = run_tests(mutant, tests_of(mutant, args), args.k, args.timeout)
        result = Result(mutant, outcome, seconds, detail)
        print(f"[{number:>3}/{total}] {outcome:<7} {seconds:6.1f}s  {mutant.id}", flush=True)
        return result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return list(pool.map(one, enumerate(mutants, 1)))


def print_table(results: Sequence[Result], equivalent: Sequence[Mutant]) -> None:
    width = max([len(r.mutant.id) for r in results] + [len(m.id) for m in equivalent] + [2])
    print()
    print(f"{'ID':<{width}}  {'RESULT':<10} {'SECS':>6}  WHAT")
    for result in results:
        mutant = result.mutant
        print(
            f"{mutant.id:<{width}}  {result.outcome:<10} {result.seconds:6.1f}  "
            f"{mutant.file}: {mutant.what}"
        )
        if result.outcome in (MISSED, BROKEN):
            print(f"{'':<{width}}  {'':<10} {'':>6}  tests: {' '.join(mutant.tests)}")
        elif result.detail:
            print(f"{'':<{width}}  {'':<10} {'':>6}  by {result.detail}")
    for mutant in equivalent:
        print(f"{mutant.id:<{width}}  {'equivalent':<10} {'':>6}  {mutant.file}: {mutant.what}")
        print(f"{'':<{width}}  {'':<10} {'':>6}  why: {mutant.equivalent}")


def catch_rate(results: Sequence[Result]) -> float:
    counted = [result for result in results if result.outcome != BROKEN]
    return 100.0 * sum(result.caught for result in counted) / len(counted) if counted else 0.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument(
        "--only", action="append", default=[], metavar="ID", help="run only these (repeatable)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants at once")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    parser.add_argument("--min", type=float, default=0.0, help="exit 1 below this catch rate (%%)")
    parser.add_argument("--tests", nargs="+", metavar="PATH", help="tests for every mutant")
    parser.add_argument("-k", metavar="EXPR", help="pytest -k for every mutant")
    parser.add_argument("--full", action="store_true", help="the whole suite for every mutant")
    parser.add_argument(
        "--check-clean", action="store_true", help="first check each test subset passes unmutated"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="the checkout to plant into (default: this one); it needs src/ and tests/",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    global SNAPSHOT_ROOT  # noqa: PLW0603 - set once, before any mutant runs
    with tempfile.TemporaryDirectory(prefix="chatflow-mutants-") as temp:
        SNAPSHOT_ROOT = snapshot(args.tree.resolve(), Path(temp))
        try:
            return _main(args)
        finally:
            _stop_running()


def _main(args: argparse.Namespace) -> int:
    problems = check_list(MUTANTS, SNAPSHOT_ROOT / "src")
    if problems:
        print("the mutant list is broken:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    unknown = sorted(set(args.only) - {mutant.id for mutant in MUTANTS})
    if unknown:
        print(f"no such mutant: {', '.join(unknown)}", file=sys.stderr)
        return 2
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list:
        for mutant in chosen:
            mark = " (equivalent)" if mutant.equivalent else ""
            print(f"{mutant.id:<32} {mutant.file}: {mutant.what}{mark}")
        live = sum(1 for m in chosen if not m.equivalent)
        print(f"{len(chosen)} mutants, {live} counted")
        return 0
    live = [mutant for mutant in chosen if not mutant.equivalent or args.only]
    equivalent = [mutant for mutant in chosen if mutant.equivalent and not args.only]
    if args.check_clean and not check_clean(live, args):
        return 2
    started = time.monotonic()
    results = run(live, args)
    print_table(results, equivalent)
    rate = catch_rate(results)
    caught = sum(result.caught for result in results)
    broken = sum(result.outcome == BROKEN for result in results)
    print(
        f"\ncaught {caught} of {len(results) - broken} mutants: {rate:.1f} %"
        f" ({len(equivalent)} equivalent not counted"
        + (f", {broken} could not run" if broken else "")
        + f"; {time.monotonic() - started:.0f} s, {args.jobs} at a time)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "id": r.mutant.id,
                        "outcome": r.outcome,
                        "seconds": round(r.seconds, 1),
                        "detail": r.detail,
                    }
                    for r in results
                ],
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    if broken:
        return 2
    return 1 if rate < args.min else 0


if __name__ == "__main__":
    sys.exit(main())
