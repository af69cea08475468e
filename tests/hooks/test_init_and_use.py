"""``chatflow init --agent ...`` merges into what a project has and is idempotent;
``chatflow use`` binds a working tree (every folder of a git repository shares it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._support import chatflow, files_of, ok, start

tomllib = pytest.importorskip("tomllib")  # Python 3.11+: reads what init wrote

EVENTS = ("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SubagentStop")

USER_SETTINGS = {
    "permissions": {"allow": ["Bash(npm test:*)"], "deny": ["Read(./.env)"]},
    "hooks": {
        "PostToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}],
    },
    "model": "opus",
}


def test_init_claude_on_an_empty_project(project: Path) -> None:
    out = ok(project, "init", "--agent", "claude", "--workflow", "flow.json")
    assert "created store" in out and "registered workflow hooked@1" in out
    settings = json.loads((project / ".claude" / "settings.json").read_text("utf-8"))
    for event in EVENTS:
        (group,) = settings["hooks"][event]
        (command,) = group["hooks"]
        assert command["type"] == "command"
        assert command["command"].endswith(f"hook claude {event}")
        assert '"$CLAUDE_PROJECT_DIR"/.chatflow' in command["command"]
    assert settings["hooks"]["PostToolUse"][0]["matcher"] == "Write|Edit|MultiEdit|NotebookEdit"
    mcp = json.loads((project / ".mcp.json").read_text("utf-8"))
    assert mcp == {"mcpServers": {"chatflow": {"command": "chatflow", "args": ["mcp"]}}}
    assert "hooked" in ok(project, "workflows")
    before = files_of(project)
    again = ok(project, "init", "--agent", "claude", "--workflow", "flow.json")
    assert again.strip() == f"nothing to change: {project.resolve()} is set up already"
    assert files_of(project) == before


def test_init_claude_keeps_the_users_settings(project: Path) -> None:
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").write_text(json.dumps(USER_SETTINGS), "utf-8")
    mine = {"mcpServers": {"db": {"command": "db-mcp"}, "chatflow": {"command": "my-chatflow"}}}
    (project / ".mcp.json").write_text(json.dumps(mine), encoding="utf-8")
    out = ok(project, "init", "--agent", "claude")
    assert "added hooks" in out and ".mcp.json" not in out
    settings = json.loads((project / ".claude" / "settings.json").read_text("utf-8"))
    assert settings["permissions"] == USER_SETTINGS["permissions"]
    assert settings["model"] == "opus"
    assert settings["hooks"]["PostToolUse"][0] == USER_SETTINGS["hooks"]["PostToolUse"][0]
    assert settings["hooks"]["Stop"][0] == USER_SETTINGS["hooks"]["Stop"][0]
    assert len(settings["hooks"]["Stop"]) == 2
    assert json.loads((project / ".mcp.json").read_text("utf-8")) == mine  # theirs, kept
    before = files_of(project)
    assert "nothing to change" in ok(project, "init", "--agent", "claude")
    assert files_of(project) == before


def test_init_cursor_and_codex(project: Path) -> None:
    (project / ".cursor").mkdir()
    cursor = {"mcpServers": {"web": {"url": "https://example.com/mcp"}}}
    (project / ".cursor" / "mcp.json").write_text(json.dumps(cursor), encoding="utf-8")
    (project / ".codex").mkdir()
    user_toml = '# mine\nmodel = "o3"\n\n[mcp_servers.docs]\ncommand = "docs-mcp"\nargs = ["--x"]'
    (project / ".codex" / "config.toml").write_text(user_toml, encoding="utf-8")
    ok(project, "init", "--agent", "cursor", "--agent", "codex")
    servers = json.loads((project / ".cursor" / "mcp.json").read_text("utf-8"))["mcpServers"]
    assert servers == {**cursor["mcpServers"], "chatflow": {"command": "chatflow", "args": ["mcp"]}}
    text = (project / ".codex" / "config.toml").read_text("utf-8")
    assert text.startswith(user_toml)  # the user's text, byte for byte, then the table
    config = tomllib.loads(text)
    assert config["model"] == "o3"
    assert config["mcp_servers"]["docs"] == {"command": "docs-mcp", "args": ["--x"]}
    assert config["mcp_servers"]["chatflow"] == {"command": "chatflow", "args": ["mcp"]}
    before = files_of(project)
    assert "nothing to change" in ok(project, "init", "--agent", "cursor", "--agent", "codex")
    assert files_of(project) == before


def test_init_with_a_store_elsewhere_names_it(project: Path, tmp_path: Path) -> None:
    ok(project, "--dir", "state/flows", "init", "--agent", "claude", "--agent", "codex")
    settings = json.loads((project / ".claude" / "settings.json").read_text("utf-8"))
    command = settings["hooks"]["Stop"][0]["hooks"][0]["command"]
    assert command == 'chatflow --dir "$CLAUDE_PROJECT_DIR"/state/flows hook claude Stop'
    mcp = json.loads((project / ".mcp.json").read_text("utf-8"))["mcpServers"]["chatflow"]
    assert mcp["args"] == ["mcp", "--dir", "state/flows"]
    config = tomllib.loads((project / ".codex" / "config.toml").read_text("utf-8"))
    assert config["mcp_servers"]["chatflow"]["args"] == ["mcp", "--dir", "state/flows"]


@pytest.mark.parametrize(
    ("path", "text", "agent"),
    [
        (".claude/settings.json", "{not json", "claude"),
        (".claude/settings.json", '{"hooks": []}', "claude"),
        (".claude/settings.json", '{"hooks": {"Stop": {"x": 1}}}', "claude"),
        (".mcp.json", "[1]", "claude"),
        (".cursor/mcp.json", '{"mcpServers": 3}', "cursor"),
        (".codex/config.toml", "[mcp_servers\nbroken", "codex"),
    ],
)
def test_init_refuses_malformed_settings_touching_nothing(
    project: Path, path: str, text: str, agent: str
) -> None:
    target = project / path
    target.parent.mkdir(exist_ok=True)
    target.write_text(text, encoding="utf-8")
    before = files_of(project)
    result = chatflow(project, "init", "--agent", agent)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "nothing changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert files_of(project) == before
    assert not (project / ".chatflow").exists()


def test_use_binds_the_whole_work_tree(project: Path) -> None:
    instance_id = start(project)
    sub = project / "src"
    store = ["--dir", str(project / ".chatflow")]
    assert "bound to no instance" in ok(sub, *store, "use")
    ok(sub, *store, "use", instance_id)
    found = json.loads(ok(project, "use", "--json"))
    assert found == {
        "root": str(project.resolve()),
        "binding": {"instance_id": instance_id},
        "instance_id": instance_id,
    }
    assert json.loads(ok(sub, *store, "show", "--json"))["instance_id"] == instance_id
    ok(project, "use", "--feature", "feat_login")
    assert json.loads(ok(project, "use", "--json"))["instance_id"] == instance_id
    assert "binding cleared" in ok(project, "use", "--clear")
    refused = chatflow(project, "show")
    assert refused.returncode == 2 and "chatflow use" in refused.stderr
    for words, code in ((["use", "wfi_nope"], 3), (["use", "--feature", "feat_nope"], 3)):
        result = chatflow(project, *words)
        assert result.returncode == code, result.stderr
    assert json.loads(ok(project, "use", "--json"))["binding"] is None


def test_mcp_status_without_arguments_reports_the_bound_instance(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatflow.agent import operations
    from chatflow.core.engine import WorkflowEngine

    instance_id = start(project)
    engine = WorkflowEngine(storage_dir=project / ".chatflow")
    try:
        monkeypatch.chdir(project / "src")
        assert "instance" not in operations.status(engine)
        ok(project, "use", instance_id)
        found = operations.status(engine)
    finally:
        engine.close()
    assert found["instance"]["instance_id"] == instance_id
    assert found["bound"] == {"root": str(project.resolve()), "instance_id": instance_id}
    assert found["total_features"] == 1
