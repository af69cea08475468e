"""What every command shares: the store it works on, its output, exit codes, arguments.

Commands that only read open the store with ``reader()``, which refuses a store that
does not exist instead of creating an empty one where a mistyped ``--dir`` points.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatflow._validation import parse_json
from chatflow.cli.output import Output
from chatflow.errors import (
    USER_TERMS,
    ChatFlowError,
    InvalidIdError,
    StoreURLError,
    ValidationError,
    phrase,
)

if TYPE_CHECKING:  # argparse's class is not subscriptable at run time
    from chatflow.core.engine import WorkflowEngine

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    from chatflow.domain.models import WorkflowInstanceState

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


class UsageError(ChatFlowError):
    """The command line itself is wrong (a malformed ``k=v``, options that clash): exit 2."""


class NotFoundError(ChatFlowError, LookupError):
    """A feature, file or phase the user named does not exist: exit 3."""


TERMS = USER_TERMS
"""The library's terms (``chatflow.errors.TERMS``) as the command names them: an error
seen from the command names commands and flags, not Python calls (the web page uses the
same ``chatflow.errors.USER_TERMS``)."""


def phrased(error: ChatFlowError) -> str:
    """The error's message in the command's terms."""
    return error.phrased(TERMS)


def requirement(item: dict[str, Any], instance_id: str) -> str:
    """An open exit-gate item (``{"kind", "text", "remedy"?}``) with the command that
    meets it, if one does."""
    remedy = item.get("remedy")
    if remedy not in TERMS:
        return str(item["text"])
    return f"{item['text']} ({phrase('{' + remedy + '}', TERMS, {'instance_id': instance_id})})"


def exit_code(error: ChatFlowError) -> int:
    """The documented exit code of an error: every lookup that found nothing is 3; a
    malformed id typed on the command line (``../x``) is a usage error, like a bad option."""
    if isinstance(error, (UsageError, InvalidIdError, StoreURLError)):
        return EXIT_USAGE
    return EXIT_NOT_FOUND if isinstance(error, LookupError) else EXIT_FAILED


class Context:
    """The parsed arguments, the output and (once asked for) the engine of one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Output(
            json_mode=bool(getattr(args, "json", False)),
            colour=False if args.no_color or getattr(args, "no_color_sub", False) else None,
        )
        self._engine: WorkflowEngine | None = None

    @property
    def target(self) -> str | Path:
        """The store: ``--dir``, else ``$CHATFLOW_DIR``, else ``./.chatflow``."""
        from chatflow.core.engine import default_store_target  # noqa: PLC0415
        from chatflow.storage._open import check_target  # noqa: PLC0415

        target = self.args.dir if self.args.dir is not None else default_store_target()
        check_target(target)  # a typo is a usage error before anything is opened
        return target

    def reader(self) -> WorkflowEngine:
        """An engine on the existing store; ``StoreNotFoundError`` (exit 3) if there is none."""
        from chatflow.storage._open import require_store  # noqa: PLC0415

        require_store(self.target)
        return self.writer()

    def writer(self) -> WorkflowEngine:
        """An engine on the store, which is created if it does not exist yet."""
        if self._engine is None:
            from chatflow.core.engine import WorkflowEngine  # noqa: PLC0415

            for folder in self.args.schema_dir:
                if not folder.is_dir():
                    raise NotFoundError(f"schema folder {str(folder)!r} does not exist")
            self._engine = WorkflowEngine(
                storage_dir=self.target,
                durable=not self.args.no_fsync,
                schema_dirs=self.args.schema_dir,
            )
        return self._engine

    def instance(self, instance_id: str) -> WorkflowInstanceState:
        """The instance, or ``InstanceNotFoundError`` (exit 3)."""
        from chatflow.storage.base import not_found  # noqa: PLC0415

        state = self.reader().get_workflow_instance_status(instance_id)
        if state is None:
            raise not_found(instance_id)
        return state

    def actor(self, meta: dict[str, Any] | None = None) -> str:
        """Who runs the command: ``--by NAME``, else the one this call's ``meta`` names
        (``--meta actor=`` or ``user_id=``), else the user logged in to the machine."""
        from chatflow.domain.lifecycle import actor_of  # noqa: PLC0415 - steering commands only

        by: str | None = getattr(self.args, "by", None)
        if by is not None and (not by.strip() or not by.isprintable()):
            raise UsageError(f"--by must name someone (printable text), not {by!r}")
        return by or actor_of(meta or {}) or os_user()

    def require_feature(self, engine: WorkflowEngine, feature_id: str) -> None:
        """Refuse a feature with no instances: a typo must not look like an empty feature."""
        if not engine.list_feature_instances(feature_id):
            raise NotFoundError(f"no feature {feature_id!r} (it has no instances)")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def os_user() -> str:
    """The name of the user logged in (``getpass.getuser``), or ``uid <n>`` where the
    system has none to give (a container's unnamed uid)."""
    import getpass  # noqa: PLC0415 - steering commands only
    import os  # noqa: PLC0415

    try:
        name = getpass.getuser().strip()
    except (OSError, KeyError, ImportError):  # 3.13: OSError; before: KeyError from pwd
        name = ""
    if name and name.isprintable():
        return name
    getuid = getattr(os, "getuid", None)
    return f"uid {getuid()}" if getuid is not None else "unknown user"


def add_by(parser: argparse.ArgumentParser) -> None:
    """``--by NAME``: who acts, recorded in the event log (default: the OS user)."""
    parser.add_argument(
        "--by", metavar="NAME", help="who acts, recorded in the history (default: your user name)"
    )


def key_values(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """``k=v`` arguments as a dict; ``v`` is read as JSON when it parses, else as text.

    So ``--var count=3`` gives the number 3, ``--var name=alice`` the string "alice",
    ``--var 'tags=["a"]'`` a list and ``--var x=NaN`` the string "NaN".
    """
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, not {pair!r}")
        try:
            values[key] = parse_json(raw, f"{option} {key}", parse_constant=_not_json)
        except ValidationError:
            raise  # JSON, but nested too deeply
        except ValueError:
            values[key] = raw
    return values


def _not_json(constant: str) -> None:
    """``NaN`` and ``Infinity`` are Python's JSON extensions, not JSON: keep them as text."""
    raise ValueError(constant)


def text_file(path: str) -> str:
    """The UTF-8 text of ``path`` (``-``: standard input): missing file exit 3."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"file {path!r} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"cannot read {path!r}: {error}") from None


def json_file(path: str) -> dict[str, Any]:
    """A JSON object read from ``path``: missing file exit 3, bad content exit 1."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"file {path!r} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"cannot read {path!r}: {error}") from None
    try:
        data = parse_json(text, path)
    except ValidationError:
        raise  # JSON, but nested too deeply
    except ValueError as error:
        raise ValidationError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: expected a JSON object, not {type(data).__name__}")
    return data


def add_id(parser: argparse.ArgumentParser) -> None:
    """The instance id every per-instance command takes first."""
    parser.add_argument("instance_id", metavar="ID")


def finish(parser: argparse.ArgumentParser, handler: Any, **defaults: Any) -> None:
    """Give a command the options every command takes, and its handler."""
    add_json(parser)
    parser.set_defaults(command=handler, **defaults)


def add_json(parser: argparse.ArgumentParser) -> None:
    """The options every command takes."""
    parser.add_argument("--json", action="store_true", help="print JSON (docs/cli.md: JSON output)")
    parser.add_argument(
        "--no-color", dest="no_color_sub", action="store_true", help="never colour the output"
    )
