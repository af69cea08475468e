"""delete, export, import, doctor and migrate, run as the real ``chatflow`` executable."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path

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


def test_export_import_round_trip_is_verified_and_idempotent(run: Runner, tmp_path: Path) -> None:
    first = demo(run, "feat_one")
    demo(run, "feat_two")
    dump = tmp_path / "dump.jsonl"
    assert run.json("export", "--all", "-o", str(dump)) == {"exported": 2, "file": str(dump)}
    lines = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    assert [line["instance"]["feature_id"] for line in lines] == ["feat_one", "feat_two"]
    assert len(lines[0]["artifacts"]) == 3 and lines[0]["chatflow_export"] == 1
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
    line["artifacts"][0]["prompt"] = "changed"
    tampered.write_text(json.dumps(line) + "\n", encoding="utf-8")
    refused(run("--dir", str(tmp_path / "t"), "import", str(tampered)), 1, "checksum")
    (tmp_path / "junk.jsonl").write_text("{}\n", encoding="utf-8")
    refused(run("import", str(tmp_path / "junk.jsonl")), 1, "junk.jsonl:1")
    refused(run("import", str(tmp_path / "missing.jsonl")), 3, "not found")


def test_doctor_finds_and_fixes_file_store_damage(run: Runner, tmp_path: Path) -> None:
    ok = demo(run, "feat_a")
    unindexed = demo(run, "feat_a")
    unreadable = demo(run, "feat_b")
    assert run.json("doctor") == {"problems": [], "fixed": []}
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
            "unreadable_instance",
            "unreadable_instance",  # the upper-case copy names another instance inside
        ]
    )
    clash.unlink()
    fixed = run("doctor", "--fix", "--json")
    assert fixed.returncode == 1  # the unreadable file needs a human
    report = json.loads(fixed.stdout)
    assert sorted(p["kind"] for p in report["fixed"]) == [
        "dangling_index_entry",
        "stale_temp",
        "unindexed_instance",
    ]
    assert [p["kind"] for p in report["problems"]] == ["unreadable_instance"]
    assert not temp.exists()
    assert index.read_text(encoding="utf-8").split() == [ok, unindexed]
    text = run("doctor").stdout
    assert "unreadable_instance" in text and unreadable in text


def test_migrate_reports_and_reruns(run: Runner, tmp_path: Path) -> None:
    demo(run)
    target = f"sqlite:///{tmp_path / 'state.db'}"
    report = run.json("migrate", "--from", ".chatflow", "--to", target)
    assert report["instances_copied"] == 1 and report["conflicts"] == []
    assert "already present" in run.ok("migrate", "--from", ".chatflow", "--to", target).stdout
    refused(run("migrate", "--from", "nowhere", "--to", target), 3, "does not exist")
    assert not (tmp_path / "nowhere").exists()
    assert run.json("--dir", target, "doctor") == {"problems": [], "fixed": []}


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
