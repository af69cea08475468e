"""The README and ``docs/`` held to the code: every page linked, every link and anchor
resolving, every ``chatflow`` command and option documented in ``docs/cli.md``, the
README's set-up commands the ones CI runs, and its library example running as shown."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from chatflow.cli.main import build_parser
from repo_paths import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
CLI_DOC = DOCS / "cli.md"
PAGES = sorted(DOCS.glob("*.md"))
MARKDOWN = [README, ROOT / "CHANGELOG.md", *PAGES]

README_MAX_LINES = 200
EXAMPLE_MAX_LINES = 15
SHARED_OPTIONS = {"--help", "--json", "--no-color"}  # every command has them; documented once

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
COMMAND_SECTION = re.compile(r"^### `chatflow ([a-z]+)`$", re.MULTILINE)


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (where ``[x](y)`` and ``# x`` are code)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(heading) for heading in HEADING.findall(prose(page.read_text("utf-8")))}


def commands() -> list[str]:
    """The commands ``chatflow --help`` lists, in its order."""
    listing = build_parser().format_help().split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^ {4}([a-z]+)\b", listing, re.MULTILINE)


def options_of(command: str) -> set[str]:
    """The long options ``chatflow COMMAND --help`` shows."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser(command).parse_args([command, "--help"])
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out.getvalue()))


def cli_sections() -> dict[str, str]:
    """Each ``### `chatflow X``` section of docs/cli.md: command -> its text."""
    text = CLI_DOC.read_text("utf-8")
    starts = list(COMMAND_SECTION.finditer(text))
    ends = [match.start() for match in starts[1:]] + [len(text)]
    sections = {}
    for match, end in zip(starts, ends, strict=True):
        body = text[match.end() : end]
        sections[match.group(1)] = re.split(r"^#{1,3} ", body, maxsplit=1, flags=re.MULTILINE)[0]
    return sections


def readme_section(title: str) -> str:
    text = README.read_text("utf-8")
    return text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


# -- the README and the pages ---------------------------------------------------------


def test_readme_is_short() -> None:
    lines = README.read_text("utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the reference goes in docs/"


def test_readme_links_every_docs_page() -> None:
    linked = {Path(target).name for target in LINK.findall(README.read_text("utf-8"))}
    assert PAGES, "docs/ has no pages"
    unlinked = [page.name for page in PAGES if page.name not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_readme_images_are_absolute() -> None:
    """PyPI shows the README without the repository around it: a relative image breaks."""
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", prose(README.read_text("utf-8")))
    assert [image for image in images if not image.startswith("https://")] == []


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link names an existing file, and every ``#anchor`` a heading in it
    (absolute URLs are not fetched: the tests run offline)."""
    broken = []
    for target in LINK.findall(prose(page.read_text("utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_file():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.name}: {broken}"


# -- docs/cli.md against the parser -------------------------------------------------------


def test_every_command_has_its_section_in_the_cli_reference() -> None:
    listed = commands()
    assert "demo" in listed and "ui" in listed, listed  # the help's listing was parsed
    sections = cli_sections()
    assert [name for name in listed if name not in sections] == [], "undocumented commands"
    assert [name for name in sections if name not in listed] == [], "documented, not in --help"


def test_every_option_is_in_its_commands_section() -> None:
    sections = cli_sections()
    missing = {
        command: sorted(options_of(command) - SHARED_OPTIONS - set(re.findall(r"--[a-z-]+", body)))
        for command, body in sections.items()
    }
    assert {command: opts for command, opts in missing.items() if opts} == {}


def test_global_options_are_in_the_cli_reference() -> None:
    text = CLI_DOC.read_text("utf-8")
    top = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", build_parser().format_help()))
    assert sorted(option for option in top if option not in text) == []


def test_chatflow_commands_named_in_the_docs_exist() -> None:
    """Every `` `chatflow WORD ...` `` code span in the docs names a real command."""
    real = set(commands())
    takes_value = {"--dir", "--schema-dir"}
    unknown = []
    for page in [README, *PAGES]:
        for span in re.findall(r"`(chatflow [^`]+)`", prose(page.read_text("utf-8"))):
            words = iter(span.split()[1:])
            for word in words:
                if word in takes_value:
                    next(words, None)
                elif not word.startswith("-"):
                    if word.isalpha() and word.islower() and word not in real:
                        unknown.append(f"{page.name}: {span}")
                    break
    assert unknown == []


# -- the README's set-up and example -------------------------------------------------------


def test_setup_commands_are_what_ci_runs() -> None:
    """The README's two set-up commands: install and run the main job on the default
    store; install with the test extras and run exactly the pytest command .ci/run runs."""
    run_demo, run_tests = code_blocks(readme_section("Set-up"), "bash")
    assert "demo" in commands()
    assert run_demo.strip() == (
        "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/chatflow demo"
    )
    venv, install, test = (shlex.split(part) for part in run_tests.strip().split(" && "))
    assert venv == ["python3", "-m", "venv", ".venv"]
    assert test[0] == ".venv/bin/python"
    ci = (ROOT / ".ci" / "run").read_text("utf-8").splitlines()
    ci_tests = [shlex.split(line) for line in ci if line.startswith("python -m pytest")]
    assert ci_tests == [["python", *test[1:]]], "README and .ci/run run different tests"
    ci_installs = [shlex.split(line) for line in ci if "pip install" in line and "-e" in line]
    assert install[:2] == [".venv/bin/pip", "install"] and len(ci_installs) == 1
    assert {a for a in install[2:] if a != "-q"} == {
        a for a in ci_installs[0][4:] if a != "--quiet"
    }, "README and .ci/run install different extras"


def test_readme_library_example_runs_as_shown(tmp_path: Path) -> None:
    (example,) = code_blocks(readme_section("Using the library"), "python")
    assert example.count("\n") <= EXAMPLE_MAX_LINES
    shown = """
assert (state.current_phase, state.status.value) == ("design", "running")
assert engine.get_task_artifacts(iid, "requirement_analysis").response == "Needs email check."
assert engine.get_feature_status("feat_user_auth")["status"] == "in_progress"
"""
    result = subprocess.run(
        [sys.executable, "-c", example + shown],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my_project" / ".chatflow" / "instances").is_dir()
