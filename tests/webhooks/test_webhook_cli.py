"""``chatflow webhook``: bad input refused with one line and the documented exit code,
writing nothing; secrets shown once; ``run --once`` delivering, or exiting 1 naming the
stuck event; the whole cycle on every store given by ``--dir``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli._cli import Runner, refused
from store_harness import Harness

from ._receiver import receiving


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    runner = Runner(tmp_path)
    runner.start()  # the store exists, with one instance
    return runner


def _nothing_kept(run: Runner) -> None:
    assert run.json("webhook", "list") == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("file:///etc/passwd", "must be http:// or https://, not file:"),
        ("ftp://example.com/in", "must be http:// or https://, not ftp:"),
        ("javascript:alert(1)", "must be http:// or https://, not javascript:"),
        ("example.com/in", "must be http:// or https://, not no scheme"),
        ("http:///in", "names no host"),
        ("https://", "names no host"),
        ("http://example.com:99999/", "has a bad port"),
        ("http://example.com:0/", "has a bad port"),
        ("http://exa mple.com/", "is not a URL"),
        ("http://example.com/\x07", "is not a URL"),
        ("http://[::1/in", "is not a URL: Invalid IPv6 URL"),
        ("//example.com/in", "not no scheme"),
    ],
)
def test_a_url_that_is_not_http_is_refused_and_nothing_kept(
    run: Runner, url: str, fragment: str
) -> None:
    refused(run("webhook", "add", url), 1, fragment)
    _nothing_kept(run)


def test_a_password_in_a_url_is_never_printed(run: Runner) -> None:
    refused(run("webhook", "add", "ftp://ana:hunter22@example.com/"), 1, "ana:***@")
    added = run.ok("webhook", "add", "https://ana:hunter22@example.com/in")
    listed = run.ok("webhook", "list")
    assert "hunter22" not in added.stdout + listed.stdout
    assert "https://ana:***@example.com/in" in listed.stdout


@pytest.mark.parametrize(
    ("events", "code", "fragment"),
    [
        (
            ["aproved"],
            1,
            "unknown event 'aproved': no event type matches (did you mean 'approved'?)",
        ),
        (["phse_*"], 1, "unknown pattern 'phse_*'"),
        (["approved", "Approved"], 1, "event filter 'Approved' is not an event name or pattern"),
        (["approved,completd"], 1, "did you mean 'completed'?"),
        ([""], 1, "event filter '' is not an event name or pattern"),
        (["approved,"], 1, "event filter '' is not an event name or pattern"),
    ],
)
def test_unknown_event_names_are_refused_with_a_suggestion(
    run: Runner, events: list[str], code: int, fragment: str
) -> None:
    refused(run("webhook", "add", "https://example.com/in", "--events", *events), code, fragment)
    _nothing_kept(run)


def test_other_bad_input(run: Runner, tmp_path: Path) -> None:
    url = "https://example.com/in"
    refused(run("webhook", "add", url, "--feature", "../x"), 2, "invalid feature id")
    refused(run("webhook", "add", url, "--secret", "short"), 1, "8-512 printable characters")
    refused(run("webhook", "add", url, "--secret", "has a space"), 1, "without spaces")
    _nothing_kept(run)
    refused(run("webhook", "remove", "wh_00000000"), 3, "no webhook 'wh_00000000'; there are none")
    refused(run("webhook", "remove", "../../x"), 3, "no webhook '../../x'")
    _bad_usage(run("webhook", "run", "--once", "--backoff", "0"), "argument --backoff: expected")
    _bad_usage(run("webhook", "run", "--once", "--retries", "many"), "argument --retries")
    refused(run("webhook", "run", "--backoff", "5", "--max-backoff", "1"), 2, "--max-backoff")
    _bad_usage(run("webhook", "lst"), "invalid choice: 'lst'")
    _bad_usage(run("webhook"), "the following arguments are required: ACTION")
    missing = str(tmp_path / "nowhere")
    refused(run("--dir", missing, "webhook", "add", url), 3)
    assert not Path(missing).exists()  # no store made where a typo points


def _bad_usage(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    """argparse's refusal: exit 2, usage, then one error line naming ``fragment``."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr.strip().splitlines()[-1]


def test_the_secret_is_printed_once_and_never_listed(run: Runner) -> None:
    added = run.json("webhook", "add", "https://example.com/in", "--events", "phase_*")
    secret = added["secret"]
    assert len(secret) >= 32 and added["events"] == ["phase_*"]
    listed = run.ok("webhook", "list").stdout + run.ok("webhook", "list", "--json").stdout
    assert secret not in listed and added["id"] in listed
    text = run.ok("webhook", "add", "https://example.com/two").stdout
    assert "secret " in text and "shown only now" in text
    given = run.ok("webhook", "add", "https://example.com/three", "--secret", "s3cret-given")
    assert "s3cret-given" not in given.stdout
    assert "secret" not in json.dumps(run.json("webhook", "list"))
    removed = run.ok("webhook", "remove", added["id"]).stdout
    assert removed.startswith(f"removed webhook {added['id']}")
    assert [h["id"] for h in run.json("webhook", "list")].count(added["id"]) == 0


def test_run_once_exits_1_naming_the_stuck_event(run: Runner) -> None:
    with receiving() as receiver:
        dead = receiver.url
    run.ok("webhook", "add", dead, "--from-start")
    result = run("webhook", "run", "--once", "--retries", "1")
    refused(result, 1, "is stuck: event #1 of wfi_", "no answer from")
    (listed,) = run.json("webhook", "list")
    assert listed["failing"]["seq"] == 1 and listed["delivered"] == 0


def test_the_whole_cycle_on_every_store(harness: Harness, tmp_path: Path) -> None:
    if not harness.shared_across_processes:
        pytest.skip("a memory store lives in one process")
    run = Runner(tmp_path)
    where = harness.target()
    run.ok("--dir", where, "start", _workflow(tmp_path), "--feature", "feat_a")
    with receiving() as receiver:
        hook = run.json("--dir", where, "webhook", "add", receiver.url, "--from-start")
        iid = run.json("--dir", where, "list")[0]["instance_id"]
        run.ok("--dir", where, "next", iid)
        sent = run.ok("--dir", where, "webhook", "run", "--once").stdout.splitlines()
        assert [line.split()[2] for line in sent] == ["created", "phase_completed"]
        got = receiver.wait_for(2)
        assert all(d.signed_by(hook["secret"]) for d in got)
        (listed,) = run.json("--dir", where, "webhook", "list")
        assert listed["delivered"] == 2 and listed["failing"] is None
        assert run.ok("--dir", where, "webhook", "run", "--once").stdout == ""
        run.ok("--dir", where, "webhook", "remove", hook["id"])
        assert run.json("--dir", where, "webhook", "list") == []


def _workflow(folder: Path) -> str:
    path = folder / "flow.json"
    path.write_text(json.dumps({"name": "flow", "phases": [{"name": "a"}, {"name": "b"}]}))
    return str(path)


def test_migrate_carries_hooks_and_reset_starts_them_on_the_new_feed(
    run: Runner, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'moved.db'}"
    with receiving() as receiver:
        hook = run.json("webhook", "add", receiver.url, "--events", "created", "--from-start")
        run.ok("webhook", "run", "--once")
        run.ok("migrate", "--from", str(tmp_path / ".chatflow"), "--to", target)
        (moved,) = run.json("--dir", target, "webhook", "list")
        assert (moved["id"], moved["delivered"]) == (hook["id"], 1)
        # Its cursor was the old store's: said so, with the way on, not guessed.
        stuck = run("--dir", target, "webhook", "run", "--once", "--retries", "1")
        refused(stuck, 1, "belongs to another store's feed", f"webhook reset {hook['id']}")
        reset = run.ok("--dir", target, "webhook", "reset", hook["id"]).stdout
        assert "goes on from now" in reset and "it was stuck on feed" in reset
        run.ok("--dir", target, "start", str(tmp_path / "review_flow.json"), "--feature", "f")
        run.ok("--dir", target, "webhook", "run", "--once")
        got = receiver.wait_for(2)
        assert [d.data["feature_id"] for d in got] == ["feat_a", "f"]
        assert all(d.signed_by(hook["secret"]) for d in got)
        refused(run("webhook", "reset", "wh_12345678"), 3, "no webhook 'wh_12345678'")


def test_completion_offers_actions_hook_ids_event_types_and_options(run: Runner) -> None:
    hook = run.json("webhook", "add", "https://example.com/in")
    assert run.ok("__complete", "webhook", "r").stdout.split() == ["remove", "reset", "run"]
    assert run.ok("__complete", "webhook", "remove", "").stdout.split() == [hook["id"]]
    events = run.ok("__complete", "webhook", "add", "https://x", "--events", "phase_").stdout
    assert events.split() == ["phase_entered", "phase_completed"]
    assert "--max-backoff" in run.ok("__complete", "webhook", "run", "--m").stdout


def test_plain_http_beyond_this_machine_is_kept_with_a_warning(run: Runner) -> None:
    clear = run("webhook", "add", "http://ci.example.com/in")
    assert clear.returncode == 0
    assert clear.stderr.startswith("chatflow: warning: http://ci.example.com/in is http://")
    assert "prefer https://" in clear.stderr
    for quiet in ("https://ci.example.com/in", "http://127.0.0.1:8080/in", "http://localhost/"):
        assert run("webhook", "add", quiet).stderr == ""


def test_a_comma_and_space_separated_filter_is_read_as_written(run: Runner) -> None:
    added = run.json("webhook", "add", "https://example.com/in", "--events", "approved, completed")
    assert added["events"] == ["approved", "completed"]
