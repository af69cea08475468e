"""The benchmarks' one targets file held to the benches and the docs: every target in
``bench/targets.toml`` is measured by the bench it names and cited in
docs/performance.md, and a missed target fails a full bench run but never a ``--quick``
one (CI's smoke run asserts no timing). The benches themselves run in ``.ci/run``."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from repo_paths import ROOT

BENCH = ROOT / "bench"
PERFORMANCE = ROOT / "docs" / "performance.md"


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    """bench/_harness.py, which needs tomllib (Python 3.11; the package supports 3.10)."""
    pytest.importorskip("tomllib")
    spec = importlib.util.spec_from_file_location("bench_harness", BENCH / "_harness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def test_every_target_is_measured_by_its_bench(harness: ModuleType) -> None:
    targets = harness.load_targets()
    assert targets, "bench/targets.toml holds no target"
    for name, target in targets.items():
        source = BENCH / f"{target.bench}.py"
        assert source.exists(), f"{name}: no bench {source.name}"
        assert f'"{name}"' in source.read_text("utf-8"), f"{source.name} never checks {name}"


def test_every_bench_checks_only_targets_of_the_file(harness: ModuleType) -> None:
    targets = harness.load_targets()
    prefixes = {name.split("-")[0] for name in targets}
    for source in sorted(BENCH.glob("bench_*.py")):
        named = set(re.findall(rf'"((?:{"|".join(prefixes)})-[a-z0-9-]+)"', source.read_text()))
        assert named <= set(targets), f"{source.name} names targets the file lacks"
        assert all(targets[name].bench == source.stem for name in named), source.name


def test_the_performance_page_cites_every_target(harness: ModuleType) -> None:
    cited = set(re.findall(r"`([a-z]+(?:-[a-z0-9]+)+)`", PERFORMANCE.read_text("utf-8")))
    missing = sorted(set(harness.load_targets()) - cited)
    assert not missing, f"docs/performance.md does not cite {missing}"


def test_a_miss_fails_a_full_run_but_not_a_quick_one(harness: ModuleType) -> None:
    target = harness.Target("t-ms", "bench_x", "a latency", "ms", "bound", max=10.0)
    for quick, status in ((False, harness.MISSED), (True, 0)):
        report = harness.Report("bench_x", quick=quick, targets={"t-ms": target}, load=(0.0,))
        assert report.check("t-ms", 9.0, "met") is True
        assert report.finish() == 0  # all met so far
        assert report.check("t-ms", 11.0, "missed") is False
        assert report.finish() == status


def test_a_check_of_an_unknown_target_is_refused(harness: ModuleType) -> None:
    report = harness.Report("bench_x", targets={}, load=(0.0,))
    with pytest.raises(KeyError, match=r"bench/targets\.toml lacks"):
        report.check("t-typo", 1.0)


def test_a_target_needs_one_bound_and_a_reference_when_relative(
    harness: ModuleType, tmp_path: Path
) -> None:
    entry = '[t]\nbench = "b"\nwhat = "w"\nunit = "x"\n'
    for body in (
        'kind = "ratio"\nreference = "r"\n',  # no bound
        'kind = "ratio"\nreference = "r"\nmin = 1\nmax = 2\n',  # two bounds
        'kind = "ratio"\nmin = 1\n',  # a ratio against nothing
        'kind = "speed"\nmin = 1\n',  # no such kind
    ):
        path = tmp_path / "targets.toml"
        path.write_text(entry + body, "utf-8")
        with pytest.raises(ValueError, match=r"\[t\]"):
            harness.load_targets(path)
    path.write_text(entry + 'kind = "ratio"\nreference = "r"\nmin = 0.7\n', "utf-8")
    assert harness.load_targets(path)["t"].bound == ">= 0.7x"
