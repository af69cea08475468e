"""Read commands: list, features/status, show, history, artifacts, workflows, diagram,
run as the real ``chatflow`` executable. They never create a store."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from ._cli import Runner, base_env, refused

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def demo(run: Runner, feature: str = "feat_user_auth") -> str:
    return run.ok("demo", "--feature", feature).stdout.split()[1]


def test_version_and_help_document_exit_codes(run: Runner) -> None:
    assert run.ok("--version").stdout.startswith("chatflow ")
    helptext = run.ok("--help").stdout
    for line in ("0  ok", "1  the operation failed", "2  usage error", "3  not found"):
        assert line in helptext
    commands = [
        "list",
        "features",
        "status",
        "show",
        "history",
        "artifacts",
        "start",
        "next",
        "approve",
        "reject",
        "pause",
        "resume",
        "fail",
        "retry",
        "cancel",
        "jump",
        "fork",
        "delete",
        "export",
        "import",
        "doctor",
        "verify",
        "compact",
        "migrate",
        "upgrade",
        "workflows",
        "diagram",
        "demo",
        "completion",
    ]
    listed = {line.split()[0] for line in helptext.splitlines() if line.startswith("    ")}
    assert set(commands) <= listed
    assert "__complete" not in helptext
    assert "--limit" in run.ok("list", "--help").stdout


def test_list_features_and_show_after_demo(run: Runner, tmp_path: Path) -> None:
    iid = demo(run)
    rows = run.json("list")
    assert rows == [
        {
            "instance_id": iid,
            "feature_id": "feat_user_auth",
            "workflow": "code_generation",
            "workflow_version": 1,
            "status": "completed",
            "current_phase": "implementation",
            "created_at": rows[0]["created_at"],
            "updated_at": rows[0]["updated_at"],
            "progress": 1.0,
            "finished": True,
            "problem": None,
            "wait": None,
        }
    ]
    assert ISO_WITH_OFFSET.match(rows[0]["updated_at"])
    text = run.ok("list").stdout.splitlines()
    assert text[0].split() == ["ID", "FEATURE", "WORKFLOW", "STATUS", "PHASE", "UPDATED"]
    assert text[1].split()[:4] == [iid, "feat_user_auth", "code_generation@1", "completed"]

    (rollup,) = run.json("features")
    assert rollup["counts"] == {
        "created": 0,
        "running": 0,
        "paused": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert rollup["unreadable_instances"] == []
    assert run.json("status") == [rollup]  # status is an alias
    one = run.json("status", "--feature", "feat_user_auth")
    assert one["usage"]["total"]["chatflow.records"] == 0  # one feature: its spend too
    assert {k: v for k, v in one.items() if k != "usage"} == rollup
    header = run.ok("features").stdout.splitlines()[0].split()
    assert {"PAUSED", "CANCELLED"} <= set(header)

    view = run.json("show", iid)
    assert [row["phase"] for row in view["timeline"]] == [
        "requirement_analysis",
        "design",
        "implementation",
    ]
    check = view["timeline"][0]["artifacts"]
    assert check["verified"] is True and len(check["prompt_sha256"]) == 64
    assert view["pause"] is None and view["open_gates"] == []
    assert run.json("status", iid) == view
    shown = run.ok("show", iid).stdout
    assert "status" in shown and "completed" in shown and "ok sha256" in shown


def test_list_filters_and_limit(run: Runner) -> None:
    first = demo(run, "feat_one")
    second = demo(run, "feat_two")
    assert [r["instance_id"] for r in run.json("list")] == [second, first]  # newest first
    assert [r["instance_id"] for r in run.json("list", "--limit", "1")] == [second]
    assert [r["instance_id"] for r in run.json("list", "--feature", "feat_one")] == [first]
    assert run.json("list", "--status", "running") == []
    assert run("list", "--status", "bogus").returncode == 2
    assert run("list", "--limit", "0").returncode == 2
    refused(run("list", "--feature", "feat_nope"), 3, "no feature 'feat_nope'")


def test_history_and_artifacts(run: Runner) -> None:
    iid = demo(run)
    events = run.json("history", iid)
    assert events[0]["kind"] == "started"
    assert [e["kind"] for e in events].count("phase_completed") == 3
    assert all(ISO_WITH_OFFSET.match(e["at"]) for e in events)
    prompt = run.ok("artifacts", iid, "design", "--prompt").stdout
    assert prompt.startswith("# design\n")
    response = run.ok("artifacts", iid, "design", "--response").stdout
    assert "demo AI response for design" in response
    both = run.json("artifacts", iid, "design")
    assert both["prompt"].startswith("# design") and len(both["response_sha256"]) == 64
    refused(run("artifacts", iid, "no_such_phase"), 3, "no artifacts")
    assert run("artifacts", iid, "design", "--prompt", "--response").returncode == 2


def test_tampered_artifact_is_reported_not_hidden(run: Runner, tmp_path: Path) -> None:
    iid = demo(run)
    prompt = tmp_path / ".chatflow" / "instances" / iid / "tasks" / "design.prompt.md"
    prompt.write_text("tampered", encoding="utf-8")
    result = run("show", iid, "--json")
    assert result.returncode == 1
    view = json.loads(result.stdout)
    design = view["timeline"][1]["artifacts"]
    assert design["verified"] is False and "checksum" in design["problem"]
    refused(run("artifacts", iid, "design"), 1, "checksum")


READ_COMMANDS = [
    ("status",),
    ("list",),
    ("features",),
    ("show", "wfi_abc"),
    ("history", "wfi_abc"),
    ("artifacts", "wfi_abc", "design"),
    ("diagram", "wfi_abc"),
    ("doctor",),
    ("verify", "--all"),
    ("export", "--all"),
]


@pytest.mark.parametrize("args", READ_COMMANDS)
def test_read_commands_never_create_a_store(
    run: Runner, tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "nonexistent" / "xyz"
    refused(run("--dir", str(missing), *args), 3, "does not exist")
    refused(run(*args), 3, "does not exist")  # the default ./.chatflow
    assert not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / ".chatflow").exists()


def test_read_commands_never_create_a_sqlite_database(run: Runner, tmp_path: Path) -> None:
    for args in READ_COMMANDS:
        refused(run("--dir", "sqlite:///typo/state.db", *args), 3, "does not exist")
    for args in (("workflows",), ("diagram", "some_flow")):  # lookups in folders, then store
        assert "Traceback" not in run("--dir", "sqlite:///typo/state.db", *args).stderr
    assert list(tmp_path.iterdir()) == []


def test_read_commands_never_create_a_postgres_schema(
    run: Runner, pg_url: str, pg_schema: str, psycopg: ModuleType
) -> None:
    typo = f"{pg_schema}_typo"  # dropped with the session's schema if it were created
    url = f"{pg_url}?schema={typo}"
    for args in READ_COMMANDS:
        refused(run("--dir", url, *args), 3, "does not exist", f"schema={typo}")
    for args in (("workflows",), ("diagram", "some_flow")):
        assert "Traceback" not in run("--dir", url, *args).stderr
    with psycopg.connect(pg_url) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (typo,)).fetchall()
    assert found == []
    # The same schema once a command that writes has created it: readable, listed.
    run.ok("--dir", url, "demo")
    assert len(run.json("--dir", url, "list")) == 1


@pytest.mark.parametrize("content", [b"", b"SQLite format 2\x00 and then garbage" * 50])
def test_a_damaged_sqlite_file_is_an_error_not_an_empty_store(
    run: Runner, tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "state.db").write_bytes(content)
    for args in (("list",), ("features",), ("verify", "--all"), ("doctor",), ("demo",)):
        refused(run("--dir", "sqlite:///state.db", *args), 1, str(tmp_path / "state.db"))
    assert (tmp_path / "state.db").read_bytes() == content
    assert [path.name for path in tmp_path.iterdir()] == ["state.db"]


def test_chatflow_dir_takes_store_urls_like_dir(run: Runner, tmp_path: Path) -> None:
    env = base_env(CHATFLOW_DIR="sqlite:///state.db")
    result = run("status", env=env)
    refused(result, 3, "sqlite:///state.db")
    assert list(tmp_path.iterdir()) == []  # neither a 'sqlite:' folder nor a database
    assert run("demo", env=env).returncode == 0
    assert (tmp_path / "state.db").is_file() and not (tmp_path / ".chatflow").exists()
    listed = run("list", "--json", env=env)
    assert json.loads(listed.stdout)[0]["status"] == "completed"
    assert json.loads(run.ok("--dir", "sqlite:///state.db", "list", "--json").stdout) == json.loads(
        listed.stdout
    )


def test_one_corrupt_instance_does_not_break_every_feature(run: Runner, tmp_path: Path) -> None:
    good = demo(run, "feat_good")
    bad = demo(run, "feat_bad")
    other = demo(run, "feat_bad")
    log = tmp_path / ".chatflow" / "instances" / bad / "events.jsonl"
    log.write_text("{broken\n", encoding="utf-8")  # the log is the truth; a head is rebuilt

    # Roll-ups and listings read the counts and heads kept per step, so the damaged
    # log does not hide the feature; `verify` and `show` find it.
    result = run("features", "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    rollups = {r["feature_id"]: r for r in json.loads(result.stdout)}
    assert rollups["feat_good"]["counts"]["completed"] == 1
    assert rollups["feat_bad"]["counts"]["completed"] == 2
    assert rollups["feat_bad"]["latest_instance_id"] == other

    listed = run("list", "--json")
    assert listed.returncode == 1 and bad in listed.stderr
    rows = {r["instance_id"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {good, other, bad}  # the damaged one is listed, as unreadable
    assert rows[bad]["status"] == "unreadable" and "events.jsonl" in rows[bad]["problem"]
    assert rows[bad]["feature_id"] == "feat_bad" and rows[good]["problem"] is None
    table = run("list")
    assert table.returncode == 1 and any(
        line.split()[:4] == [bad, "feat_bad", "-", "unreadable"]
        for line in table.stdout.splitlines()
    )
    checked = run("verify", "--feature", "feat_bad")
    assert checked.returncode == 1 and bad in checked.stderr and "Traceback" not in checked.stderr
    refused(run("show", bad), 1, "events.jsonl")


def test_a_corrupt_feature_index_does_not_hide_other_features(run: Runner, tmp_path: Path) -> None:
    good = demo(run, "feat_good")
    demo(run, "feat_bad")
    (tmp_path / ".chatflow" / "features" / "feat_bad.link").write_text("../x\n", encoding="utf-8")
    for command in ("features", "list"):
        result = run(command, "--json")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "feat_bad.link" in result.stderr
    rollups = {r["feature_id"]: r for r in json.loads(run("features", "--json").stdout)}
    assert rollups["feat_good"]["latest_instance_id"] == good
    assert [r["instance_id"] for r in json.loads(run("list", "--json").stdout)] == [good]


def test_workflows_and_diagram(run: Runner, tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "flow.json").write_text(
        json.dumps({"name": "flow", "phases": [{"name": "a"}, {"name": "b"}]}), encoding="utf-8"
    )
    (schemas / "broken.json").write_text("{nope", encoding="utf-8")
    result = run("--schema-dir", str(schemas), "workflows", "--json")
    assert result.returncode == 0
    assert [info["name"] for info in json.loads(result.stdout)] == ["flow"]
    assert "chatflow: warning: skipped workflow schema file" in result.stderr
    assert "broken.json" in result.stderr
    diagram = run.ok("--schema-dir", str(schemas), "diagram", "flow").stdout
    assert diagram.startswith("flowchart")
    assert run.ok("diagram", str(schemas / "flow.json")).stdout == diagram
    refused(run("diagram", "missing.yaml"), 3, "'missing.yaml' not found")
    refused(run("--schema-dir", str(schemas), "diagram", "nope"), 3, "Schema nope not found")
    refused(run("--schema-dir", "/no/such", "workflows"), 3, "/no/such")
    assert not (tmp_path / ".chatflow").exists()


def test_bad_ids_are_one_line_errors(run: Runner) -> None:
    demo(run)
    refused(run("show", "../etc"), 2, "invalid instance id '../etc'")
    refused(run("status", "--feature", "a/b"), 2, "invalid feature id 'a/b'")
    refused(run("next", "a/b"), 2, "invalid instance id 'a/b'")
    refused(run("history", ""), 2, "invalid instance id ''")
    refused(run("show", "wfi_missing"), 3, "'wfi_missing' not found")
    assert run().returncode == 2
    assert run("nonsense").returncode == 2


def test_a_workflow_file_is_registered_for_every_later_command(run: Runner, tmp_path: Path) -> None:
    """``start FILE`` and ``workflows register FILE...`` keep the schema in the store, so
    ``workflows``, ``start NAME``, ``diagram NAME`` and ``upgrade --to`` find it without
    ``--schema-dir``; a changed file under the same version is refused (exit 1)."""
    flow = {"name": "flow", "version": 1, "phases": [{"name": "a"}, {"name": "b"}]}
    v1, v2, edited = tmp_path / "v1.json", tmp_path / "v2.json", tmp_path / "edited.json"
    v1.write_text(json.dumps(flow), encoding="utf-8")
    v2.write_text(json.dumps({**flow, "version": 2, "phases": [{"name": "a"}]}), "utf-8")
    edited.write_text(json.dumps({**flow, "phases": [{"name": "a"}]}), encoding="utf-8")

    first = run.json("start", str(v1), "--feature", "feat_r")["instance_id"]
    assert [(w["name"], w["version"]) for w in run.json("workflows")] == [("flow", 1)]
    second = run.json("start", "flow", "--feature", "feat_r")["instance_id"]
    assert "flowchart" in run.ok("diagram", "flow").stdout
    missing = run("upgrade", "--all", "--to", "2")
    assert missing.returncode == 1 and "flow version 2 not found" in missing.stdout

    refused(run("workflows", "register", str(v2), "missing.json"), 3, "missing.json")
    assert len(run.json("workflows")) == 1  # every file is read before any is registered
    registered = run.ok("workflows", "register", str(v2), str(v1)).stdout
    assert "registered flow@2" in registered and "registered flow@1" in registered
    assert [w["version"] for w in run.json("workflows")] == [1, 2]
    refused(run("workflows", "register", str(edited)), 1, "flow' version 1 is already registered")
    refused(run("start", str(edited), "--feature", "feat_r"), 1, "already registered")

    upgraded = run("upgrade", "--all", "--to", "2")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "2 upgraded, 0 unchanged, 0 refused" in upgraded.stdout
    again = run("upgrade", "--feature", "feat_r", "--to", "2")
    assert again.returncode == 0, again.stderr
    assert f"{first}  unchanged" in again.stdout and f"{second}  unchanged" in again.stdout
    assert "0 upgraded, 2 unchanged, 0 refused" in again.stdout


def test_features_totals_line_and_json(run: Runner) -> None:
    """``features --totals``: the roll-ups and one line of totals (``views.overview``)."""
    first = run.start()
    run.start()
    run.ok("cancel", first)
    text = run.ok("features", "--totals").stdout
    assert text.rstrip().splitlines()[-1] == "1 feature(s), 2 instance(s): 1 created, 1 cancelled"
    overview = run.json("features", "--totals")
    assert overview["totals"]["counts"]["cancelled"] == 1
    assert overview["features"] == run.json("features")
