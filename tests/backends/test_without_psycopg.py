"""Without psycopg the PostgreSQL cases skip saying why (and fail under CI), never error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
RUN_WITHOUT_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; import pytest; "
    "sys.exit(pytest.main(['-q', '-n', '0', '-p', 'no:cacheprovider', *sys.argv[1:]]))"
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


# Put first on PYTHONPATH, it makes psycopg unimportable in that process, as on a machine
# without the [postgres] extra (uninstalling it would break the other tests).
BLOCK_PSYCOPG = """
import sys


class _NoPsycopg:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("psycopg", "psycopg_pool", "psycopg_binary"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoPsycopg())
"""
INSTALL_HINT = "pip install 'chatflow-engine[postgres]'"
URL = "postgresql://nobody@127.0.0.1:5432/test?schema=never_created"
CHATFLOW = shutil.which("chatflow", path=str(Path(sys.executable).parent)) or "chatflow"


def _without_psycopg(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCK_PSYCOPG, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "CHATFLOW_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_library_raises_a_storage_error_naming_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from chatflow import StorageError, WorkflowEngine\n"
        "from chatflow.storage import PostgresStore, open_store\n"
        "for attempt in (lambda: open_store(sys.argv[1]), lambda: PostgresStore(sys.argv[1]),\n"
        "                lambda: WorkflowEngine(sys.argv[1]).list_features()):\n"
        "    try:\n"
        "        attempt()\n"
        "    except StorageError as error:\n"
        "        print(error)\n"
        "import psycopg\n"  # proves the blocker works: this must fail
    )
    done = _without_psycopg(tmp_path, sys.executable, "-c", code, URL)
    assert done.stderr.rstrip().endswith("ModuleNotFoundError: No module named 'psycopg'")
    printed = done.stdout.splitlines()
    assert len(printed) == 3 and all(INSTALL_HINT in line for line in printed), done.stdout


@pytest.mark.parametrize(
    "args", [("list",), ("show", "wfi_abc"), ("demo",), ("migrate", "--to", "sqlite:///x.db")]
)
def test_the_command_says_which_extra_to_install(tmp_path: Path, args: tuple[str, ...]) -> None:
    if args[0] == "migrate":  # the PostgreSQL store is the source here
        args = ("--dir", "sqlite:///x.db", "migrate", "--from", URL, "--to", "sqlite:///y.db")
    else:
        args = ("--dir", URL, *args)
    done = _without_psycopg(tmp_path, CHATFLOW, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("chatflow: error: ")
    assert INSTALL_HINT in done.stderr
