"""Who acted, and approval to enter a phase, through the real ``chatflow`` command
(issue 15, "Rules skipped"; issue 20: a manual resume is a resume).

Every steering command records its actor: ``--by NAME``, else the user logged in
(``getpass.getuser``, here ``$LOGNAME``); ``approve`` and ``reject`` always name theirs.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from ._cli import REVIEW_FLOW, Runner, base_env, refused

OS_USER = "zoe_os"


class As(Runner):
    """``chatflow --dir STORE ...`` run as the OS user ``zoe_os``."""

    def __init__(self, cwd: Path, store: str, schemas: Path) -> None:
        super().__init__(cwd)
        self.store = store
        self.schemas = ("--schema-dir", str(schemas))

    def __call__(self, *args: str, **kwargs: Any) -> Any:
        env = base_env(LOGNAME=OS_USER, USER=OS_USER)
        return super().__call__("--dir", self.store, *args, env=env, **kwargs)

    def history(self, iid: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.json("history", iid)
        return events


@pytest.fixture(params=["file", "sqlite", "postgres"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> As:
    """The command on a fresh store of each kind, with two versions of review_flow."""
    return on_store(request.param, request, tmp_path)


@pytest.fixture
def file_cli(request: pytest.FixtureRequest, tmp_path: Path) -> As:
    """The command on a fresh file store (for rules no store can change)."""
    return on_store("file", request, tmp_path)


def on_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> As:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    v3 = {**REVIEW_FLOW, "version": 3, "title": "Review flow, v3"}
    for schema in (REVIEW_FLOW, v3):
        (schemas / f"v{schema['version']}.json").write_text(json.dumps(schema), "utf-8")
    if kind == "file":
        store = str(tmp_path / ".chatflow")
    elif kind == "sqlite":
        store = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url: str = request.getfixturevalue("pg_url")
        schema = f"{request.getfixturevalue('pg_schema')}_{secrets.token_hex(3)}"
        store = f"{url}?schema={schema}"
    return As(tmp_path, store, schemas)


def start(cli: As, *args: str) -> str:
    flow = ("review_flow", "--version", "2", "--feature", "f")
    iid: str = cli.json(*cli.schemas, "start", *flow, *args)["instance_id"]
    return iid


def actors(events: list[dict[str, Any]], kind: str) -> list[str | None]:
    return [e["actor"] for e in events if e["kind"] == kind]


def test_every_command_records_who_acted(cli: As) -> None:
    iid = start(cli)  # no --by: the OS user
    cli.ok("record", iid, "--prompt", "p", "--response", "r", "--by", "rec")
    cli.ok("next", iid, "--by", "nx")  # into review: waits for approval
    cli.ok("approve", iid, "--by", "alice")
    cli.ok("pause", iid, "--reason", "lunch")  # no --by: the OS user
    cli.ok("resume", iid, "--by", "res")
    cli.ok("fail", iid, "--error", "boom", "--by", "fl")
    cli.ok("retry", iid, "--by", "rt", "--force")
    cli.ok("jump", iid, "draft", "--by", "jp")
    child = cli.json("fork", iid, "--at", "0", "--by", "fk")["instance_id"]
    cli.ok(*cli.schemas, "upgrade", iid, "--to", "3", "--by", "up")
    cli.ok("cancel", iid, "--by", "cn")

    events = cli.history(iid)
    expected = {
        "started": [OS_USER],
        "task_recorded": ["rec"],
        "phase_completed": ["nx"],
        "approval_requested": ["nx"],
        "resumed": ["alice", "res"],
        "paused": [OS_USER],
        "failed": ["fl"],
        "retried": ["rt"],
        "approval_overridden": ["rt"],
        "jumped": ["jp"],
        "forked": ["fk"],
        "schema_upgraded": ["up"],
        "cancelled": ["cn"],
    }
    assert {kind: actors(events, kind) for kind in expected} == expected
    assert actors(cli.history(child), "started") == ["fk"]
    table = cli.ok("history", iid).stdout.splitlines()[1:]
    shown = {line.split()[3] for line in table}  # AT EVENT PHASE BY ...
    assert shown == {OS_USER, "rec", "nx", "alice", "res", "fl", "rt", "jp", "fk", "up", "cn"}
    by_row = {row["phase"]: row["actor"] for row in cli.json("show", iid)["timeline"]}
    assert by_row["draft"] == "cn"  # the visit the cancel closed


def test_the_meta_of_the_call_names_the_actor_when_by_does_not(cli: As) -> None:
    iid = start(cli, "--meta", "user_id=dev_al")
    cli.ok("next", iid, "--meta", "actor=bot")
    events = cli.history(iid)
    assert actors(events, "started") == ["dev_al"]
    assert actors(events, "phase_completed") == ["bot"]
    for blank in (" ", "bad\nname"):
        refused(cli("pause", iid, "--by", blank), 2, "--by must name someone")
    refused(cli("approve", iid, "--by", ""), 2, "--by must name someone")


def test_delete_says_who_deleted(file_cli: As) -> None:
    iid = start(file_cli)
    assert file_cli.json("delete", iid, "--yes") == {"deleted": [iid], "by": OS_USER}


def test_jump_into_a_gated_phase_waits_for_approval_unless_forced(file_cli: As) -> None:
    cli = file_cli
    iid = start(cli)
    jumped = cli.json("jump", iid, "review")
    assert (jumped["status"], jumped["current_phase"]) == ("paused", "review")
    assert jumped["pause"]["kind"] == "approval"
    refused(cli("next", iid), 1, "is paused")
    assert cli.json("approve", iid, "--by", "alice")["status"] == "running"

    forced_id = start(cli)
    forced = cli.json("jump", forced_id, "review", "--force", "--by", "lead")
    assert (forced["status"], forced["pause"]) == ("running", None)
    assert forced["timeline"][-1]["approvals"][0]["decision"] == "overridden"
    assert actors(cli.history(forced_id), "approval_overridden") == ["lead"]
    assert "overridden by lead" in cli.ok("show", forced_id).stdout


def test_fork_reject_and_retry_into_a_gated_phase_wait_unless_forced(file_cli: As) -> None:
    cli = file_cli
    iid = start(cli)
    cli.ok("next", iid)  # waits to enter review
    again = cli.json("reject", iid, "--by", "carol", "--to", "review")
    assert (again["current_phase"], again["status"]) == ("review", "paused")
    forced = cli.json("reject", iid, "--by", "carol", "--to", "review", "--force")
    assert (forced["current_phase"], forced["status"]) == ("review", "running")
    cli.ok("fail", iid, "--error", "boom")
    assert cli.json("retry", iid)["status"] == "paused"
    assert cli.json("fork", iid, "--at", "1")["status"] == "paused"
    assert cli.json("fork", iid, "--at", "1", "--force")["status"] == "running"


def test_a_manual_resume_is_shown_as_a_resume(cli: As) -> None:
    iid = start(cli)
    cli.ok("pause", iid, "--reason", "lunch", "--by", "carol")
    resumed = cli.json("resume", iid, "--by", "dan")
    assert [row["approvals"] for row in resumed["timeline"]] == [[]]
    view = cli.json("show", iid)
    assert [row["approvals"] for row in view["timeline"]] == [[]]
    assert "approved" not in cli.ok("show", iid).stdout
    (event,) = [e for e in cli.history(iid) if e["kind"] == "resumed"]
    assert (event["actor"], event["data"]["kind"], event["data"]["approved_by"]) == (
        "dan",
        "manual",
        None,
    )
    # An approval, by contrast, is shown as one.
    cli.ok("next", iid)
    approved = cli.json("approve", iid, "--by", "alice")
    decisions = [a["decision"] for row in approved["timeline"] for a in row["approvals"]]
    assert decisions == ["approved"]
