"""Answer, rather than drop, a request nested too deep for the MCP SDK's parser.

The SDK reads each stdio line with pydantic's JSON parser, whose nesting limit is
about 200 levels; a deeper line fails to parse and is dropped without an answer, so
the agent that sent it waits until its own timeout. A relay between the real standard
input and the SDK passes every line through unchanged, except such a line: it becomes
a call of a tool named for the problem, which the server answers at once with a one-line
tool error (``Unknown tool: arguments nested deeper than ...``) under the request's id.

Standard library only; installed by ``serve_stdio`` before the SDK takes fd 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from typing import Any

SDK_DEPTH = 200  # objects and arrays inside one another the SDK's parser reads (measured)
PROBLEM = f"arguments nested deeper than {SDK_DEPTH} levels (send flatter data)"
SURROGATE = "text holding a lone surrogate escape such as \\ud800 (send valid Unicode)"
_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')


def install() -> None:
    """Put a relay between fd 0 and whoever reads it next (the SDK's stdio transport)."""
    source = os.dup(0)
    read_end, write_end = os.pipe()
    os.dup2(read_end, 0)
    os.close(read_end)
    threading.Thread(target=_relay, args=(source, write_end), daemon=True).start()


def _relay(source: int, sink: int) -> None:
    with (
        os.fdopen(source, "rb", buffering=1 << 16) as lines,
        os.fdopen(sink, "wb", buffering=0) as out,
        contextlib.suppress(OSError),
    ):
        for line in lines:
            out.write(guarded(line))


def guarded(line: bytes) -> bytes:
    """``line``, or, if it nests deeper than the SDK reads, a call it answers at once."""
    try:
        message = json.loads(line)
    except RecursionError:
        message = None
    except ValueError:
        return line  # (not JSON: the SDK's own error)
    problem = PROBLEM if message is None or _depth(message) > SDK_DEPTH else _text_problem(message)
    if problem is None:
        return line
    found = _ID.search(line)
    if found is None:
        return b"\n"  # a notification: nothing to answer
    answer = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": problem}}
    head = json.dumps(answer)[:-1].encode()
    return head + b', "id": ' + found.group(1) + b"}\n"


def _text_problem(message: Any) -> str | None:
    """A lone surrogate escape (``"\\ud800"``) is JSON Python reads and the SDK's parser
    does not (it drops the line): named like a too-deep line."""
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE
    return None


def _depth(value: Any) -> int:
    """How many objects and arrays nest in ``value`` (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if not isinstance(item, (dict, list)):
            continue
        deepest = max(deepest, level)
        if level > SDK_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children)
    return deepest
