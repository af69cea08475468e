"""Without psycopg the PostgreSQL cases skip saying why (and fail under CI), never error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
RUN_WITHOUT_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; import pytest; "
    "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]]))"
)


def _run(*args: str, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env.update({"CI": "1"} if ci else {})
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_PSYCOPG, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_without_psycopg_postgres_cases_skip() -> None:
    done = _run(
        "tests/conformance", "tests/backends", "-k", "postgres and not without_psycopg", ci=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.splitlines()[-1]
    assert " skipped" in summary and "passed" not in summary and "error" not in summary
    assert "psycopg is not installed" in done.stdout


def test_without_psycopg_postgres_cases_fail_under_ci() -> None:
    done = _run("tests/conformance/test_contract.py", "-k", "postgres and delete", ci=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CI is set but psycopg is not installed" in done.stdout
