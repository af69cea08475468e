"""``chatflow mcp`` over stdio, driven by the SDK's own client: every tool, a gate's
refusal read as data, the approval asked of a person, resources and prompts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _mcp_support import call, session, write_workflow
from anyio.from_thread import BlockingPortal, start_blocking_portal

from mcp import ClientSession, types  # isort: skip  (after the skip in _mcp_support)
from mcp.shared.exceptions import MCPError  # isort: skip

from chatflow.core.engine import WorkflowEngine
from chatflow.core.models import EventKind

MAX_TOOLS = 8
MAX_TOOLS_LIST = 12_000
APPROVER_WORDS = ("by", "approver", "approved_by", "name", "who", "actor")


def events(store: Path, instance_id: str) -> list[Any]:
    engine = WorkflowEngine(storage_dir=store)
    try:
        return engine.get_workflow_history(instance_id)
    finally:
        engine.close()


def test_tools_list_is_small_hinted_and_takes_no_approver(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with session(tmp_path / "store") as client:
            listing = await client.list_tools()
            await call(client, "start", workflow=str(write_workflow(tmp_path)), feature_id="f")
        wire = listing.model_dump_json(by_alias=True, exclude_none=True)
        assert len(listing.tools) <= MAX_TOOLS
        assert len(wire) <= MAX_TOOLS_LIST, len(wire)
        names = {tool.name for tool in listing.tools}
        assert names == {"status", "start", "record", "next", "history", "fail", "retry", "verify"}
        for tool in listing.tools:
            hints = tool.annotations
            assert hints is not None and hints.read_only_hint is not None, tool.name
            assert hints.destructive_hint is not None, tool.name
            assert len(tool.description or "") > 40, tool.name
            assert not set(tool.input_schema.get("properties", {})) & set(APPROVER_WORDS)
        reading = {t.name for t in listing.tools if t.annotations and t.annotations.read_only_hint}
        assert reading == {"status", "history", "verify"}
        async with session(tmp_path / "store", "--read-only") as client:
            only = await client.list_tools()
        assert {tool.name for tool in only.tools} == reading

    anyio.run(scenario)


def test_every_tool_and_a_refusal_read_as_data(tmp_path: Path) -> None:
    store, workflow = tmp_path / "store", write_workflow(tmp_path)

    async def scenario() -> None:
        async with session(store) as client:  # a client that cannot elicit
            started = await call(
                client, "start", workflow=str(workflow), feature_id="feat_a",
                variables={"user_request": "login"},
            )  # fmt: skip
            instance = started["instance"]
            iid = instance["instance_id"]
            assert instance["current_phase"] == "plan"
            assert instance["next_action"] == "meet_gate"
            refused = await call(client, "next", instance_id=iid, data={"done": True})
            assert refused["outcome"] == "refused"
            assert [m["text"] for m in refused["missing"]] == [
                "artifact 'prompt' of this visit",
                "artifact 'response' of this visit",
            ]
            assert all(m["to_do"] == "the `record` tool" for m in refused["missing"])
            recorded = await call(client, "record", instance_id=iid, prompt="P", response="R")
            assert recorded["instance"]["recorded"] is True
            waiting = await call(client, "next", instance_id=iid)
            assert waiting["outcome"] == "awaits_approval"
            assert waiting["approval"]["asked"] is False
            assert f"chatflow approve {iid} --by NAME" in waiting["approval"]["waits_for"]
            assert waiting["instance"]["next_action"] == "approve_entry"
            # still waiting: asking again changes nothing
            again = await call(client, "next", instance_id=iid)
            assert again["outcome"] == "awaits_approval"
            overview = await call(client, "status")
            assert overview["features"][0]["feature_id"] == "feat_a"
            feature = await call(client, "status", feature_id="feat_a")
            assert [row["instance_id"] for row in feature["feature"]["instances"]] == [iid]
            one = await call(client, "status", instance_id=iid)
            assert one["instance"]["status"] == "paused"
            first = await call(client, "history", instance_id=iid)
            kinds = [event["kind"] for event in first["events"]]
            assert kinds[0] == "started" and "approval_requested" in kinds
            newer = await call(client, "history", instance_id=iid, cursor=first["cursor"])
            assert newer == {"events": [], "cursor": first["cursor"], "more": False}
            assert (await call(client, "verify", instance_id=iid))["ok"] is True
            # fail and retry on a second instance
            other = await call(client, "start", workflow="gated", feature_id="feat_b")
            oid = other["instance"]["instance_id"]
            failed = await call(client, "fail", instance_id=oid, error="the model timed out")
            assert failed["instance"]["status"] == "failed"
            assert failed["instance"]["next_action"] == "retry"
            retried = await call(client, "retry", instance_id=oid, note="again")
            assert retried["instance"]["status"] == "running"
        stored = events(store, iid)
        assert not any(event.kind is EventKind.RESUMED for event in stored)  # nobody approved

    anyio.run(scenario)


class Person:
    """The approval tests' elicitation callback: gives this test's ``replies`` in turn and
    keeps the messages it saw (both set afresh by each test)."""

    def __init__(self) -> None:
        self.replies: list[types.ElicitResult] = []
        self.seen: list[str] = []

    def will_answer(self, *replies: types.ElicitResult) -> list[str]:
        self.replies, self.seen = list(replies), []
        return self.seen

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.seen.append(params.message)
        return self.replies.pop(0)


Asking = tuple[BlockingPortal, ClientSession, Path, Person]
"""A portal (an event loop that outlives one test), a session with a server whose client
asks ``Person``, the server's store, and the person."""


@pytest.fixture(scope="module")
def asking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asking]:
    """One server for the approval tests, not one each (a start costs a second or more):
    each test steps its own instance and reads only that instance's events."""
    store = tmp_path_factory.mktemp("asking") / "store"
    person = Person()
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(session(store, elicit=person)) as client,
    ):
        yield portal, client, store, person


def _accept(approve: bool, name: str = "Ann Person") -> types.ElicitResult:
    return types.ElicitResult(
        action="accept", content={"approve": approve, "name": name, "note": "looked at it"}
    )


async def _to_build(client: Any, workflow: Path) -> str:
    """An instance whose next step enters ``build`` (which needs approval)."""
    started = await call(client, "start", workflow=str(workflow), feature_id="feat_ok")
    iid = str(started["instance"]["instance_id"])
    await call(client, "record", instance_id=iid, prompt="P", response="R")
    return iid


def test_approval_accepted_records_the_person(asking: Asking, tmp_path: Path) -> None:
    portal, client, store, person = asking
    workflow = write_workflow(tmp_path)
    seen = person.will_answer(_accept(True), _accept(True, "Bo Reviewer"))

    async def scenario() -> str:
        iid = await _to_build(client, workflow)
        entered = await call(client, "next", instance_id=iid)
        assert entered["outcome"] == "approved"
        assert entered["approval"] == {
            "asked": True,
            "decision": "approved",
            "by": "Ann Person",
        }
        assert entered["instance"]["current_phase"] == "build"
        assert entered["instance"]["status"] == "running"
        reviewed = await call(client, "next", instance_id=iid)  # build -> review
        assert reviewed["outcome"] == "advanced"
        assert reviewed["instance"]["open_gates"][0]["kind"] == "approvals"
        done = await call(client, "next", instance_id=iid)  # the exit gate asks a person
        assert done["outcome"] == "completed"
        assert done["approval"]["by"] == "Bo Reviewer"
        return iid

    iid = portal.call(scenario)
    assert len(seen) == 2 and "enter phase 'build'" in seen[0] and "leave phase 'review'" in seen[1]
    stored = events(store, iid)
    resumed = [e for e in stored if e.kind is EventKind.RESUMED]
    assert [(e.actor, e.data["approved_by"]) for e in resumed] == [("Ann Person", "Ann Person")]
    approved = [e for e in stored if e.kind is EventKind.APPROVED]
    assert [e.data["by"] for e in approved] == ["Bo Reviewer"]


@pytest.mark.parametrize("action", ["decline", "cancel"])
def test_approval_declined_leaves_it_waiting(asking: Asking, tmp_path: Path, action: str) -> None:
    portal, client, store, person = asking
    workflow = write_workflow(tmp_path)
    seen = person.will_answer(types.ElicitResult(action=action))

    async def scenario() -> str:
        iid = await _to_build(client, workflow)
        answer = await call(client, "next", instance_id=iid)
        assert answer["outcome"] == "awaits_approval"
        assert answer["approval"]["asked"] is True
        assert answer["approval"]["decision"] == (
            "declined" if action == "decline" else "cancelled"
        )
        assert "chatflow approve" in answer["approval"]["waits_for"]
        return iid

    iid = portal.call(scenario)
    assert len(seen) == 1
    kinds = [e.kind for e in events(store, iid)]
    assert EventKind.RESUMED not in kinds and EventKind.REJECTED not in kinds


def test_approval_refused_by_the_person_sends_the_work_back(asking: Asking, tmp_path: Path) -> None:
    portal, client, _, person = asking
    workflow = write_workflow(tmp_path)
    person.will_answer(_accept(False, "Cy"))

    async def scenario() -> None:
        iid = await _to_build(client, workflow)
        answer = await call(client, "next", instance_id=iid)
        assert answer["outcome"] == "rejected"
        assert answer["instance"]["current_phase"] == "plan"
        assert answer["approval"]["by"] == "Cy"

    portal.call(scenario)


def test_resources_and_the_phase_prompt(tmp_path: Path) -> None:
    store, workflow = tmp_path / "store", write_workflow(tmp_path)

    async def scenario() -> None:
        async with session(store) as client:
            started = await call(
                client, "start", workflow=str(workflow), feature_id="feat_r",
                variables={"user_request": "sign-up", "who": {"name": "Dee"}},
            )  # fmt: skip
            iid = started["instance"]["instance_id"]
            await call(client, "record", instance_id=iid, prompt="the prompt", response="ok")
        async with session(store, "--read-only") as reader:

            async def read(uri: str) -> Any:
                result = await reader.read_resource(uri)
                return json.loads(result.contents[0].text)  # type: ignore[union-attr]

            assert (await read("chatflow://features"))["features"][0]["feature_id"] == "feat_r"
            assert (await read("chatflow://feature/feat_r"))["instances"][0]["instance_id"] == iid
            shown = await read(f"chatflow://instance/{iid}")
            assert shown["timeline"][0]["artifacts"]["verified"] is True
            texts = await read(f"chatflow://instance/{iid}/artifacts/plan")
            assert (texts["prompt"], texts["response"]) == ("the prompt", "ok")
            with pytest.raises(MCPError, match="not found"):
                await reader.read_resource("chatflow://instance/wfi_missing")
            prompt = await reader.get_prompt("phase_prompt", {"instance_id": iid})
            content = prompt.messages[0].content
            assert isinstance(content, types.TextContent)
            assert content.text == "Plan sign-up for Dee; {{ unknown }}"
            templates = await reader.list_resource_templates()
            assert len(templates.resource_templates) == 3

    anyio.run(scenario)
