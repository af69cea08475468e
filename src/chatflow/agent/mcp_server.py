"""``chatflow mcp``: ChatFlow as a Model Context Protocol server for coding agents.

Needs the ``mcp`` extra (the official SDK, 2.x: ``MCPServer``); nothing else in
ChatFlow imports this module. What each tool does is in ``operations`` (standard
library only); this module is the SDK glue: tool registration with descriptions and
hints, errors as ``isError`` results, the approval asked of a person by elicitation,
resources (subscriptions: ``subscriptions``), prompts, and the stdio and
streamable-HTTP transports.

Rules an agent cannot bend (tests: ``tests/mcp/``):

- No tool takes an approver. An approval is recorded only from a person's answer to
  an elicitation (the client shows a form to its user), or from ``chatflow approve``
  and the web page.
- A refused step is an answer listing every missing item, not an error; a mistake is
  a one-line ``isError`` result naming what to do. The server never stops over one.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from chatflow import __version__
from chatflow.agent import operations as ops
from chatflow.agent.subscriptions import Subscriptions
from chatflow.core.engine import WorkflowEngine
from chatflow.errors import ChatFlowError, InstanceNotFoundError, ValidationError

JSON = dict[str, Any]
T = TypeVar("T")

INSTRUCTIONS = """\
ChatFlow keeps this project's feature work as durable workflow instances: which phase
each feature is in, what that phase still needs, and a verifiable history. Call `status`
first to see where things are and what to do next. Work one phase at a time: do the work,
`record` your prompt and response, then `next`. `next` may refuse (a gate lists what is
missing) or wait for a person's approval; you never approve your own work."""

MAX_NAME = 200  # an approver's name or note typed into the elicitation form

InstanceId = Annotated[str, Field(description="Instance id (wfi_...), from `status` or `start`")]


class Approval(BaseModel):
    """The form a person fills in to approve or refuse (an MCP elicitation)."""

    approve: bool = Field(description="true: approve; false: refuse and send the work back")
    name: str = Field(description="Your name, recorded as who decided")
    note: str = Field(default="", description="Why (optional)")


def build_server(engine: WorkflowEngine, *, read_only: bool = False) -> MCPServer[Any]:
    """The server over ``engine``: reading tools always, steering tools unless
    ``read_only``; resources and the phase prompt."""
    server: MCPServer[Any] = MCPServer(
        "chatflow", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    tools = _Tools(engine)
    reading = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
    server.add_tool(tools.status, name="status", description=STATUS, annotations=reading)
    server.add_tool(tools.history, name="history", description=HISTORY, annotations=reading)
    server.add_tool(tools.verify, name="verify", description=VERIFY, annotations=reading)
    if not read_only:
        adding = ToolAnnotations(read_only_hint=False, destructive_hint=False)
        ending = ToolAnnotations(read_only_hint=False, destructive_hint=True)
        server.add_tool(tools.start, name="start", description=START, annotations=adding)
        server.add_tool(tools.record, name="record", description=RECORD, annotations=adding)
        server.add_tool(tools.next, name="next", description=NEXT, annotations=adding)
        server.add_tool(tools.fail, name="fail", description=FAIL, annotations=ending)
        server.add_tool(tools.retry, name="retry", description=RETRY, annotations=adding)
    _add_resources(server, engine)
    Subscriptions(engine, server).install()  # notified of changes other processes make
    _add_prompts(server, engine)
    server.middleware.append(_one_line_errors)
    return server


async def _one_line_errors(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext
) -> HandlerResult:
    """Make every tool error one line: the SDK's own (arguments that fail the input
    schema) span several lines and echo the rejected values."""
    result = await call_next(ctx)
    if ctx.method != "tools/call":
        return result
    if isinstance(result, CallToolResult) and result.is_error:
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        return _error(one_line(" ".join(texts)))
    if isinstance(result, dict) and result.get("isError") is True:
        texts = [str(block.get("text", "")) for block in result.get("content", [])]
        return _error(one_line(" ".join(texts)))
    return result


_ARGUMENTS_HEADER = re.compile(r"^Error executing tool (\S+): \d+ validation errors? for \S+$")
MAX_ERROR = 400


def one_line(text: str) -> str:
    """An error message on one line. The SDK's report of arguments that fail the input
    schema becomes ``bad arguments for `tool`: field: problem; ...``, without pydantic's
    echo of the rejected input (which may be huge) and its links."""
    lines = text.splitlines()
    header = _ARGUMENTS_HEADER.match(lines[0]) if lines else None
    if header is not None:
        problems, field = [], ""
        for line in lines[1:]:
            if not line.startswith(" "):
                field = line.strip()
            elif not line.strip().startswith("For further information"):
                problem = line.split("[type=", 1)[0].strip()
                problems.append(f"{field}: {problem}")
        text = f"bad arguments for `{header.group(1)}`: " + "; ".join(problems)
        text += " (see the tool's input schema)"
    joined = " ".join(text.split())
    return joined if len(joined) <= MAX_ERROR else joined[: MAX_ERROR - 1] + "…"


# -- tools ---------------------------------------------------------------------------

STATUS = """\
Where the work stands and what to do next. No arguments: every feature with its status \
counts, their totals, and the instance this working tree is bound to (`chatflow use`), if any. \
feature_id: that feature and its newest instances. instance_id: that instance's \
phase, status, open gate items (what the phase still needs), and next_action/what_to_do. \
Call it first, and whenever unsure."""
START = """\
Start a workflow instance for a feature. workflow: a registered workflow name or a \
.json/.yaml file path; feature_id: e.g. feat_user_auth; variables: initial values the \
phases read. Returns the instance (id, first phase, what to do)."""
RECORD = """\
Record the prompt you worked from and your response for the instance's current phase \
(stored with SHA-256 checksums). Do it before `next` when the phase needs its artifacts."""
NEXT = """\
Complete the current phase with optional data and move on. outcome: advanced, completed, \
refused (missing lists every item the phase's gate still needs: meet them, then call \
again), or awaits_approval (a person must approve: they are asked if your client can \
show a form, else they run `chatflow approve`). You cannot approve."""
HISTORY = """\
The instance's event log (who did what, when, with what data), oldest first. Pass the \
cursor from the previous answer to get only newer events; more=true means call again."""
FAIL = """\
Mark the instance's current phase failed, with what went wrong. The instance stops \
until `retry`. Use it when the phase's work cannot be done."""
RETRY = """Start the current (failed) phase over as a new visit."""
VERIFY = """\
Check the instance's hash-chained history, head and recorded artifacts for tampering or \
damage. ok=false names the first problem."""


class _Tools:
    """The tools, each a thin async wrapper: run the operation in a worker thread (the
    engine blocks on locks and disk), answer JSON, turn a ``ChatFlowError`` into an
    ``isError`` result."""

    def __init__(self, engine: WorkflowEngine) -> None:
        self.engine = engine

    async def status(
        self,
        feature_id: Annotated[str | None, Field(description="A feature id")] = None,
        instance_id: Annotated[str | None, Field(description="An instance id")] = None,
    ) -> CallToolResult:
        return await _answer(partial(ops.status, self.engine, feature_id, instance_id))

    async def start(
        self,
        workflow: Annotated[str, Field(description="Workflow name or schema file path")],
        feature_id: Annotated[str, Field(description="Feature the instance works on")],
        variables: dict[str, Any] | None = None,
        version: Annotated[str | None, Field(description="Workflow version")] = None,
    ) -> CallToolResult:
        start = partial(ops.start, self.engine, workflow, feature_id, variables, version)
        return await _answer(start)

    async def record(
        self,
        instance_id: InstanceId,
        prompt: str,
        response: str,
        usage: Annotated[
            dict[str, Any] | None,
            Field(
                description="What the phase's AI call spent: input_tokens, output_tokens, "
                "cost_usd, model, duration_s (any of them)"
            ),
        ] = None,
    ) -> CallToolResult:
        record = partial(ops.record, self.engine, instance_id, prompt, response, usage)
        return await _answer(record)

    async def next(
        self,
        instance_id: InstanceId,
        ctx: Context,
        data: Annotated[dict[str, Any] | None, Field(description="The phase's results")] = None,
    ) -> CallToolResult:
        try:
            answer = await _run(partial(ops.step, self.engine, instance_id, data))
            answer = await self._approval(ctx, instance_id, data, answer)
        except ChatFlowError as error:
            return _error(ops.phrased(error))
        return _result(answer)

    async def history(
        self,
        instance_id: InstanceId,
        cursor: Annotated[int, Field(description="0, or the cursor of the last answer")] = 0,
    ) -> CallToolResult:
        return await _answer(partial(ops.history, self.engine, instance_id, cursor))

    async def fail(
        self, instance_id: InstanceId, error: Annotated[str, Field(description="What went wrong")]
    ) -> CallToolResult:
        return await _answer(partial(ops.fail, self.engine, instance_id, error))

    async def retry(self, instance_id: InstanceId, note: str | None = None) -> CallToolResult:
        return await _answer(partial(ops.retry, self.engine, instance_id, note))

    async def verify(self, instance_id: InstanceId) -> CallToolResult:
        return await _answer(partial(ops.verify, self.engine, instance_id))

    # -- a person's approval ------------------------------------------------------------

    async def _approval(
        self, ctx: Context, instance_id: str, data: JSON | None, answer: JSON
    ) -> JSON:
        """Ask the person when the step waits on their approval; record their decision.

        Asked when the instance waits to enter a phase, or when approvals are all its
        gate misses (then the step is taken again once they approve).
        """
        outcome = answer["outcome"]
        missing = answer.get("missing", [])
        gate = outcome == "refused" and missing and all(m["kind"] == "approvals" for m in missing)
        if outcome != "awaits_approval" and not gate:
            return answer
        if not _can_elicit(ctx):
            answer["approval"] = {"asked": False, "waits_for": _waits_for(instance_id)}
            return answer
        state = answer["instance"]
        verb = "leave" if gate else "enter"
        message = (
            f"ChatFlow: feature {state['feature_id']}, instance {instance_id} asks your "
            f"approval to {verb} phase {state['current_phase']!r}. Approve it?"
        )
        try:
            reply = await ctx.elicit(message, Approval)
        except (MCPError, ValueError, RuntimeError) as error:
            answer["approval"] = {
                "asked": False,
                "problem": " ".join(str(error).split())[:200],
                "waits_for": _waits_for(instance_id),
            }
            return answer
        if reply.action != "accept":
            answer["approval"] = {
                "asked": True,
                "decision": reply.action + "d" if reply.action == "decline" else "cancelled",
                "waits_for": _waits_for(instance_id),
            }
            return answer
        form = reply.data
        name, note = form.name.strip(), form.note.strip() or None
        if not name or len(name) > MAX_NAME or (note is not None and len(note) > MAX_NAME):
            raise ValidationError(
                f"the approval form needs a name of 1 to {MAX_NAME} characters (and a note "
                f"of at most {MAX_NAME}); it still {_waits_for(instance_id)}"
            )
        if not form.approve:
            return await self._refused(instance_id, name, note, answer, gate=bool(gate))
        await _run(partial(ops.approve, self.engine, instance_id, name, note))
        if gate:  # the approval was all the gate missed: take the step now
            answer = await _run(partial(ops.step, self.engine, instance_id, data))
        else:
            state = await _run(partial(ops.require, self.engine, instance_id))
            answer = {"outcome": "approved", "instance": ops.instance_status(state)}
        answer["approval"] = {"asked": True, "decision": "approved", "by": name}
        return answer

    async def _refused(
        self, instance_id: str, name: str, note: str | None, answer: JSON, *, gate: bool
    ) -> JSON:
        """The person refused: a paused instance goes back (``reject``, as the CLI's);
        an exit gate just stays closed."""
        if not gate:
            state = await _run(
                partial(self.engine.reject, instance_id, rejected_by=name, note=note)
            )
            answer = {"outcome": "rejected", "instance": ops.instance_status(state)}
        answer["approval"] = {"asked": True, "decision": "rejected", "by": name, "note": note}
        return answer


def _can_elicit(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.elicitation is not None


def _waits_for(instance_id: str) -> str:
    return (
        f"waits for a person to run `chatflow approve {instance_id} --by NAME` "
        "(or `chatflow reject`), or to use the web page"
    )


async def _run(call: Callable[[], T]) -> T:
    """Run a blocking engine call in a worker thread (locks and fsync would stall the
    event loop, and with it every other client's requests)."""
    return await anyio.to_thread.run_sync(call)


async def _answer(call: Callable[[], JSON]) -> CallToolResult:
    try:
        return _result(await _run(call))
    except ChatFlowError as error:
        return _error(ops.phrased(error))


def _result(answer: JSON) -> CallToolResult:
    text = json.dumps(answer, ensure_ascii=False, indent=1)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=answer)


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


# -- resources and prompts ----------------------------------------------------------------


def _add_resources(server: MCPServer[Any], engine: WorkflowEngine) -> None:
    def document(call: Callable[[], JSON]) -> Callable[[], Awaitable[str]]:
        async def read() -> str:
            try:
                return json.dumps(await _run(call), ensure_ascii=False, indent=1)
            except InstanceNotFoundError as error:
                raise ResourceNotFoundError(ops.phrased(error)) from None
            except ChatFlowError as error:
                raise ResourceError(ops.phrased(error)) from None

        return read

    @server.resource(
        "chatflow://features", name="features", mime_type="application/json",
        description="Every feature with its status counts",
    )  # fmt: skip
    async def features() -> str:
        return await document(partial(ops.status, engine))()

    @server.resource(
        "chatflow://feature/{feature_id}", name="feature", mime_type="application/json",
        description="A feature's roll-up and newest instances",
    )  # fmt: skip
    async def feature(feature_id: str) -> str:
        return await document(partial(ops.feature, engine, feature_id))()

    @server.resource(
        "chatflow://instance/{instance_id}", name="instance", mime_type="application/json",
        description="An instance in full: variables, gates, timeline, verified artifacts",
    )  # fmt: skip
    async def instance(instance_id: str) -> str:
        return await document(partial(ops.instance_document, engine, instance_id))()

    @server.resource(
        "chatflow://instance/{instance_id}/artifacts/{phase}", name="artifacts",
        mime_type="application/json",
        description="A phase's latest recorded prompt and response, with checksums",
    )  # fmt: skip
    async def artifacts(instance_id: str, phase: str) -> str:
        return await document(partial(ops.artifacts_document, engine, instance_id, phase))()


def _add_prompts(server: MCPServer[Any], engine: WorkflowEngine) -> None:
    @server.prompt(
        name="phase_prompt",
        title="The current phase's prompt",
        description="What the workflow asks of you in an instance's current phase (or "
        "`phase`): the phase's template filled with the instance's variables.",
    )
    async def phase_prompt(instance_id: str, phase: str = "") -> str:
        try:
            found = await _run(partial(ops.phase_prompt, engine, instance_id, phase or None))
        except ChatFlowError as error:
            raise ValueError(ops.phrased(error)) from None
        return str(found["text"])


# -- transports ----------------------------------------------------------------------


def serve_stdio(engine: WorkflowEngine, *, read_only: bool = False) -> None:
    """Serve one client over standard input and output (what agents launch)."""
    from chatflow.agent import _stdin_guard  # noqa: PLC0415

    server = build_server(engine, read_only=read_only)
    _stdin_guard.install()  # a request too deep for the SDK is answered, not dropped
    server.run("stdio")


def serve_http(
    engine: WorkflowEngine, *, port: int = 0, read_only: bool = False, token: str | None = None
) -> None:
    """Serve streamable HTTP on loopback until interrupted; every request needs
    ``Authorization: Bearer <token>`` (the token is printed, as ``chatflow ui`` prints
    its URL's), and the ``Host`` must be loopback (DNS rebinding)."""
    import uvicorn  # noqa: PLC0415 - a dependency of the SDK's HTTP transport

    token = token or secrets.token_urlsafe(24)
    app = build_server(engine, read_only=read_only).streamable_http_app(host="127.0.0.1")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)  # connections queue from here on, so the printed URL works at once
    bound = listener.getsockname()[1]
    mode = "read-only" if read_only else "read-write"
    print(f"ChatFlow MCP server ({mode}) for {engine.state_store!r}")
    print(f"url: http://127.0.0.1:{bound}/mcp")
    print(f"token: {token}", flush=True)
    config = uvicorn.Config(_BearerToken(app, token), log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])


class _BearerToken:
    """ASGI middleware: refuse (401) any HTTP request without the server's token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            body = b"token required: Authorization: Bearer <the token chatflow mcp printed>"
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Any) -> bool:
        import hmac  # noqa: PLC0415

        for name, value in scope.get("headers", []):
            if name == b"authorization":
                return hmac.compare_digest(value, self.expected)
        return False
