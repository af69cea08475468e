"""Where the repository's files are, for tests in any topic folder (tests/<topic>/).

Found from the folder holding ``pyproject.toml``, so a test's depth under ``tests/``
does not matter.
"""

from __future__ import annotations

from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SRC = ROOT / "src"
EXAMPLES = ROOT / "examples" / "workflows"
FIXTURES = ROOT / "tests" / "fixtures"
