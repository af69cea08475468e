"""delete, export, import, doctor and migrate, run as the real ``chatflow`` executable."""

from __future__ import annotations

import copy
import getpass
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._cli import Runner, refused


def demo(run: Runner, feature: str = "feat_user_auth", *global_args: str) -> str:
    return run.ok(*global_args, "demo", "--feature", feature).stdout.split()[1]


def test_delete_asks_unless_yes(run: Runner, tmp_path: Path) -> None:
    keep = demo(run, "feat_keep")
    gone = demo(run, "feat_gone")
    refused(run("delete", gone), 1, "--yes")  # stdin is not a terminal: never guess
    assert run.json("show", gone)["instance_id"] == gone
    assert run.json("delete", gone, "--yes", "--by", "ops") == {"deleted": [gone], "by": "ops"}
    refused(run("show", gone), 3, "not found")
    assert not (tmp_path / ".chatflow" / "instances" / gone).exists()
    assert [r["feature_id"] for r in run.json("features")] == ["feat_keep"]
    by_default = run.json("delete", "--feature", "feat_keep", "--yes")
    assert by_default == {"deleted": [keep], "by": getpass.getuser()}  # the OS user
    refused(run("delete", "--yes"), 2, "exactly one")
    refused(run("delete", keep, "--feature", "feat_keep", "--yes"), 2, "exactly one")
    refused(run("delete", "--feature", "feat_keep", "--yes"), 3, "no feature")


def test_features_count_what_delete_leaves_in_a_sqlite_store(run: Runner) -> None:
    on_sqlite = ("--dir", "sqlite:///state.db")
    first, second = demo(run, "feat_two", *on_sqlite), demo(run, "feat_two", *on_sqlite)
    assert run.json(*on_sqlite, "features")[0]["counts"]["completed"] == 2
    assert run.json(*on_sqlite, "delete", second, "--yes")["deleted"] == [second]
    (rollup,) = run.json(*on_sqlite, "features")
    assert rollup["counts"]["completed"] == rollup["total_instances"] == 1
    assert rollup["latest_instance_id"] == first
    assert run.json(*on_sqlite, "status", "--feature", "feat_two")["total_instances"] == 1


def test_export_import_round_trip_is_verified_and_idempotent(run: Runner, tmp_path: Path) -> None:
    first = demo(run, "feat_one")
    demo(run, "feat_two")
    dump = tmp_path / "dump.jsonl"
    assert run.json("export", "--all", "-o", str(dump)) == {"exported": 2, "file": str(dump)}
    lines = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    assert [line["instance"]["feature_id"] for line in lines] == ["feat_one", "feat_two"]
    assert len(lines[0]["texts"]) == 3 and lines[0]["chatflow_export"] == 2
    single = run.ok("export", first).stdout
    assert json.loads(single) == lines[0]

    other = ["--dir", str(tmp_path / "copy")]
    imported = run.json(*other, "import", str(dump))
    assert imported["instances_copied"] == 2 and imported["artifacts_copied"] == 6
    again = run.json(*other, "import", str(dump))
    assert again["instances_unchanged"] == 2 and again["artifacts_copied"] == 0
    assert "ok: 2 instances verified" in run.ok(*other, "verify", "--all").stdout
    assert run.json(*other, "show", first) == run.json("show", first)
    prompt = run.ok(*other, "artifacts", first, "design", "--prompt").stdout
    assert prompt.startswith("# design")

    tampered = tmp_path / "tampered.jsonl"
    line = lines[0]
    line["texts"][0]["prompt"] = "changed"
    tampered.write_text(json.dumps(line) + "\n", encoding="utf-8")
    refused(run("--dir", str(tmp_path / "t"), "import", str(tampered)), 1, "does not match")
    (tmp_path / "junk.jsonl").write_text("{}\n", encoding="utf-8")
    refused(run("import", str(tmp_path / "junk.jsonl")), 1, "junk.jsonl:1")
    refused(run("import", str(tmp_path / "missing.jsonl")), 3, "not found")


def test_doctor_finds_and_fixes_file_store_damage(run: Runner, tmp_path: Path) -> None:
    ok = demo(run, "feat_a")
    unindexed = demo(run, "feat_a")
    unreadable = demo(run, "feat_b")
    assert run.json("doctor") == {
        "problems": [],
        "fixed": [],
        "repairs": [],
        "moved_aside": [],
        "waits_indexed": None,
    }
    store = tmp_path / ".chatflow"
    index = store / "features" / "feat_a.link"
    index.write_text(f"{ok}\nwfi_vanished\n", encoding="utf-8")  # drops one, adds a ghost
    # The log is the truth (a broken head is only rebuilt from it): break the log.
    (store / "instances" / unreadable / "events.jsonl").write_text("{broken\n", encoding="utf-8")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    temp = store / "instances" / f".{ok}.json.{dead.stdout.strip()}.0123abcd.tmp"
    temp.write_text("half", encoding="utf-8")
    clash = store / "instances" / f"{ok.upper().replace('WFI_', 'wfi_')}.json"
    clash.write_bytes((store / "instances" / f"{ok}.json").read_bytes())

    result = run("doctor", "--json")
    assert result.returncode == 1
    kinds = sorted(p["kind"] for p in json.loads(result.stdout)["problems"])
    assert kinds == sorted(
        [
            "stale_temp",
            "case_clash",
            "dangling_index_entry",
            "unindexed_instance",
            "damaged_log",
            "damaged_log",  # the upper-case copy is a head with no log
        ]
    )
    clash.unlink()
    broken_log = (store / "instances" / unreadable / "events.jsonl").read_bytes()
    fixed = run("doctor", "--fix", "--json")
    assert fixed.returncode == 1  # the damaged instance, moved aside, needs a human
    report = json.loads(fixed.stdout)
    assert sorted(p["kind"] for p in report["fixed"]) == [
        "damaged_log",
        "dangling_index_entry",
        "stale_temp",
        "unindexed_instance",
    ]
    assert [p["kind"] for p in report["problems"]] == ["quarantined_instance"]
    assert not temp.exists()
    assert index.read_text(encoding="utf-8").split() == [ok, unindexed]
    kept = [Path(p) for p in report["moved_aside"]]
    assert broken_log in [p.read_bytes() for q in kept for p in q.rglob("events.jsonl")]
    assert {r["instance_id"] for r in report["repairs"]} == {"wfi_vanished", unindexed, unreadable}
    text = run("doctor").stdout
    assert "quarantined_instance" in text and unreadable in text
    assert run.json("delete", unreadable, "--yes")["deleted"] == [unreadable]
    assert run("doctor").returncode == 0  # the evidence stays in quarantine/
    assert all(path.exists() for path in kept)


def test_migrate_reports_and_reruns(run: Runner, tmp_path: Path) -> None:
    demo(run)
    target = f"sqlite:///{tmp_path / 'state.db'}"
    report = run.json("migrate", "--from", ".chatflow", "--to", target)
    assert report["instances_copied"] == 1 and report["conflicts"] == []
    assert "already present" in run.ok("migrate", "--from", ".chatflow", "--to", target).stdout
    refused(run("migrate", "--from", "nowhere", "--to", target), 3, "does not exist")
    assert not (tmp_path / "nowhere").exists()
    assert run.json("--dir", target, "doctor")["problems"] == []


def test_verify_checks_artifacts_and_compact_needs_an_event_log(
    run: Runner, tmp_path: Path
) -> None:
    iid = demo(run)
    clean = run.ok("verify", "--all")
    assert "ok: 1 instance verified" in clean.stdout
    assert run.json("verify", iid)["problems"] == []
    assert run.ok("verify", "--feature", "feat_user_auth").stdout.startswith("ok: 1")
    prompt = tmp_path / ".chatflow" / "instances" / iid / "tasks" / "design.prompt.md"
    prompt.write_text("edited", encoding="utf-8")
    broken = run("verify", "--all")
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert iid in broken.stderr and "design" in broken.stderr and "prompt" in broken.stderr
    refused(run("verify"), 2, "exactly one")
    refused(run("verify", "wfi_missing"), 3, "not found")
    from chatflow.core.engine import WorkflowEngine

    if hasattr(WorkflowEngine, "compact"):  # the event-log storage (issue 8)
        prompt.write_text("# design\n\nUser request: create user registration\n", "utf-8")
        assert run.ok("compact", iid, "--keep-last", "2").stdout.startswith(iid)
    else:
        refused(run("compact", iid), 1, "no event log")


def test_migrate_and_import_keep_every_event_and_the_digests(run: Runner, tmp_path: Path) -> None:
    first = demo(run, "feat_one")
    run.ok("record", first, "--phase", "design", "--prompt", "again", "--response", "v2")
    run.ok("fork", first, "--at", "1")
    run.ok("compact", first, "--keep-last", "3")
    demo(run, "feat_two")
    digests = run.ok("verify", "--all").stdout
    assert digests.count("digest ") == 2

    db = f"sqlite:///{tmp_path}/moved.db"
    run.ok("migrate", "--from", str(tmp_path / ".chatflow"), "--to", db)
    assert run.ok("--dir", db, "verify", "--all").stdout == digests
    run.ok("--dir", db, "export", "--all", "-o", str(tmp_path / "dump.jsonl"))
    run.ok("--dir", str(tmp_path / "copy"), "import", str(tmp_path / "dump.jsonl"))
    assert run.ok("--dir", str(tmp_path / "copy"), "verify", "--all").stdout == digests
    for where in (db, str(tmp_path / "copy")):
        assert run.ok("--dir", where, "artifacts", first, "design", "--response").stdout == "v2\n"


def _edit(line: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> str:
    edited = copy.deepcopy(line)
    change(edited)
    return json.dumps(edited)


def _first(line: dict[str, Any], test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return next(event for event in line["events"] if test(event))


def test_import_refuses_an_edited_export_and_writes_nothing(run: Runner, tmp_path: Path) -> None:
    iid = demo(run, "feat_one")
    good = json.loads(run.ok("export", iid).stdout)
    other = demo(run, "feat_two")
    second = json.loads(run.ok("export", other).stdout)
    status_event = _first(good, lambda e: "status" in e.get("set", {}))
    version_event = _first(good, lambda e: "version" in e.get("set", {}))
    edits = {
        "trigger data": (
            lambda d: d["events"][0]["state"]["variables"].update(user_request="evil"),
            1,
        ),
        "status": (
            lambda d: _first(d, lambda e: e["seq"] == status_event["seq"])["set"].update(
                status="cancelled"
            ),
            status_event["seq"],
        ),
        "version": (
            lambda d: _first(d, lambda e: e["seq"] == version_event["seq"])["set"].update(
                version=99
            ),
            version_event["seq"],
        ),
        "history": (lambda d: d["events"].pop(3), 4),
        "texts": (
            lambda d: d["texts"][-1].update(prompt="a tampered prompt"),
            _first(good, lambda e: e.get("kind") == "artifact" and e["task"] == "implementation")[
                "seq"
            ],
        ),
    }
    target = ["--dir", str(tmp_path / "target")]
    run.ok(*target, "demo", "--feature", "feat_three")
    (tmp_path / "good.jsonl").write_text(json.dumps(good) + "\n", encoding="utf-8")
    run.ok(*target, "import", str(tmp_path / "good.jsonl"))  # edits of a stored instance too
    before = run.ok(*target, "verify", "--all").stdout
    prompt = run.ok(*target, "artifacts", iid, "implementation", "--prompt").stdout
    for what, (change, seq) in edits.items():
        dump = tmp_path / f"{what}.jsonl"
        dump.write_text(json.dumps(second) + "\n" + _edit(good, change) + "\n", encoding="utf-8")
        refused(run(*target, "import", str(dump)), 1, f"{dump}:2", iid, f"at event {seq} ")
    dump = tmp_path / "instance.jsonl"
    dump.write_text(_edit(good, lambda d: d["instance"].update(status="failed")), encoding="utf-8")
    refused(run(*target, "import", str(dump)), 1, iid, "differs from the state")
    assert run.ok(*target, "verify", "--all").stdout == before  # nothing was written
    assert run.ok(*target, "artifacts", iid, "implementation", "--prompt").stdout == prompt


def test_an_old_format_export_imports_with_a_warning(run: Runner, tmp_path: Path) -> None:
    iid = demo(run, "feat_one")
    state = run.json("show", iid)
    assert state["instance_id"] == iid
    new = json.loads(run.ok("export", iid).stdout)
    artifacts = [{k: t[k] for k in ("task", "record", "prompt", "response")} for t in new["texts"]]
    line = {"chatflow_export": 1, "instance": new["instance"], "artifacts": artifacts}
    dump = tmp_path / "old.jsonl"
    dump.write_text(json.dumps(line) + "\n", encoding="utf-8")
    result = run("--dir", str(tmp_path / "copy"), "import", str(dump))
    assert result.returncode == 0, result.stderr
    assert "export format 1" in result.stderr and "unverified" in result.stderr
    assert run.json("--dir", str(tmp_path / "copy"), "show", iid)["status"] == state["status"]
    # Over the store it came from, its rebuilt history is a conflict: nothing replaced.
    again = run("import", str(dump))
    assert again.returncode == 1 and f"1 conflict left untouched: {iid}" in again.stdout
    assert run.json("show", iid) == state
