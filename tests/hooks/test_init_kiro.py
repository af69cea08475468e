"""``chatflow init --agent kiro`` against real project folders: Kiro's workspace MCP
settings (``.kiro/settings/mcp.json``) merged into what is there, a steering file, no
hooks; refusals that touch nothing; a second run that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatflow.agent import setup

from ._support import chatflow, files_of, ok

SERVER = {"command": "chatflow", "args": ["mcp"], "autoApprove": ["status", "history", "verify"]}
MCP = Path(".kiro/settings/mcp.json")
STEERING = Path(".kiro/steering/chatflow.md")


def servers(project: Path) -> dict[str, object]:
    found: dict[str, object] = json.loads((project / MCP).read_text("utf-8"))["mcpServers"]
    return found


def test_init_kiro_on_an_empty_project_then_again(project: Path) -> None:
    out = ok(project, "init", "--agent", "kiro", "--workflow", "flow.json")
    assert f"{project.resolve() / MCP}: added MCP server chatflow" in out
    assert f"{project.resolve() / STEERING}: added steering file" in out
    assert servers(project) == {"chatflow": SERVER}
    steering = (project / STEERING).read_text("utf-8")
    assert steering.startswith("---\ninclusion: always\n---\n")
    assert "`status`" in steering and "`record`" in steering and "`next`" in steering
    assert not (project / ".kiro" / "hooks").exists()  # Kiro's hooks are not Claude's
    assert sorted(files_of(project)) == sorted(["flow.json", str(MCP), str(STEERING)])
    before = files_of(project)
    again = ok(project, "init", "--agent", "kiro", "--workflow", "flow.json")
    assert again.strip() == f"nothing to change: {project.resolve()} is set up already"
    assert files_of(project) == before
    said = json.loads(ok(project, "init", "--agent", "kiro", "--json"))
    assert said["changed"] == []
    assert sorted(said["unchanged"]) == [
        f"{project.resolve() / MCP}: MCP server chatflow already there",
        f"{project.resolve() / STEERING}: steering file already there",
    ]


def test_init_kiro_keeps_the_users_servers_keys_and_steering(project: Path) -> None:
    mine = {
        "mcpServers": {
            "aws-docs": {
                "command": "uvx",
                "args": ["awslabs.aws-documentation-mcp-server@latest"],
                "env": {"FASTMCP_LOG_LEVEL": "ERROR"},
                "disabled": False,
                "autoApprove": [],
            },
            "remote": {"url": "https://example.com/mcp", "headers": {"X-Key": "${KEY}"}},
        },
        "someFutureKey": {"kept": True},
    }
    (project / MCP).parent.mkdir(parents=True)
    (project / MCP).write_text(json.dumps(mine), encoding="utf-8")
    (project / STEERING).parent.mkdir(parents=True)
    (project / ".kiro" / "steering" / "tech.md").write_text("# Our stack\n", encoding="utf-8")
    out = ok(project, "init", "--agent", "kiro")
    assert "added MCP server chatflow" in out and "added steering file" in out
    written = json.loads((project / MCP).read_text("utf-8"))
    assert written == {**mine, "mcpServers": {**mine["mcpServers"], "chatflow": SERVER}}
    assert (project / ".kiro" / "steering" / "tech.md").read_text("utf-8") == "# Our stack\n"
    before = files_of(project)
    assert "nothing to change" in ok(project, "init", "--agent", "kiro")
    assert files_of(project) == before


def test_init_kiro_keeps_a_chatflow_server_and_steering_the_user_wrote(project: Path) -> None:
    theirs = {"mcpServers": {"chatflow": {"command": "chatflow", "args": ["mcp", "--read-only"]}}}
    (project / MCP).parent.mkdir(parents=True)
    (project / MCP).write_text(json.dumps(theirs), encoding="utf-8")
    (project / STEERING).parent.mkdir(parents=True)
    (project / STEERING).write_text("Use ChatFlow our way.\n", encoding="utf-8")
    before = files_of(project)
    said = json.loads(ok(project, "init", "--agent", "kiro", "--json"))
    (created,) = said["changed"]
    assert created.startswith("created store")
    assert any("(your own settings, kept)" in line for line in said["unchanged"])
    assert any("steering file already there (yours, kept)" in line for line in said["unchanged"])
    assert files_of(project) == before


def test_init_kiro_names_a_store_elsewhere_relative_to_the_project(project: Path) -> None:
    ok(project, "--dir", "state/flows", "init", "--agent", "kiro")
    assert servers(project)["chatflow"] == {**SERVER, "args": ["mcp", "--dir", "state/flows"]}


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (".kiro/settings/mcp.json", '{"mcpServers": {"db": {"command": "db"},}'),
        (".kiro/settings/mcp.json", "[]"),
        (".kiro/settings/mcp.json", '{"mcpServers": ["chatflow"]}'),
        (".kiro/settings", "a file where Kiro's settings folder goes"),
        (".kiro/steering", "a file where Kiro's steering folder goes"),
    ],
)
def test_init_kiro_refuses_what_it_cannot_read_touching_nothing(
    project: Path, path: str, text: str
) -> None:
    target = project / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    before = files_of(project)
    result = chatflow(project, "init", "--agent", "kiro", "--agent", "cursor")
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "nothing changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert files_of(project) == before  # not even cursor's file, nor the other Kiro file
    assert not (project / ".chatflow").exists()


def test_init_kiro_refuses_a_steering_file_that_is_not_utf8(project: Path) -> None:
    (project / STEERING).parent.mkdir(parents=True)
    (project / STEERING).write_bytes(b"\xff\xfe not UTF-8")
    before = files_of(project)
    result = chatflow(project, "init", "--agent", "kiro")
    assert result.returncode == 1 and f"cannot read {project.resolve() / STEERING}" in result.stderr
    assert files_of(project) == before


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("kiru", "unknown agent 'kiru' (did you mean 'kiro'?)"),
        ("Cursor", "unknown agent 'Cursor' (did you mean 'cursor'?)"),
        ("vim", "unknown agent 'vim' (one of claude, cursor, codex, kiro)"),
    ],
)
def test_a_mistyped_agent_is_a_usage_error_naming_the_one_meant(
    project: Path, typed: str, said: str
) -> None:
    result = chatflow(project, "init", "--agent", typed)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"chatflow init: error: argument --agent: {said}"
    assert not (project / ".kiro").exists()
    assert not (project / ".chatflow").exists()


def test_completion_offers_the_agents_after_init_agent(project: Path) -> None:
    for typed, expected in (("", ["claude", "cursor", "codex", "kiro"]), ("k", ["kiro"])):
        out = ok(project, "__complete", "init", "--agent", typed)
        assert out.split() == expected
    assert ok(project, "__complete", "start", "--agent", "").split() == []


def test_kiro_auto_approves_only_the_reading_tools(tmp_path: Path) -> None:
    """The tools Kiro runs unasked are exactly those the server marks read-only: never
    ``next``, where a person's approval is asked, nor any tool that changes an instance."""
    pytest.importorskip("mcp")
    import anyio

    from chatflow.agent.mcp_server import build_server
    from chatflow.core.engine import WorkflowEngine

    engine = WorkflowEngine(storage_dir=tmp_path / "store")
    try:
        tools = anyio.run(build_server(engine).list_tools)
    finally:
        engine.close()
    reading = {tool.name for tool in tools if tool.annotations and tool.annotations.read_only_hint}
    assert set(setup.KIRO_AUTO_APPROVE) == reading
    assert "next" not in setup.KIRO_AUTO_APPROVE and len(reading) < len(tools)
