"""The ``mcp`` extra stays optional: without it ``chatflow mcp`` says how to install
it in one line (exit 1), and nothing else in ChatFlow imports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BLOCKER = """\
import sys

class _NoMcp:
    def find_spec(self, name, path=None, target=None):
        if name == "mcp" or name.startswith("mcp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoMcp())
"""


def _env(*first: Path) -> dict[str, str]:
    paths = [str(path) for path in first] + [os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_without_the_sdk_chatflow_mcp_says_how_to_install_it(tmp_path: Path) -> None:
    hider = tmp_path / "hide"
    hider.mkdir()
    (hider / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "chatflow", "--dir", str(tmp_path / "store"), "mcp"],
        capture_output=True, text=True, env=_env(hider), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "chatflow: error: chatflow mcp needs the MCP SDK: pip install 'chatflow-engine[mcp]'"
    ]
    assert done.stdout == ""


def test_other_commands_and_the_package_never_import_the_sdk(tmp_path: Path) -> None:
    code = (
        "import sys; from chatflow.cli.main import main; import chatflow; "
        f"main(['--dir', {str(tmp_path)!r}, 'demo']); main(['--dir', {str(tmp_path)!r}, 'list']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', "
        "'pydantic', 'anyio') or m.startswith('chatflow.agent')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(),
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines()[-1] == "[]"
