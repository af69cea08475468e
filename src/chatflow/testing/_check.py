"""What the contract's checks use instead of pytest, so they also run without it.

``chatflow.testing.validate`` runs the checks with nothing but the standard library;
under pytest, ``parametrize`` also leaves pytest's own mark and ``skip`` raises pytest's
own skip, so the same functions collect and report as ordinary tests.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

from chatflow.errors import UnsupportedOperationError
from chatflow.storage.spi import capabilities, capability

E = TypeVar("E", bound=BaseException)
F = TypeVar("F", bound=Callable[..., Any])

PARAMS = "chatflow_params"
"""The attribute ``parametrize`` keeps its cases in, for the validate runner."""
CAPABILITY = "chatflow_capability"
"""The attribute ``requires`` names a check's capability in."""


class Skipped(Exception):
    """A check that does not apply to the store (without pytest)."""


def _pytest() -> Any:
    """pytest if it can be imported (it is then already loaded, under pytest), else None."""
    try:
        return importlib.import_module("pytest")
    except ImportError:
        return None


def skip(reason: str) -> NoReturn:
    """Stop the check as not applicable: pytest's skip under pytest, ``Skipped`` otherwise."""
    pytest = _pytest()
    if pytest is not None:
        pytest.skip(reason)
    raise Skipped(reason)


def skip_errors() -> tuple[type[BaseException], ...]:
    """What a skipped check raises: ``Skipped``, and pytest's skip if pytest is there."""
    pytest = _pytest()
    return (Skipped,) if pytest is None else (Skipped, pytest.skip.Exception)


@dataclass
class Caught(Generic[E]):
    """The exception a ``raises`` block caught (``value``), as pytest's ``ExceptionInfo``."""

    value: E


@contextlib.contextmanager
def raises(expected: type[E], *, match: str | None = None) -> Iterator[Caught[E]]:
    """The block must raise ``expected`` whose message matches ``match`` (re.search)."""
    caught: Caught[E] = Caught.__new__(Caught)
    try:
        yield caught
    except expected as error:
        if match is not None and not re.search(match, str(error)):
            raise AssertionError(f"{error!r} does not match {match!r}") from error
        caught.value = error
        return
    raise AssertionError(f"did not raise {expected.__name__}")


@dataclass(frozen=True)
class approx:
    """A float equal to ``expected`` within ``abs``."""

    expected: float
    abs: float = 1e-9

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (int, float)) and abs(other - self.expected) <= self.abs

    def __hash__(self) -> int:
        return hash(self.expected)


def parametrize(
    names: str | Sequence[str],
    values: Iterable[Any],
    *,
    ids: Sequence[str] | Callable[[Any], str] | None = None,
) -> Callable[[F], F]:
    """Run the check once per value (a tuple per case when ``names`` are several)."""
    cases = list(values)
    keys = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)

    def label(index: int, case: Any) -> str:
        if callable(ids):
            return ids(case)
        return ids[index] if ids is not None else f"{keys[0]}{index}"

    def mark(func: F) -> F:
        rows = [
            (label(i, case), dict(zip(keys, case if len(keys) > 1 else (case,), strict=True)))
            for i, case in enumerate(cases)
        ]
        setattr(func, PARAMS, [rows, *getattr(func, PARAMS, [])])
        pytest = _pytest()
        if pytest is not None:
            func = pytest.mark.parametrize(names, cases, ids=ids)(func)
        return func

    return mark


def requires(name: str) -> Callable[[F], F]:
    """Tag a check with the capability it tests: skipped if the store lacks an optional
    one (``spi.capabilities`` rules it out, or the store raises
    ``UnsupportedOperationError``); a required one's refusal is a failure."""
    wanted = capability(name)

    def tag(check: F) -> F:
        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> Any:
            store = kwargs.get("store")
            if not wanted.required and store is not None and name not in capabilities(store):
                skip(
                    f"optional capability {name!r} missing: not supported by {type(store).__name__}"
                )
            try:
                return check(*args, **kwargs)
            except UnsupportedOperationError as error:
                if wanted.required:
                    raise
                skip(f"optional capability {name!r} missing: {error}")

        setattr(run, CAPABILITY, name)
        return run  # type: ignore[return-value]

    return tag
