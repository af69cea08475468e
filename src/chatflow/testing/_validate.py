"""``validate(factory)``: the store contract run without pytest, as a report.

Every check of ``chatflow.testing.contract`` runs once per parameter case, on fresh
data: its own empty folder, which the factory opens stores on (or, for an in-process
store, one store object the check shares). A check of an optional capability the store
lacks is reported as skipped, not failed.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TextIO

from chatflow.storage.base import IWorkflowStateStore
from chatflow.storage.spi import capabilities, capability
from chatflow.testing._check import CAPABILITY, PARAMS, skip_errors

Outcome = Literal["passed", "failed", "skipped"]
StoreFactory = Callable[[], IWorkflowStateStore]
Opener = Callable[[Path], IWorkflowStateStore]


@dataclass(frozen=True)
class CheckResult:
    """One check (one parameter case) and how it went."""

    name: str
    capability: str
    required: bool
    outcome: Outcome
    message: str = ""

    def __str__(self) -> str:
        kind = "" if self.required else " (optional)"
        line = f"{self.outcome.upper():7} {self.capability}{kind}: {self.name}"
        return f"{line}\n        {self.message}" if self.message else line


@dataclass(frozen=True)
class Report:
    """The contract's verdict on one store: every check's outcome, in run order."""

    store: str
    capabilities: frozenset[str]
    results: tuple[CheckResult, ...]

    def _having(self, outcome: Outcome) -> list[CheckResult]:
        return [result for result in self.results if result.outcome == outcome]

    @property
    def passed(self) -> list[CheckResult]:
        return self._having("passed")

    @property
    def failed(self) -> list[CheckResult]:
        return self._having("failed")

    @property
    def skipped(self) -> list[CheckResult]:
        return self._having("skipped")

    @property
    def ok(self) -> bool:
        """Whether the store passed every check that applies to it."""
        return not self.failed

    def summary(self) -> str:
        return (
            f"{self.store}: {len(self.passed)} passed, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped (capabilities: {', '.join(sorted(self.capabilities))})"
        )

    def __str__(self) -> str:
        return "\n".join([*(str(result) for result in self.results), self.summary()])

    def raise_for_failures(self) -> None:
        """``AssertionError`` listing every failed check, for a test that calls validate."""
        if self.failed:
            raise AssertionError("\n".join([self.summary(), *map(str, self.failed)]))


def validate(
    factory: Opener,
    *,
    shared: bool = False,
    only: set[str] | None = None,
    file: TextIO | None = None,
) -> Report:
    """Run the store contract; print the report to ``file`` if given.

    ``factory(folder)`` opens a store on the data in ``folder``: each check gets a new
    empty folder and may open several stores on it (``SQLiteStore(folder / "db")``; a
    server-backed store can name its database or schema after ``folder.name``). With
    ``shared=True`` (an in-process store) it is called once per check and every open
    returns that object. ``only`` limits the run to those capabilities.
    """
    from chatflow.testing import contract

    with tempfile.TemporaryDirectory(prefix="chatflow-validate-") as scratch:
        probe = factory(Path(scratch))
        try:
            found, name = capabilities(probe), type(probe).__name__
        finally:
            probe.close()
    results = [
        _run(factory, shared, check, case, label)
        for module in contract.MODULES
        for check in _checks(module)
        if only is None or _capability(module, check) in only
        for label, case in _cases(check)
    ]
    report = Report(name, found, tuple(results))
    if file is not None:
        print(report, file=file)
    return report


def _checks(module: ModuleType) -> Iterator[Callable[..., Any]]:
    for name in module.__all__:
        yield getattr(module, name)


def _capability(module: ModuleType, check: Callable[..., Any]) -> str:
    return str(getattr(check, CAPABILITY, None) or module.CAPABILITY)


def _cases(check: Callable[..., Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every parameter case of ``check`` (one empty case if it has none), with its id."""
    grids: list[list[tuple[str, dict[str, Any]]]] = getattr(check, PARAMS, [])
    for combination in itertools.product(*grids):
        labels = [label for label, _ in combination]
        values = {key: value for _, case in combination for key, value in case.items()}
        yield (f"[{'-'.join(labels)}]" if labels else ""), values


def _run(
    factory: Opener, shared: bool, check: Callable[..., Any], case: dict[str, Any], label: str
) -> CheckResult:
    module = inspect.getmodule(inspect.unwrap(check))
    assert module is not None
    name = _capability(module, check)
    required = capability(name).required
    title = f"{check.__name__}{label}"
    try:
        with _Arguments(factory, shared, check, case) as arguments:
            check(**arguments)
    except skip_errors() as skipped:
        return CheckResult(title, name, required, "skipped", str(skipped))
    except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
        return CheckResult(title, name, required, "failed", _explain(error))
    return CheckResult(title, name, required, "passed")


class _Arguments:
    """What a check's parameters name: a store (closed afterwards), the factory, a
    scratch folder, and its parameter case; all on the check's own fresh data."""

    def __init__(
        self, opener: Opener, shared: bool, check: Callable[..., Any], case: dict[str, Any]
    ) -> None:
        self.check, self.case = check, case
        self.opened: list[IWorkflowStateStore] = []
        self.scratch = tempfile.TemporaryDirectory(prefix="chatflow-validate-")
        data = Path(self.scratch.name, "data")
        data.mkdir()
        if shared:
            one = opener(data)
            self.opened.append(one)
            self.factory: StoreFactory = lambda: one
        else:
            self.factory = functools.partial(opener, data)

    def __enter__(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for parameter in inspect.signature(self.check).parameters:
            if parameter == "store":
                arguments[parameter] = self.factory()
                self.opened.append(arguments[parameter])
            elif parameter == "chatflow_store_factory":
                arguments[parameter] = self.factory
            elif parameter == "tmp_path":
                arguments[parameter] = Path(self.scratch.name, "tmp")
                arguments[parameter].mkdir()
            else:
                arguments[parameter] = self.case[parameter]
        return arguments

    def __exit__(self, *exc: object) -> None:
        try:
            for store in dict.fromkeys(self.opened):  # a shared store is closed once
                store.close()
        finally:
            self.scratch.cleanup()


def _explain(error: Exception) -> str:
    """The error and the check line it came from (a bare ``assert`` has no message)."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if "chatflow/testing/contract" in frame.filename.replace("\\", "/")
    ]
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}: {frames[-1].line}"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}{where if frames else ''}"
