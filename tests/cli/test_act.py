"""Steering commands run as the real ``chatflow`` executable: each prints the new state
and refuses with one line and exit 1 (3 for unknown ids, 2 for malformed arguments)."""

from __future__ import annotations

import json
from pathlib import Path

from ._cli import Runner, refused


def test_start_next_approve_session(run: Runner, tmp_path: Path) -> None:
    iid = run.start("--var", "count=3", "--var", "name=alice", "--meta", "actor=bob")
    view = run.json("show", iid)
    assert view["variables"] == {"count": 3, "name": "alice"}
    assert view["meta"] == {"actor": "bob"}
    assert view["status"] == "created" and view["current_phase"] == "draft"

    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps({"summary": "done"}), encoding="utf-8")
    dry = run.json("next", iid, "--data-file", str(data_file), "--dry-run")
    assert dry["current_phase"] == "review"
    assert run.json("show", iid)["current_phase"] == "draft"  # dry run wrote nothing

    paused = run.json("next", iid, "--data", "ok=true")
    assert paused["status"] == "paused"
    assert paused["pause"] == {
        "kind": "approval",
        "reason": "phase 'review' requires approval",
        "risk": None,
    }
    shown = run.ok("show", iid).stdout
    assert "approval: phase 'review' requires approval" in shown

    refused(run("next", iid), 1, "is paused")
    refused(run("resume", iid), 1, "chatflow approve")
    approved = run.json("approve", iid, "--by", "alice", "--note", "lgtm")
    assert approved["status"] == "running"
    assert approved["timeline"][1]["approvals"] == [
        {
            "decision": "approved",
            "by": "alice",
            "at": approved["timeline"][1]["approvals"][0]["at"],
            "note": "lgtm",
        }
    ]
    refused(run("approve", iid, "--by", "alice"), 1, "not waiting for approval")
    done = run.json("next", iid)
    assert done["current_phase"] == "ship"
    assert run.json("next", iid)["status"] == "completed"
    refused(run("next", iid), 1, "completed")


def test_reject_sends_work_back(run: Runner) -> None:
    iid = run.start()
    run.ok("next", iid)
    rejected = run.json("reject", iid, "--by", "carol", "--note", "redo")
    assert rejected["current_phase"] == "draft" and rejected["status"] == "running"
    assert rejected["timeline"][1]["approvals"][0]["decision"] == "rejected"
    refused(run("reject", iid, "--by", "carol"), 1, "cannot reject")


def test_pause_resume_fail_retry_jump_cancel(run: Runner) -> None:
    iid = run.start()
    assert run.json("pause", iid, "--reason", "lunch")["pause"]["reason"] == "lunch"
    refused(run("pause", iid), 1, "is paused")
    assert run.json("resume", iid)["status"] == "created"
    failed = run.json("fail", iid, "--error", "model timed out")
    assert failed["status"] == "failed"
    retried = run.json("retry", iid)
    assert retried["retries"] == {"draft": 1} and retried["timeline"][-1]["visit"] == 2
    jumped = run.json("jump", iid, "ship", "--reason", "hotfix")
    assert jumped["current_phase"] == "ship"
    refused(run("jump", iid, "nowhere"), 1, "no phase 'nowhere'")
    assert run.json("cancel", iid, "--reason", "obsolete")["status"] == "cancelled"
    refused(run("retry", iid), 1, "cancelled")
    kinds = [event["kind"] for event in run.json("history", iid)]
    for kind in ("paused", "resumed", "failed", "retried", "jumped", "cancelled"):
        assert kind in kinds


def test_fork_starts_a_linked_instance(run: Runner) -> None:
    iid = run.start()
    run.ok("next", iid)
    child = run.json("fork", iid, "--at", "0")
    assert child["instance_id"] != iid
    assert child["parent"] == {"instance_id": iid, "history_index": 0}
    refused(run("fork", iid, "--at", "9"), 1, "out of range")
    assert run("fork", iid, "--at", "x").returncode == 2
    # The library counts a negative index from the end; typed, it is a slip: refused.
    before = run.json("list")
    entries = len(run.json("show", iid)["timeline"])
    for at in ("-1", f"-{entries}"):
        refused(run("fork", iid, "--at", at), 2, f"chatflow show {iid}", f"(0..{entries - 1})")
    assert run.json("list") == before  # nothing forked


def test_a_fork_shows_and_verifies_the_artifacts_it_inherits(run: Runner) -> None:
    parent = run.ok("demo", "--feature", "feat_fork").stdout.split()[1]
    child = run.json("fork", parent, "--at", "2")["instance_id"]
    checks = [entry["artifacts"] for entry in run.json("show", child)["timeline"]]
    assert [(c["task"], c["verified"]) for c in checks if c] == [
        ("requirement_analysis", True),
        ("design", True),
    ]
    assert run.ok("artifacts", child, "design", "--prompt").stdout.startswith("# design")
    assert "ok: 1 instance verified" in run.ok("verify", child).stdout


def test_start_by_name_and_refusals(run: Runner, tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "flow.json").write_text(
        json.dumps({"name": "flow", "phases": [{"name": "a"}]}), encoding="utf-8"
    )
    view = run.json("--schema-dir", str(schemas), "start", "flow", "--feature", "feat_x")
    assert view["workflow"] == "flow" and view["workflow_version"] == 1
    refused(run("start", "nope", "--feature", "f"), 3, "Schema nope not found")
    refused(run("start", "missing.json", "--feature", "f"), 3, "not found")
    refused(run("start", str(schemas / "flow.json"), "--feature", "a/b"), 2, "feature id")
    refused(run("start", str(schemas / "flow.json"), "--feature", "f", "--var", "novalue"), 2)
    refused(run("next", "wfi_nope"), 3, "not found")
    refused(run("next", view["instance_id"], "--data-file", "missing.json"), 3, "not found")
    assert run("start", "flow").returncode == 2  # --feature is required


def test_steering_a_missing_store_creates_nothing(run: Runner, tmp_path: Path) -> None:
    refused(run("--dir", str(tmp_path / "typo"), "cancel", "wfi_abc"), 3, "does not exist")
    assert not (tmp_path / "typo").exists()


def test_upgrade_moves_instances_to_another_version(run: Runner, tmp_path: Path) -> None:
    from chatflow.core.engine import WorkflowEngine

    schemas = tmp_path / "schemas"
    schemas.mkdir()
    for version, phases in ((1, ["design", "code"]), (2, ["design", "code", "test"])):
        schema = {"name": "flow", "version": version, "phases": [{"name": p} for p in phases]}
        (schemas / f"v{version}.json").write_text(json.dumps(schema), encoding="utf-8")
    base = ("--schema-dir", str(schemas))
    iid = run.json(*base, "start", "flow", "--version", "1", "--feature", "f")["instance_id"]
    refused(run(*base, "upgrade", "--to", "2"), 2, "exactly one")
    refused(run(*base, "upgrade", iid, "--to", "2", "--map", "oops"), 2, "OLD=NEW")
    if not hasattr(WorkflowEngine, "upgrade_instance"):  # workflow upgrades: issue 9
        refused(run(*base, "upgrade", iid, "--to", "2"), 1, "cannot upgrade")
        return
    dry = run(*base, "upgrade", "--all", "--to", "2", "--dry-run")
    assert dry.returncode == 0 and f"{iid}  would upgrade from version 1" in dry.stdout
    assert run.ok(*base, "upgrade", iid, "--to", "2").stdout.startswith(f"upgraded {iid}")
    assert run.json("show", iid)["workflow_version"] == 2
    refused(run(*base, "upgrade", iid, "--to", "2"), 1, "already")


GATED_FLOW = {
    "name": "gated_flow",
    "phases": [
        {"name": "design", "exit_requires": {"artifacts": ["prompt", "response"]}},
        {"name": "ship"},
    ],
}


def test_record_artifacts_then_pass_the_gate(run: Runner, tmp_path: Path) -> None:
    """A gated phase can be driven from the shell alone: the dry run says what is
    missing (exit 1), ``record`` stores the texts, then the step goes through."""
    workflow = tmp_path / "gated.json"
    workflow.write_text(json.dumps(GATED_FLOW), encoding="utf-8")
    iid = run.json("start", str(workflow), "--feature", "feat_g")["instance_id"]
    dry = run("next", iid, "--dry-run", "--json")
    assert dry.returncode == 1
    assert json.loads(dry.stdout)["current_phase"] == "design"
    assert "would be refused" in dry.stderr and "artifact 'prompt'" in dry.stderr
    refused(run("next", iid), 1, "cannot leave phase 'design'", "artifact 'response'")
    refused(run("jump", iid, "ship"), 1, "cannot leave phase 'design'")

    (tmp_path / "prompt.md").write_text("# Design\nplease ü", encoding="utf-8")
    refused(run("record", iid, "--prompt-file", "nope.md", "--response", "r"), 3, "nope.md")
    recorded = run(
        "record",
        iid,
        "--prompt-file",
        "prompt.md",
        "--response-file",
        "-",
        "--json",
        stdin="the answer\n",
    )
    assert recorded.returncode == 0, recorded.stderr
    assert run.ok("artifacts", iid, "design", "--prompt").stdout.startswith("# Design\nplease ü")
    assert run.ok("artifacts", iid, "design", "--response").stdout == "the answer\n"

    assert run("next", iid, "--dry-run").returncode == 0
    assert run.json("next", iid)["current_phase"] == "ship"
    refused(run("record", iid, "--phase", "nowhere", "--prompt", "p", "--response", "r"), 1)


def test_jump_force_leaves_an_unmet_gate_and_says_so(run: Runner, tmp_path: Path) -> None:
    workflow = tmp_path / "gated.json"
    workflow.write_text(json.dumps(GATED_FLOW), encoding="utf-8")
    iid = run.json("start", str(workflow), "--feature", "feat_g")["instance_id"]
    forced = run.json("jump", iid, "ship", "--force", "--reason", "hotfix")
    assert forced["current_phase"] == "ship"
    jumped = [e for e in run.json("history", iid) if e["kind"] == "jumped"]
    assert jumped and jumped[-1]["data"]["forced"] is True


def test_record_reads_a_dash_from_stdin(run: Runner) -> None:
    """``--prompt -`` and ``--response -`` read standard input (as ``--*-file -`` do);
    only one text can come from it."""
    iid = run.start()
    recorded = run("record", iid, "--prompt", "the prompt", "--response", "-", stdin="the answer\n")
    assert recorded.returncode == 0, recorded.stderr
    assert run.json("artifacts", iid, "draft")["response"] == "the answer\n"
    run("record", iid, "--prompt", "-", "--response", "r2", stdin="asked\n")
    assert run.json("artifacts", iid, "draft")["prompt"] == "asked\n"
    both = run("record", iid, "--prompt", "-", "--response-file", "-", stdin="x")
    refused(both, 2, "only one of the prompt and the response")
    refused(run("record", iid, "--prompt", "-", "--response", "-", stdin="x"), 2, "stdin")


def test_deeply_nested_json_is_one_line_not_a_traceback(run: Runner, tmp_path: Path) -> None:
    """``--data``, ``--data-file`` and ``import`` parse JSON a user gave: nesting past
    the parser's recursion is a clear error (exit 1), and nothing is written."""
    iid = run.start()
    deep = "[" * 5000 + "]" * 5000
    refused(run("next", iid, "--data", f"k={deep}"), 1, "--data k is nested deeper than 200")
    data_file = tmp_path / "deep.json"
    data_file.write_text('{"k": ' + deep + "}", encoding="utf-8")
    refused(run("next", iid, "--data-file", str(data_file)), 1, "deep.json is nested deeper")
    export = tmp_path / "deep.jsonl"
    export.write_text('{"chatflow_export": 1, "instance": ' + deep + "}\n", encoding="utf-8")
    refused(run("import", str(export)), 1, "deep.jsonl:1 is nested deeper")
    assert run.json("show", iid)["current_phase"] == "draft"
    assert [row["instance_id"] for row in run.json("list")] == [iid]


def test_start_refuses_a_yaml_alias_bomb(run: Runner, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_bytes((Path(__file__).parents[1] / "fixtures" / "alias_bomb.yaml").read_bytes())
    refused(run("start", str(bomb), "--feature", "feat_b"), 1, "bomb.yaml", "larger than")
    assert run("list").returncode in (0, 3)  # no instance, whether or not a store exists
    assert "wfi_" not in run("list").stdout


def test_errors_name_commands_and_flags_not_python_calls(run: Runner, tmp_path: Path) -> None:
    """What to do next is said in the command's words: ``chatflow approve ID --by NAME``,
    ``chatflow record ID``, ``--map``, ``--to``; never ``resume()`` or ``phase_map``."""
    gated = {
        "name": "terms",
        "phases": [
            {"name": "design", "exit_requires": {"artifacts": ["response"], "approvals": 1}},
            {"name": "review", "requires_approval": True},
            {"name": "ship"},
        ],
    }
    workflow = tmp_path / "terms.json"
    workflow.write_text(json.dumps(gated), encoding="utf-8")
    iid = run.json("start", str(workflow), "--feature", "feat_t")["instance_id"]
    errors = []

    def error(*args: str, code: int = 1) -> str:
        result = run(*args)
        refused(result, code)
        errors.append(result.stderr)
        return result.stderr

    blocked = error("next", iid)
    assert f"chatflow record {iid}" in blocked and f"chatflow approve {iid} --by NAME" in blocked
    dry = run("next", iid, "--dry-run")
    assert f"(chatflow record {iid})" in dry.stderr
    assert f"(chatflow record {iid})" in run("show", iid).stdout
    run.ok("record", iid, "--prompt", "p", "--response", "r")
    run.ok("approve", iid, "--by", "ann")
    assert run.json("next", iid)["status"] == "paused"  # waits for approval into review
    waiting = error("pause", iid)
    assert f"first chatflow approve {iid} --by NAME or chatflow reject {iid} --by NAME" in waiting
    run.ok("approve", iid, "--by", "ann")
    run.ok("fail", iid, "--error", "broke")
    assert f"first chatflow retry {iid} or chatflow jump {iid} PHASE" in error("next", iid)

    renamed = {**gated, "version": 2, "phases": [{"name": "draft"}, *gated["phases"][1:]]}
    v2 = tmp_path / "terms2.json"
    v2.write_text(json.dumps(renamed), encoding="utf-8")
    run.ok("workflows", "register", str(v2))
    other = run.json("start", str(workflow), "--feature", "feat_t")["instance_id"]
    assert "with --map OLD=NEW" in error("upgrade", other, "--to", "2")
    bulk = run("upgrade", "--feature", "feat_t", "--to", "2")
    assert bulk.returncode == 1 and "with --map OLD=NEW" in bulk.stdout
    assert "--to must be" in error("upgrade", other, "--to", "x")
    for text in [*errors, dry.stderr, bulk.stdout]:
        assert "()" not in text and "phase_map" not in text and "approved_by" not in text


def test_argument_errors_name_flags_and_ids_not_python_parameters(run: Runner) -> None:
    """A library message that starts with a parameter's name (``budget.tokens:``,
    ``extend:``, ``keep_last``, ``invalid feature_id``) reaches the terminal in the
    command's words: ``--budget tokens:``, ``--extend:``, ``--keep-last``, "feature id"."""
    iid = run.start()
    cases = [
        (("start", "review_flow.json", "--feature", "f", "--budget", "foo=1"), "--budget: "),
        (
            ("start", "review_flow.json", "--feature", "f", "--budget", "tokens=x"),
            "--budget tokens: must be a non-negative number",
        ),
        (("start", "review_flow.json", "--feature", "a/b"), "invalid feature id 'a/b'"),
        (("approve", iid, "--by", "ann", "--extend", "x=1"), "--extend: unknown budget key"),
        (("compact", iid, "--keep-last", "-1"), "--keep-last must be a whole number"),
        (("show", "a.b"), "invalid instance id 'a.b'"),
    ]
    for args, words in cases:
        result = run(*args)
        usage = "invalid" in words or words.startswith(("--budget", "--extend"))
        refused(result, 2 if usage else 1, words)  # a bad id or flag value: a usage error
        message = result.stderr.split("error: ", 1)[1]
        assert not message.startswith(("budget", "extend", "keep_last")), message
        for python in ("_id ", "budget.", "keep_last", " int", "None"):
            assert python not in message, (args, message)
