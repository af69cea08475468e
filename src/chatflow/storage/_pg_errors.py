"""PostgreSQL driver errors translated into ChatFlow errors, with messages a user can act on.

Kept apart from the store so the mapping is readable in one place. Messages name the
server and schema but never the password.
"""

from __future__ import annotations

from chatflow.errors import ChatFlowError, CorruptStateError, LockTimeoutError, StorageError

# SQLSTATE code prefixes with their own error and wording
# (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_LOCK_NOT_AVAILABLE = "55P03"
_RULES: tuple[tuple[str, type[ChatFlowError], str], ...] = (
    ("57014", LockTimeoutError, "statement timed out"),
    ("42501", StorageError, "permission denied"),
    ("53", StorageError, "server out of disk space or memory"),
    ("XX", CorruptStateError, "server reports corrupt data"),
    ("08", StorageError, "server unreachable"),
)


FEED_PERMISSION = (
    "a read numbers the events committed since, which needs UPDATE on the schema's events "
    "and feed tables, or chatflow_number_feed(), which ChatFlow creates when a role that "
    "may create functions in the schema opens it (then SELECT and EXECUTE suffice)"
)


def describe_target(url: str, schema: str) -> str:
    """``postgresql://user@host:port/db (schema s)`` for messages: no password, ever."""
    try:
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 - optional dependency

        params = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - an unparsable URL still needs a (redacted) name
        return f"PostgreSQL (schema {schema})"
    user = f"{params['user']}@" if params.get("user") else ""
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    database = params.get("dbname") or ""
    return f"postgresql://{user}{host}{port}/{database} (schema {schema})"


def translate(
    error: Exception, action: str, target: str, lock_timeout: float
) -> ChatFlowError | None:
    """The ChatFlow error for a psycopg/psycopg_pool error, or ``None`` for any other error."""
    import psycopg  # noqa: PLC0415 - optional dependency, already loaded by the store
    from psycopg_pool import PoolTimeout  # noqa: PLC0415

    if isinstance(error, PoolTimeout):
        return StorageError(
            f"cannot {action} {target}: no connection available ({error}); "
            "is the server up, or is the pool too small?"
        )
    if not isinstance(error, psycopg.Error):
        return None
    code = error.sqlstate or ""
    if code == _LOCK_NOT_AVAILABLE:
        return LockTimeoutError(
            f"cannot {action} {target}: the instance is still locked by another writer "
            f"after {lock_timeout} s",
            timeout=lock_timeout,
        )
    kind: type[ChatFlowError] = StorageError
    problem = ""
    for prefix, rule_kind, rule_problem in _RULES:
        if code.startswith(prefix):
            kind, problem = rule_kind, rule_problem
            break
    else:
        if not code and isinstance(error, psycopg.OperationalError):
            problem = "server unreachable"
    reason = _first_line(error)
    if code == "42501" and action == "read the feed of":
        reason += f"; {FEED_PERMISSION}"
    return kind(
        f"cannot {action} {target}: {problem} ({reason})"
        if problem
        else f"cannot {action} {target}: {reason}"
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
