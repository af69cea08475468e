"""`chatflow verify` and `chatflow compact`, run in process (``cli_runner``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from cli_runner import run_in_process


def chatflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHATFLOW_DIR"}
    return run_in_process(args, cwd=cwd, env=env)


def test_verify_passes_then_names_the_tampered_artifact(tmp_path: Path) -> None:
    iid = chatflow("demo", cwd=tmp_path).stdout.split()[1]
    clean = chatflow("verify", "--all", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert "ok: 1 instance verified" in clean.stdout
    digest = [line for line in clean.stdout.splitlines() if line.startswith("digest ")]
    assert digest and digest[0].split()[1] == "feat_user_auth" and len(digest[0].split()[2]) == 64
    assert chatflow("verify", iid, cwd=tmp_path).returncode == 0
    assert chatflow("verify", "--feature", "feat_user_auth", cwd=tmp_path).stdout == clean.stdout
    tasks = tmp_path / ".chatflow" / "instances" / iid / "tasks"
    text = tasks / "design.v1.prompt.md"
    text.write_text(text.read_text(encoding="utf-8") + " edited", encoding="utf-8")
    broken = chatflow("verify", "--all", cwd=tmp_path)
    assert broken.returncode == 1
    assert iid in broken.stderr and "design" in broken.stderr and "prompt" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_verify_reports_an_edited_event_by_its_seq(tmp_path: Path) -> None:
    iid = chatflow("demo", cwd=tmp_path).stdout.split()[1]
    log = tmp_path / ".chatflow" / "instances" / iid / "events.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    event = json.loads(lines[2])
    event["edited"] = True
    lines[2] = json.dumps(event) + "\n"
    log.write_text("".join(lines), encoding="utf-8")
    broken = chatflow("verify", iid, cwd=tmp_path)
    assert broken.returncode == 1 and "at event 3" in broken.stderr, broken.stderr
    assert str(log) in broken.stderr


def test_compact_keeps_verify_and_status(tmp_path: Path) -> None:
    iid = chatflow("demo", cwd=tmp_path).stdout.split()[1]
    before = chatflow("status", iid, "--json", cwd=tmp_path).stdout
    archive = tmp_path / "archive.jsonl"
    done = chatflow("compact", iid, "--keep-last", "2", "--archive", str(archive), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(archive.read_text(encoding="utf-8").splitlines()) > 2
    assert chatflow("status", iid, "--json", cwd=tmp_path).stdout == before
    assert chatflow("verify", iid, cwd=tmp_path).returncode == 0


def test_verify_mistakes_get_one_line(tmp_path: Path) -> None:
    chatflow("demo", cwd=tmp_path)
    for args in (("verify", "wfi_missing"), ("verify", "--feature", "nope")):
        result = chatflow(*args, cwd=tmp_path)
        assert result.returncode == 3 and "Traceback" not in result.stderr  # not found
        assert len(result.stderr.strip().splitlines()) == 1


def test_verify_names_an_edited_response_in_a_sqlite_store(tmp_path: Path) -> None:
    on_sqlite = ("--dir", "sqlite:///state.db")
    iid = chatflow(*on_sqlite, "demo", cwd=tmp_path).stdout.split()[1]
    assert chatflow(*on_sqlite, "verify", iid, cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "state.db") as conn:  # same length: only the hash differs
        edited = conn.execute(
            "UPDATE task_texts SET response = CAST(upper(CAST(response AS TEXT)) AS BLOB) "
            "WHERE instance_id = ? AND task = 'design'",
            (iid,),
        ).rowcount
    assert edited == 1
    broken = chatflow(*on_sqlite, "verify", "--all", cwd=tmp_path)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert iid in broken.stderr and "'design'" in broken.stderr and "response" in broken.stderr
