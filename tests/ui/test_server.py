"""``chatflow ui`` over real HTTP with the standard library client: access control,
read-only refusal, escaping, traversal, and the JSON shapes of ``/api/``."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from xml.etree import ElementTree

import pytest

from chatflow import InvalidTransitionError, WorkflowEngine
from chatflow.ui import UIServer
from chatflow.ui.graph import workflow_svg
from cli_runner import run_in_process

from ._support import GATED, HOSTILE, populate, serving_with_actions


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Talks to one server as the browser page does (cookie + CSRF header) or as a
    script does (Bearer token), or with nothing at all."""

    def __init__(self, app: UIServer) -> None:
        self.app = app

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        auth: str = "page",
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {"Host": f"127.0.0.1:{self.app.port}"}
        if auth in ("page", "cookie"):
            sent["Cookie"] = f"{self.app.cookie_name}={self.app.token}"
        if auth == "page":
            sent["X-ChatFlow-CSRF"] = self.app.csrf
        if auth == "bearer":
            sent["Authorization"] = f"Bearer {self.app.token}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        connection = http.client.HTTPConnection("127.0.0.1", self.app.port, timeout=10)
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path: str, **options: Any) -> Any:
        reply = self.request(path, **options)
        assert reply.status == 200, (path, reply.status, reply.body[:300])
        return reply.json()

    def act(self, iid: str, action: str, body: Any, **options: Any) -> Reply:
        headers = {"Origin": self.app.origin, **options.pop("headers", {})}
        return self.request(
            f"/api/instances/{iid}/{action}", method="POST", body=body, headers=headers, **options
        )


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[WorkflowEngine, dict[str, str]]:
    engine = WorkflowEngine(storage_dir=tmp_path_factory.mktemp("ui") / "store", durable=False)
    return engine, populate(engine)


@pytest.fixture(scope="module")
def client(world: tuple[WorkflowEngine, dict[str, str]]) -> Iterator[Client]:
    app = UIServer(world[0]).start()
    yield Client(app)
    app.shutdown()


@pytest.fixture
def acting(tmp_path: Path) -> Iterator[tuple[Client, WorkflowEngine, dict[str, str]]]:
    with serving_with_actions(tmp_path) as (app, engine, ids):
        yield Client(app), engine, ids


# -- access ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/api/features", "/static/app.js", "/api/instances/wfi_x", "/nothing"]
)
def test_every_request_without_the_token_gets_401(client: Client, path: str) -> None:
    assert client.request(path, auth="none").status == 401
    wrong = {"Authorization": "Bearer not-the-token", "Cookie": f"{client.app.cookie_name}=x"}
    assert client.request(path, auth="none", headers=wrong).status == 401


def test_first_load_trades_the_url_token_for_a_strict_http_only_cookie(client: Client) -> None:
    reply = client.request(f"/?token={client.app.token}", auth="none")
    assert reply.status == 303
    assert reply.headers["Location"] == "/"
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith(f"{client.app.cookie_name}={client.app.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.request("/?token=wrong", auth="none").status == 401
    assert client.request(f"/api/features?token={client.app.token}", auth="none").status == 401


def test_page_carries_csrf_token_and_strict_headers(client: Client) -> None:
    reply = client.request("/", auth="cookie")
    assert reply.status == 200
    page = reply.body.decode()
    assert f'content="{client.app.csrf}"' in page and client.app.token not in page
    assert 'content="off"' in page  # actions meta: read-only
    csp = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the network
    for asset in ("/static/app.js", "/static/app.css"):
        text = client.request(asset, auth="cookie").body.decode()
        assert "http://" not in text and "https://" not in text and "@import" not in text


def test_api_needs_the_header_not_just_the_cookie(client: Client) -> None:
    assert client.request("/api/features", auth="cookie").status == 401
    bad = {"X-ChatFlow-CSRF": "0" * 64}
    assert client.request("/api/features", auth="cookie", headers=bad).status == 401
    assert client.request("/api/features", auth="page").status == 200
    assert client.request("/api/features", auth="bearer").status == 200


def test_foreign_host_header_is_refused(client: Client) -> None:
    """A DNS-rebinding page reaches the port under its own name: refuse it."""
    reply = client.request("/api/features", auth="bearer", headers={"Host": "evil.example:80"})
    assert reply.status == 403


# -- paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/../static/app.js",
        "/static/./app.js",
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/static/%2e%2e%2fserver.py",
        "/static/%252e%252e/server.py",
        "/static/..%5cserver.py",
        "/static/app.js%00",
        "/static/server.py",
        "/static/index.html",
        "/static/",
        "//etc/passwd",
        "/api/instances/..%2f..%2fx",
        "/api/instances/../features",
        "/api/instances/a.b",
        "/api/features/%2e%2e",
        "/api/nothing",
        "/index.html",
        "/api/instances/wfi_x/graph.svg/x",
    ],
)
def test_unknown_paths_and_traversal_get_404(client: Client, path: str) -> None:
    assert client.request(path, auth="page").status == 404


def test_unknown_ids_get_404_with_a_json_reason(
    client: Client, world: tuple[WorkflowEngine, dict[str, str]]
) -> None:
    for path in ("/api/instances/wfi_0000000000000000", "/api/features/feat_none"):
        reply = client.request(path)
        assert reply.status == 404
        assert "not found" in reply.json()["error"] or "no feature" in reply.json()["error"]
    iid = world[1]["running"]
    assert client.request(f"/api/instances/{iid}/nothing").status == 404


# -- JSON shapes -----------------------------------------------------------------------


def cli_json(engine: WorkflowEngine, *args: str) -> Any:
    """What ``chatflow <args> --json`` prints for the engine's store (in process)."""
    store = Path(getattr(engine.state_store, "base_dir", ""))
    result = run_in_process(
        ["--dir", str(store), *args, "--json"], cwd=store.parent, env=os.environ
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in keys}


def test_features_are_the_cli_roll_ups_newest_activity_first(
    client: Client, world: tuple[WorkflowEngine, dict[str, str]]
) -> None:
    engine, _ = world
    features = client.get("/api/features")
    printed = {rollup["feature_id"]: rollup for rollup in cli_json(engine, "features")}
    assert {f["feature_id"] for f in features} == set(printed)
    for rollup in features:
        assert rollup["phases"] == {}  # an instance load per feature: on the feature's page
        assert without(rollup, "updated_at", "phases") == without(
            printed[rollup["feature_id"]], "phases"
        )
    stamps = [f["updated_at"] for f in features]
    assert stamps == sorted(stamps, reverse=True)
    one = client.get("/api/features/feat_login")
    assert without(one, "updated_at", "usage") == printed["feat_login"]
    # the feature's spend, as `chatflow status --feature F --json` tells it
    assert one["usage"] == cli_json(engine, "status", "--feature", "feat_login")["usage"]
    assert one["total_instances"] == 2 and one["phases"]["design"] == "running"


def test_instance_rows_are_the_cli_list_rows(
    client: Client, world: tuple[WorkflowEngine, dict[str, str]]
) -> None:
    engine, ids = world
    rows = client.get("/api/instances?feature=feat_login")
    assert [row["instance_id"] for row in rows] == [ids["running"], ids["completed"]]
    printed = cli_json(engine, "list", "--feature", "feat_login")
    assert rows == printed
    assert rows[1]["workflow"] == "chatcoder_feature" and rows[1]["workflow_version"] == 1
    assert rows[1]["progress"] == 1.0
    failed = client.get("/api/instances?status=failed")
    assert [row["instance_id"] for row in failed] == [ids["failed"]]
    newest = client.get("/api/instances?feature=feat_login&limit=1")
    assert [row["instance_id"] for row in newest] == [ids["running"]]
    for bad in ("0", "-1", "x", "%C2%B2"):
        assert client.request(f"/api/instances?limit={bad}").status == 400


def test_one_instance_history_and_artifacts_are_the_cli_shapes(
    client: Client, world: tuple[WorkflowEngine, dict[str, str]]
) -> None:
    engine, ids = world
    iid = ids["completed"]
    state = engine.get_workflow_instance_status(iid)
    assert state is not None
    shown = client.get(f"/api/instances/{iid}")
    assert without(shown, "workflow_title") == cli_json(engine, "show", iid)
    assert shown["workflow_title"] == "Feature development with AI review loop"
    assert client.get(f"/api/instances/{iid}/history") == cli_json(engine, "history", iid)
    stamp = client.get(f"/api/instances/{iid}/stamp")
    assert stamp == {
        "version": state.version,
        "updated_at": shown["updated_at"],
        "status": "completed",
    }
    artifacts = client.get(f"/api/instances/{iid}/artifacts")
    assert [a["task"] for a in artifacts] == [entry.task for entry in state.history]
    second_code = artifacts[4]
    assert (second_code["phase"], second_code["visit"], second_code["task"]) == (
        "code",
        2,
        "code--2",
    )
    added = (
        "visit",
        "history_index",
        "verified",
        "problem",
        "prompt_verified",
        "response_verified",
    )
    assert without(second_code, *added) == cli_json(engine, "artifacts", iid, "code--2")
    assert second_code["prompt"] == "# code\nWrite the code."
    assert second_code["verified"] and second_code["prompt_verified"]
    verify = client.get(f"/api/instances/{iid}/verify")
    assert verify["available"] is hasattr(engine, "verify")
    assert verify["ok"] is (True if hasattr(engine, "verify") else None)


def test_a_tampered_artifact_shows_as_not_verified(tmp_path: Path) -> None:
    engine = WorkflowEngine(storage_dir=tmp_path, durable=False)
    iid = engine.start_workflow_instance({"name": "w", "phases": [{"name": "a"}]}, {}, "f")
    engine.record_task_artifacts(iid, "the prompt", "the response")
    (tmp_path / "instances" / iid / "tasks" / "a.ai_response.md").write_text("edited")
    app = UIServer(engine).start()
    try:
        client = Client(app)
        [artifact] = client.get(f"/api/instances/{iid}/artifacts")
        [row] = client.get(f"/api/instances/{iid}")["timeline"]
    finally:
        app.shutdown()
    assert artifact["prompt_verified"] is True and artifact["verified"] is False
    assert artifact["response_verified"] is False and artifact["response"] == "edited"
    assert "response" in artifact["problem"]
    assert row["artifacts"]["verified"] is False


def test_graph_is_an_escaped_self_contained_svg(
    client: Client, world: tuple[WorkflowEngine, dict[str, str]]
) -> None:
    _, ids = world
    reply = client.request(f"/api/instances/{ids['awaiting_approval']}/graph.svg")
    assert reply.status == 200 and reply.headers["Content-Type"] == "image/svg+xml"
    svg = reply.body.decode()
    assert svg.startswith("<svg") and "<script" not in svg and "href" not in svg
    assert 'class="n waiting" data-phase="code"' in svg
    assert 'class="n done" data-phase="analyze"' in svg
    hostile = {
        "name": "x",
        "phases": [{"name": "a", "title": HOSTILE}, {"name": "b", "requires_approval": True}],
    }
    drawn = workflow_svg(hostile)
    assert "<script>" not in drawn and "<img" not in drawn
    assert "&lt;script&gt;" in drawn and 'class="n gate"' in drawn


def test_graph_with_control_characters_in_texts_is_well_formed(tmp_path: Path) -> None:
    """XML forbids most control characters: one in a title made the image unreadable."""
    schema = {
        "name": "ctl",
        "title": "Workflow\x02",
        "phases": [
            {
                "name": "a",
                "title": "Bell\x07 \x1b[31mred\x00",
                "transitions": [{"to": "b", "label": "go\x01on"}, {"to": "$fail"}],
            },
            {"name": "b", "title": "del\x7f c1\x85"},
        ],
    }
    engine = WorkflowEngine(storage_dir=tmp_path, durable=False)
    iid = engine.start_workflow_instance(schema, {}, "feat_ctl")
    app = UIServer(engine).start()
    try:
        reply = Client(app).request(f"/api/instances/{iid}/graph.svg")
    finally:
        app.shutdown()
    assert reply.status == 200
    texts = "".join(ElementTree.fromstring(reply.body).itertext())
    assert "Bell\u2407 \u241b[31mred\u2400" in texts and "go\u2401on" in texts
    assert "del\u2421 c1\ufffd" in texts
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", reply.body.decode())


def test_graph_layout_puts_loops_right_and_skips_left() -> None:
    svg = workflow_svg(GATED)
    assert svg.count('class="n') == 3 and "end" in svg
    looping = {
        "name": "loop",
        "phases": [
            {"name": "a", "max_visits": 2, "fallback": "c"},
            {
                "name": "b",
                "transitions": [
                    {"to": "a", "when": {"path": "trigger.x", "op": "exists"}},
                    {"to": "c"},
                ],
            },
            {"name": "c"},
        ],
    }
    svg = workflow_svg(looping)
    assert svg.count('class="e"') + svg.count('class="e fallback"') >= 5


def test_hostile_text_is_returned_as_json_data_only(
    client: Client, world: tuple[WorkflowEngine, dict[str, str]]
) -> None:
    _, ids = world
    artifacts = client.get(f"/api/instances/{ids['running']}/artifacts")
    assert artifacts[-1]["prompt"] == HOSTILE
    reply = client.request(f"/api/instances/{ids['running']}/artifacts")
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


# -- actions ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_read_only_refuses_every_state_change(
    client: Client, world: tuple[WorkflowEngine, dict[str, str]], method: str
) -> None:
    engine, ids = world
    iid = ids["awaiting_approval"]
    before = engine.get_workflow_instance_status(iid)
    for path in (f"/api/instances/{iid}/approve", f"/api/instances/{iid}", "/api/features"):
        reply = client.request(
            path, method=method, body={"actor": "eve"}, headers={"Origin": client.app.origin}
        )
        assert reply.status == 403, (method, path)
    assert client.request("/api/nothing", method=method, body={}).status == 404
    after = engine.get_workflow_instance_status(iid)
    assert before is not None and after is not None and after.version == before.version


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_read_only_refuses_every_action_from_a_token_holder(
    client: Client, world: tuple[WorkflowEngine, dict[str, str]], method: str
) -> None:
    """The Bearer token reads; it does not lift read-only (with or without ``Origin``)."""
    engine, ids = world
    iid = ids["awaiting_approval"]
    before = engine.get_workflow_instance_status(iid)
    for action in ("approve", "reject", "pause", "resume", "retry", "cancel"):
        for headers in ({}, {"Origin": client.app.origin}):
            reply = client.request(
                f"/api/instances/{iid}/{action}",
                method=method,
                auth="bearer",
                body={"actor": "script"},
                headers=headers,
            )
            assert reply.status == 403, (method, action, headers)
            assert "read-only" in reply.json()["error"]
    after = engine.get_workflow_instance_status(iid)
    assert before is not None and after is not None and after.version == before.version


def test_approve_with_actions_on_records_who_approved(
    acting: tuple[Client, WorkflowEngine, dict[str, str]],
) -> None:
    client, engine, ids = acting
    iid = ids["gated"]
    reply = client.act(iid, "approve", {"actor": "dev_carol", "note": "looks right"})
    assert reply.status == 200, reply.body
    assert reply.json()["status"] == "running"
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.status.value == "running"
    resumed = engine.get_workflow_history(iid)[-1]
    assert resumed.kind.value == "resumed"
    assert resumed.data["approved_by"] == "dev_carol" and resumed.data["note"] == "looks right"


def test_errors_name_what_to_do_in_the_commands_words_as_the_cli_does(
    acting: tuple[Client, WorkflowEngine, dict[str, str]],
) -> None:
    """One mapping (``chatflow.errors.USER_TERMS``) for the command and the page."""
    from chatflow.cli.context import phrased

    client, engine, ids = acting
    iid = ids["gated"]  # waiting for approval: pausing it again is refused with a remedy
    reply = client.act(iid, "pause", {"actor": "dev_dan"})
    assert reply.status == 409, reply.body
    error = reply.json()["error"]
    assert error.endswith(
        f"first chatflow approve {iid} --by NAME or chatflow reject {iid} --by NAME"
    )
    assert "()" not in error and "approved_by" not in error
    with pytest.raises(InvalidTransitionError) as caught:
        engine.pause(iid, actor="dev_dan")
    assert error == phrased(caught.value)  # word for word what `chatflow pause` prints


def test_every_action_changes_the_store(
    acting: tuple[Client, WorkflowEngine, dict[str, str]],
) -> None:
    client, engine, ids = acting
    steps = [
        (ids["awaiting_approval"], "reject", "paused", "running"),
        (ids["running"], "pause", "running", "paused"),
        (ids["running"], "resume", "paused", "running"),
        (ids["failed"], "retry", "failed", "running"),
        (ids["running"], "cancel", "running", "cancelled"),
    ]
    for iid, action, before, after in steps:
        state = engine.get_workflow_instance_status(iid)
        assert state is not None and state.status.value == before
        reply = client.act(iid, action, {"actor": "dev_dan", "note": f"{action} it"})
        assert reply.status == 200, (action, reply.body)
        state = engine.get_workflow_instance_status(iid)
        assert state is not None and state.status.value == after, action
        assert engine.get_workflow_history(iid)[-1].actor == "dev_dan"


def test_actions_need_same_origin_csrf_actor_and_a_valid_step(
    acting: tuple[Client, WorkflowEngine, dict[str, str]],
) -> None:
    client, engine, ids = acting
    iid = ids["gated"]
    body = {"actor": "mallory"}
    cross = client.act(iid, "approve", body, headers={"Origin": "http://evil.example"})
    assert cross.status == 403
    port = client.app.port
    for name in ("127.0.0.1", "localhost"):  # same host, another port: another origin
        for other in (f"http://{name}:{port + 1}", f"http://{name}", f"https://{name}:{port}"):
            for auth in ("page", "bearer"):
                reply = client.act(iid, "approve", body, auth=auth, headers={"Origin": other})
                assert reply.status == 403, (other, auth)
                assert reply.json()["error"] == "cross-origin request refused"
    no_origin = client.request(f"/api/instances/{iid}/approve", method="POST", body=body)
    assert no_origin.status == 403
    assert client.act(iid, "approve", body, auth="cookie").status == 401  # no CSRF header
    assert client.act(iid, "approve", {}).status == 400  # who acts?
    assert client.act(iid, "approve", {"actor": "x" * 500}).status == 400
    assert client.act(iid, "approve", {"actor": 7}).status == 400
    assert client.act(iid, "approve", b"[1, 2]").status == 400
    assert client.act(iid, "approve", b"{not json").status == 400
    plain = client.act(iid, "approve", b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status == 415
    assert client.act(ids["completed"], "approve", body).status == 409  # nothing to approve
    assert client.act("wfi_0000000000000000", "approve", body).status == 404
    assert client.act(iid, "explode", body).status == 404
    state = engine.get_workflow_instance_status(iid)
    assert state is not None and state.status.value == "paused"
    # A script holding the token needs no Origin.
    script = client.request(
        f"/api/instances/{iid}/approve", method="POST", body={"actor": "ci"}, auth="bearer"
    )
    assert script.status == 200


def test_a_deeply_nested_body_gets_a_400_answer(
    acting: tuple[Client, WorkflowEngine, dict[str, str]],
) -> None:
    """JSON nested past the parser's recursion (within the size limit) is refused with
    a reason; it used to end the request's thread, leaving the page without an answer."""
    client, _, ids = acting
    deep = b'{"actor": "ann", "note": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    reply = client.act(ids["gated"], "approve", deep)
    assert reply.status == 400
    assert "nested deeper than" in reply.json()["error"]


# -- the command -----------------------------------------------------------------------


def _chatflow_ui(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHATFLOW_DIR"}
    return subprocess.Popen(
        [sys.executable, "-m", "chatflow", "ui", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_command_prints_a_tokened_url_and_serves_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    engine = WorkflowEngine(storage_dir=store, durable=False)
    iid = engine.start_workflow_instance({"name": "w", "phases": [{"name": "a"}]}, {}, "feat_cli")
    process = _chatflow_ui("--dir", str(store), cwd=tmp_path)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert "read-only" in lines[0]
        url = re.fullmatch(r"open: http://127\.0\.0\.1:(\d+)/\?token=(\S+)\n", lines[1])
        assert url is not None, lines
        port, token = int(url[1]), url[2]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(
            "GET", f"/api/instances/{iid}", headers={"Authorization": f"Bearer {token}"}
        )
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["feature_id"] == "feat_cli"
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_command_warns_off_loopback_and_rejects_bad_ports(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "chatflow", "ui", "--dir", str(tmp_path / "typo")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 3 and not (tmp_path / "typo").exists()  # reads only
    store = tmp_path / "store"
    WorkflowEngine(storage_dir=store).start_workflow_instance(GATED, {}, "f")
    process = _chatflow_ui("--store", str(store), "--host", "0.0.0.0", cwd=tmp_path)
    try:
        assert process.stderr is not None
        warning = process.stderr.readline()
        assert "warning" in warning and "0.0.0.0" in warning
    finally:
        process.terminate()
        process.wait(timeout=10)
    bad = subprocess.run(
        [sys.executable, "-m", "chatflow", "ui", "--port", "70000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "--port" in bad.stderr and "Traceback" not in bad.stderr


def test_verify_and_gate_approval_follow_the_engine_where_it_has_them(tmp_path: Path) -> None:
    """``verify`` (hash-chained log) and ``approve`` (exit gates) come with other
    releases; the page uses them when the engine has them."""

    approvals: list[tuple[str, str, str | None]] = []

    class Later(WorkflowEngine):
        def verify(self, instance_id: str) -> object:
            return None if instance_id == clean else "event 3 does not chain to event 2"

        def approve(self, instance_id: str, *, by: str, note: str | None = None) -> Any:
            approvals.append((instance_id, by, note))
            return self.get_workflow_instance_status(instance_id)

    engine = Later(storage_dir=tmp_path, durable=False)
    clean = engine.start_workflow_instance(GATED, {}, "f")
    broken = engine.start_workflow_instance(GATED, {}, "f")
    engine.trigger_next_step(broken, {})  # now paused: waiting for approval of sign_off
    app = UIServer(engine, allow_actions=True).start()
    try:
        client = Client(app)
        assert client.get(f"/api/instances/{clean}/verify") == {
            "available": True,
            "ok": True,
            "problem": None,
        }
        bad = client.get(f"/api/instances/{broken}/verify")
        assert bad["ok"] is False and bad["problem"] == "event 3 does not chain to event 2"
        assert client.act(clean, "approve", {"actor": "ann"}).status == 200
        assert approvals == [(clean, "ann", None)]  # running: a gate approval
        assert client.act(broken, "approve", {"actor": "bob"}).status == 200
        assert approvals == [(clean, "ann", None)]  # paused: resumed instead
        state = engine.get_workflow_instance_status(broken)
        assert state is not None and state.status.value == "running"
    finally:
        app.shutdown()
