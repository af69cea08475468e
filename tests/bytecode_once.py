"""Compile the package and rewrite the test modules once, before the xdist workers start.

Where no bytecode is kept (a fresh clone, or ``PYTHONDONTWRITEBYTECODE`` set, as on our CI
machine), each worker rewrote the asserts of all ~250 test modules while collecting, and
each of the suite's ~200 child processes (the command, MCP servers, hooks) compiled the
package again: together about a tenth of the suite's CPU time on 2 cores. The controller
now does it once, on every core, before the workers start; they and the child processes
read the result. Where the user asked for no bytecode, the files written here are removed
when the session ends, so the checkout is left as it was found.

Assert rewriting uses pytest's own (private) functions, so a pytest that lacks them makes
this a no-op: the suite then runs exactly as before, only slower.
"""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import inspect
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

Rewriter = Callable[[Path], "Path | None"]


def _is_test_module(path: Path) -> bool:
    """What pytest rewrites by default: test files and conftests."""
    name = path.name
    return name == "conftest.py" or (name.startswith("test_") or name.endswith("_test.py"))


def _sources(root: Path, asked: list[Path]) -> tuple[list[Path], list[Path]]:
    """(plain modules to compile, test modules to rewrite): the package, the tests'
    helpers and conftests, and the test modules under the paths this run was given
    (a run of one file rewrites one file)."""
    plain: list[Path] = sorted((root / "src").rglob("*.py"))
    rewritten: list[Path] = []
    for path in sorted((root / "tests").rglob("*.py")):
        if not _is_test_module(path):
            plain.append(path)
        elif path.name == "conftest.py" or any(path.is_relative_to(p) for p in asked):
            rewritten.append(path)
    return plain, rewritten


def _asked(config: pytest.Config) -> list[Path]:
    """The files and folders this run collects from (``tests/x.py::test_y`` -> the file)."""
    here = config.invocation_params.dir
    return [(here / arg.split("::")[0]).resolve() for arg in config.args]


def _rewriter(config: pytest.Config) -> Rewriter | None:
    """A function that rewrites one test module into pytest's cache, or None if this
    pytest does not have the functions it needs."""
    try:
        from _pytest.assertion import rewrite
    except ImportError:
        return None
    try:
        state = config.stash[rewrite.assertstate_key]
        hashed = "source_hash" in inspect.signature(rewrite._write_pyc).parameters
    except (AttributeError, KeyError):
        return None
    if not hashed:
        return None  # pytest < 9 keyed its cache on the source's stat, not its hash

    def rewrite_one(path: Path) -> Path | None:
        pyc = rewrite.get_cache_dir(path) / (path.name[:-3] + rewrite.PYC_TAIL)
        existed = pyc.exists()
        if existed and rewrite._read_pyc(path, pyc, lambda *_: None) is not None:
            return None
        try:
            pyc.parent.mkdir(exist_ok=True)
            source_hash, code = rewrite._rewrite_test(path, config)
        except (OSError, SyntaxError, ValueError):
            return None  # the worker that collects it reports the problem
        written = rewrite._write_pyc(state, code, source_hash, pyc)
        return pyc if written and not existed else None

    return rewrite_one


def _compile_one(path: Path) -> Path | None:
    """Compile one plain module to its usual place; the pyc if this wrote it."""
    pyc = Path(importlib.util.cache_from_source(str(path)))
    existed = pyc.exists()  # compile_file leaves an up-to-date one as it is
    return pyc if compileall.compile_file(path, quiet=2) and not existed else None


_REWRITER: dict[str, Rewriter] = {}  # set in the parent; the forked pool inherits it


def _rewrite_one(path: Path) -> Path | None:
    return _REWRITER["rewrite"](path)


Job = tuple[Callable[[Path], "Path | None"], Path]


def _run(jobs: list[Job]) -> list[Path]:
    """Run the jobs on every core where processes can fork, else here."""
    if sys.platform != "linux" or (os.cpu_count() or 1) < 2:
        results = [job(path) for job, path in jobs]
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=context) as pool:
            futures = [pool.submit(job, path) for job, path in jobs]
            results = [future.result() for future in futures]
    return [path for path in results if path is not None]


def prepare(config: pytest.Config) -> list[Path]:
    """Write the bytecode the workers and child processes would each make; return the
    files this wrote."""
    plain, rewritten = _sources(config.rootpath, _asked(config))
    jobs: list[Job] = [(_compile_one, path) for path in plain]
    rewriter = _rewriter(config)
    if rewriter is not None:
        _REWRITER["rewrite"] = rewriter
        jobs += [(_rewrite_one, path) for path in rewritten]
    try:
        return _run(jobs)
    except OSError:  # a read-only checkout: the workers compile, as before
        return []


def remove(written: list[Path]) -> None:
    """Remove the files :func:`prepare` wrote, and their folders if now empty."""
    for pyc in written:
        pyc.unlink(missing_ok=True)
    for folder in sorted({pyc.parent for pyc in written}, reverse=True):
        with contextlib.suppress(OSError):  # still holds files this session did not write
            folder.rmdir()
