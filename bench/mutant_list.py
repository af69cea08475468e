"""The planted bugs ``bench/mutants.py`` runs: each a mistake a developer could make.

A mutant names a file under ``src/``, an exact snippet (found exactly once) and its
replacement, what the change means, and the tests a reviewer would expect to notice
it (run with ``-x``). ``equivalent`` says why a change alters no behaviour a user
could observe; such mutants are listed but not counted.

Spread like a reviewer's sample: domain (lifecycle, routing, conditions, upgrade,
status), storage (log chain, file store, locks, SQL), views, the CLI and the page.
"""

from __future__ import annotations

from typing import NamedTuple


class Mutant(NamedTuple):
    id: str
    file: str
    find: str
    replace: str
    what: str
    tests: tuple[str, ...]
    equivalent: str | None = None


# Test subsets: what a reviewer of each area would run.
CORE = (
    "tests/test_workflow_lifecycle.py",
    "tests/test_engine.py",
    "tests/test_gates.py",
    "tests/test_entry_approval.py",
    "tests/test_edges.py",
    "tests/test_progress.py",
    "tests/test_actions_table.py",
    "tests/conformance/test_exact_values.py",
    "tests/test_actors.py",
    "tests/test_conditions.py",
    "tests/test_upgrade.py",
    "tests/test_workflow_properties.py",
    "tests/test_chatcoder.py",
    "tests/test_workflow_examples.py",
    "tests/test_views.py",
    "tests/test_validation.py",
    "tests/test_schema_validation.py",
    "tests/conformance/test_workflow_contracts.py",
    "tests/conformance/test_chatcoder_loop.py",
    "tests/backends/test_upgrade.py",
    "tests/cli/test_act.py",
)
STORE = (
    "tests/test_file_store.py",
    "tests/test_file_damage.py",
    "tests/test_file_repairs.py",
    "tests/test_log_encoding.py",
    "tests/test_resealed_copy.py",
    "tests/test_file_lock_reentry.py",
    "tests/test_two_writers.py",
    "tests/test_durability.py",
    "tests/test_verify_resealed.py",
    "tests/test_planted_links.py",
    "tests/test_artifact_reads.py",
    "tests/test_file_lock.py",
    "tests/test_concurrency.py",
    "tests/conformance",
    "tests/backends",
    "tests/test_cli_verify.py",
    "tests/test_crash.py",
    "tests/test_engine.py",
)
CLI = ("tests/cli", "tests/test_cli_verify.py", "tests/test_views.py")
UI = ("tests/ui/test_server.py", "tests/ui/test_approve_semantics.py", "tests/test_views.py")

LC = "chatflow/domain/lifecycle.py"
TR = "chatflow/domain/transitions.py"
CO = "chatflow/domain/conditions.py"
UP = "chatflow/core/upgrade.py"
ST = "chatflow/domain/status.py"
LOG = "chatflow/storage/_log.py"
BASE = "chatflow/storage/base.py"
FS = "chatflow/storage/file_state_store.py"
FT = "chatflow/storage/_file_transaction.py"
SQL = "chatflow/storage/_sql.py"
VIEWS = "chatflow/views.py"
SERVER = "chatflow/ui/server.py"

MUTANTS: tuple[Mutant, ...] = (
    # -- lifecycle -----------------------------------------------------------------------
    Mutant(
        "lc-trigger-while-paused",
        LC,
        '"trigger a step": (Status.CREATED, Status.RUNNING),',
        '"trigger a step": (Status.CREATED, Status.RUNNING, Status.PAUSED),',
        "dropped check: a paused instance (awaiting approval) can be stepped on",
        CORE,
    ),
    Mutant(
        "lc-retry-limit-off-by-one",
        LC,
        "if limit is not None and count >= limit:",
        "if limit is not None and count > limit:",
        "off-by-one: max_retries allows one retry too many",
        CORE,
    ),
    Mutant(
        "lc-reject-first-back",
        LC,
        "return state.history[-2].phase if len(state.history) >= 2 else None",
        "return state.history[-2].phase if len(state.history) > 2 else None",
        "off-by-one: rejecting the second visit cancels instead of sending work back",
        CORE,
    ),
    Mutant(
        "lc-resume-actor-approves",
        LC,
        "    elif not approved_by:\n",
        "    elif not (approved_by or actor):\n",
        "loosened check: any actor's plain resume passes an approval gate",
        CORE,
    ),
    Mutant(
        "lc-jump-gate-swapped",
        LC,
        "if not force and not waiting_to_enter:",
        "if not force and waiting_to_enter:",
        "swapped condition: jump skips the exit gate of a phase whose work began",
        CORE,
    ),
    Mutant(
        "lc-cancel-completed",
        LC,
        '"cancel": (Status.CREATED, Status.RUNNING, Status.PAUSED, Status.FAILED),',
        '"cancel": (Status.CREATED, Status.RUNNING, Status.PAUSED, Status.FAILED, '
        "Status.COMPLETED),",
        "dropped check: a completed instance can be cancelled",
        CORE,
    ),
    Mutant(
        "lc-fail-keeps-pause",
        LC,
        "    state.status = Status.FAILED\n    state.pause = None\n",
        "    state.status = Status.FAILED\n",
        "forgotten reset: failing a paused instance keeps its pause",
        CORE,
    ),
    Mutant(
        "lc-approvals-not-distinct",
        LC,
        'return list(dict.fromkeys(event.data["by"] for event in approvals))',
        'return [event.data["by"] for event in approvals]',
        "loosened count: one person approving twice counts as two approvals",
        CORE,
    ),
    Mutant(
        "lc-visit-events-continue",
        LC,
        "        if event.history_index < index:\n            break",
        "        if event.history_index < index:\n            continue",
        "reads the whole log instead of stopping at the visit's first event",
        CORE,
        equivalent=(
            "history_index never decreases along the log (history only grows), so no "
            "event after the first older one belongs to the visit: only the cost changes"
        ),
    ),
    Mutant(
        "lc-first-phase-approval",
        LC,
        "    if reasons:\n        gate_entry(state, reasons, now, actor, risk=risk, force=force)",
        "    if reasons and len(state.history) > 1:\n"
        "        gate_entry(state, reasons, now, actor, risk=risk, force=force)",
        "dropped check: a first phase with requires_approval starts without waiting",
        CORE,
    ),
    Mutant(
        "lc-fork-at-end",
        LC,
        "if not -len(parent.history) <= at < len(parent.history):",
        "if not -len(parent.history) <= at <= len(parent.history):",
        "off-by-one: fork --at N (one past the end) silently forks at 0",
        CORE,
    ),
    Mutant(
        "lc-fork-status",
        LC,
        "status=Status.RUNNING if at else Status.CREATED,",
        "status=Status.RUNNING,",
        "wrong default: a fork at entry 0 is running, not created",
        CORE,
    ),
    Mutant(
        "lc-complete-risk-loop",
        LC,
        "if step.target == END and not approved:",
        "if step.target == END:",
        "dropped flag: an approved risky last step asks for approval again",
        CORE,
        equivalent=(
            "resume, the only caller passing approved=True, also passes risk=None, so "
            "approval_reasons finds no reason to wait: the flag is redundant there"
        ),
    ),
    # -- routing and conditions ------------------------------------------------------------
    Mutant(
        "tr-max-visits-off-by-one",
        TR,
        "visits.get(target, 0) < limited.max_visits",
        "visits.get(target, 0) <= limited.max_visits",
        "off-by-one: a phase is entered max_visits + 1 times before its fallback",
        CORE,
    ),
    Mutant(
        "tr-flat-merge-order",
        TR,
        "return {**variables, **copy_json(trigger)}",
        "return {**copy_json(trigger), **variables}",
        "swapped merge: old variables win over the trigger's new values",
        CORE,
    ),
    Mutant(
        "tr-risk-equal-pauses",
        TR,
        "risk is not None and automation_level is not None and risk > automation_level",
        "risk is not None and automation_level is not None and risk >= automation_level",
        "loosened comparison: risk equal to the automation level asks for approval",
        CORE,
    ),
    Mutant(
        "tr-risk-100-refused",
        TR,
        "not 0 <= risk <= 100",
        "not 0 <= risk < 100",
        "off-by-one: a risk of exactly 100 is refused as invalid",
        CORE,
    ),
    Mutant(
        "co-missing-path-compares",
        CO,
        "    if actual is _MISSING:\n        return False\n    return _compare",
        "    return _compare",
        "dropped check: '!=' and 'not in' on a missing path hold",
        CORE,
    ),
    Mutant(
        "co-bool-number-and",
        CO,
        "if isinstance(left, bool) or isinstance(right, bool):",
        "if isinstance(left, bool) and isinstance(right, bool):",
        "narrowed guard: only two booleans take the boolean branch",
        CORE,
        equivalent=(
            "a bool against a non-bool then reaches the last line, where the types "
            "differ (a bool is no _is_number), so it is still unequal: same result"
        ),
    ),
    Mutant(
        "co-ordering-mixed",
        CO,
        "if isinstance(actual, str) and isinstance(expected, str):",
        "if isinstance(actual, str) or isinstance(expected, str):",
        "loosened type check: '<' between a string and a number raises mid-step",
        CORE,
    ),
    Mutant(
        "co-in-substring-any",
        CO,
        "return isinstance(item, str) and item in container",
        "return str(item) in container",
        "loosened check: the number 1 is 'in' the string 'v1'",
        CORE,
    ),
    Mutant(
        "co-list-index-off-by-one",
        CO,
        "segment.isdigit() and int(segment) < len(value)",
        "segment.isdigit() and int(segment) <= len(value)",
        "off-by-one: a path one past a list's end raises instead of being missing",
        CORE,
    ),
    Mutant(
        "co-exists-null",
        CO,
        "return actual is not _MISSING\n",
        "return actual is not _MISSING and actual is not None\n",
        "wrong rule: a JSON null no longer 'exists'",
        CORE,
    ),
    # -- upgrade ---------------------------------------------------------------------------
    Mutant(
        "up-limit-reached",
        UP,
        "if limit is not None and count > limit:",
        "if limit is not None and count >= limit:",
        "off-by-one: an instance that reached (not exceeded) max_visits is refused",
        CORE,
    ),
    Mutant(
        "up-failed-upgradable",
        UP,
        "UPGRADABLE = (InstanceStatus.CREATED, InstanceStatus.RUNNING, InstanceStatus.PAUSED)",
        "UPGRADABLE = (\n    InstanceStatus.CREATED, InstanceStatus.RUNNING, InstanceStatus.PAUSED,"
        " InstanceStatus.FAILED\n)",
        "dropped check: a failed instance can be upgraded",
        CORE,
    ),
    Mutant(
        "up-open-entry-name",
        UP,
        "    if entry is not None:  # the open visit continues under its new name\n"
        "        entry.phase = state.current_phase\n",
        "",
        "forgotten rename: the open visit keeps its old phase name after a phase_map",
        CORE,
    ),
    Mutant(
        "up-approval-swapped",
        UP,
        "if not target.has_phase(current) or _visit_was_approved(state):",
        "if not target.has_phase(current) or not _visit_was_approved(state):",
        "swapped condition: an unapproved visit moves into a phase needing approval",
        CORE,
    ),
    # -- status and roll-ups ---------------------------------------------------------------
    Mutant(
        "st-rollup-failed-vs-cancelled",
        ST,
        'return "failed" if counts[InstanceStatus.FAILED] else "cancelled"',
        'return "cancelled" if counts[InstanceStatus.CANCELLED] else "failed"',
        "swapped priority: a feature with failed and cancelled instances shows cancelled",
        CORE,
    ),
    Mutant(
        "st-newest-active-first",
        "chatflow/domain/counts.py",
        "return active[-1] if active else None",
        "return active[0] if active else None",
        "wrong end: the instance to continue is the oldest active one, not the newest",
        (*CORE, "tests/conformance"),
    ),
    Mutant(
        "st-progress-completed",
        ST,
        'done = {entry.phase for entry in state.history if entry.status == "completed"}',
        'done = {entry.phase for entry in state.history if entry.status != "running"}',
        "loosened filter: failed, rejected and retried visits count as progress",
        CORE,
    ),
    # -- log chain -------------------------------------------------------------------------
    Mutant(
        "log-prev-unchecked",
        LOG,
        'if event.get("prev") != link and event.get("kind") != "checkpoint":',
        'if event.get("prev") != link and event.get("kind") == "created":',
        "dropped check: verify no longer notices an event that does not link to its predecessor",
        STORE,
    ),
    Mutant(
        "log-head-digest-unchecked",
        LOG,
        '        if event.get("head") != head_digest(head_of(state, tasks)):\n'
        '            return event["seq"], "the head it records differs from the replayed state"\n',
        "",
        "dropped check: an event recording a head other than its replay passes verify",
        STORE,
    ),
    Mutant(
        "log-tail-hash-unchecked",
        LOG,
        '        and event.get("hash") == event_hash(event)\n        and event.get("head")',
        '        and event.get("head")',
        "dropped check: a step trusts a head whose last event was edited",
        STORE,
    ),
    Mutant(
        "log-tail-one",
        LOG,
        "TAIL = 2  #",
        "TAIL = 1  #",
        "off-by-one: the head keeps one list item, not the open entry and the one before",
        STORE + CORE,
        equivalent=(
            "the head's tail is a cache: a step needing an older item (reject's phase "
            "before) loads it from the log through LazyList, so only the cost changes"
        ),
    ),
    Mutant(
        "log-diff-type-blind",
        LOG,
        "elif key not in old or not same_json(before, value):",
        "elif key not in old or before != value:",
        "loosened comparison: save_state of 1 -> true (or 1 -> 1.0) writes nothing",
        STORE,
    ),
    Mutant(
        "model-delta-type-blind",
        "chatflow/storage/codec.py",
        "if k not in stored or not same_json(stored[k], v)",
        "if k not in stored or stored[k] != v",
        "loosened comparison: a step changing a variable from 1 to true writes nothing",
        CORE,
    ),
    Mutant(
        "base-verify-prompt-only",
        BASE,
        'for what, text in (("prompt", texts.prompt), ("response", texts.response)):\n'
        "            if _log.sha256_hex(text) != event[",
        'for what, text in (("prompt", texts.prompt),):\n'
        "            if _log.sha256_hex(text) != event[",
        "dropped check: verify ignores an edited AI response",
        STORE,
    ),
    Mutant(
        "base-task-version-latest",
        BASE,
        'or not 1 <= wanted <= entry["version"]',
        'or not 1 <= wanted < entry["version"]',
        "off-by-one: asking for the latest version by number finds nothing",
        STORE,
    ),
    Mutant(
        "base-compact-keeps-extra",
        BASE,
        "folded = events[: len(events) - keep_last]",
        "folded = events[: len(events) - keep_last - 1]",
        "off-by-one: compact keeps one event more than keep_last",
        STORE + CLI,
    ),
    Mutant(
        "art-response-unchecked",
        "chatflow/core/_artifacts.py",
        '        ("response", stored["response"], record.response_checksum),\n',
        "",
        "dropped check: get_task_artifacts returns an edited response as verified",
        STORE + CORE,
        equivalent=(
            "the engine reads through load_task_artifacts(checked=True), which refuses a "
            "text not matching its checksum in every store built on the base class: the "
            "engine's own check only matters for a store overriding that method"
        ),
    ),
    Mutant(
        "art-first-visit",
        "chatflow/core/_artifacts.py",
        "index = max(i for i, entry in enumerate(state.history) if entry.phase == phase)",
        "index = min(i for i, entry in enumerate(state.history) if entry.phase == phase)",
        "wrong end: recording a looped phase overwrites its first visit's record",
        CORE,
    ),
    # -- file store ------------------------------------------------------------------------
    Mutant(
        "fs-no-fdatasync",
        FS,
        "                    if sync:\n                        _datasync(fd)\n",
        "",
        "removed fsync: a step's log line is not synced before it is acknowledged",
        STORE,
    ),
    Mutant(
        "fs-atomic-no-fsync",
        "chatflow/storage/_atomic.py",
        "            if durable:\n                os.fsync(fd)\n",
        "",
        "removed fsync: a replaced file may be empty after a power cut",
        STORE,
    ),
    Mutant(
        "fs-trust-own-head-longer",
        FT,
        'if mine["_log_size"] == size:',
        'if mine["_log_size"] <= size:',
        "loosened comparison: a cached head is trusted after another process appended",
        STORE,
    ),
    Mutant(
        "fs-torn-line-kept",
        FT,
        "        try:\n"
        "            os.truncate(self.log_path, at)\n"
        "        except OSError as error:\n"
        "            where = self.log_path\n"
        '            raise StorageError(f"cannot repair {where}: {error.strerror}", path=where)'
        " from error\n",
        "",
        "dropped repair: a torn, never acknowledged line is kept aside but left in the log,"
        " so the next event is glued to it",
        STORE,
    ),
    Mutant(
        "fs-status-line-skipped",
        FT,
        "if not creating and (old is None or _log.head_status(old) != status):",
        "if not creating and old is None:",
        "dropped write: status changes never reach the feature's .status file",
        STORE + CLI,
    ),
    Mutant(
        "fs-symlink-folder-allowed",
        FT,
        "        if os.path.islink(folder):",
        "        if False:",
        "dropped check: an instance folder planted as a symlink is written through",
        STORE,
    ),
    Mutant(
        "fs-rewritten-index-unseen",
        FS,
        "if size < done or raw[: done - start] != seen:",
        "if size < done:",
        "dropped check: a rewritten (not appended) feature index keeps stale cached ids",
        STORE + CLI,
    ),
    Mutant(
        "fs-rollup-newest-first",
        FS,
        "            group[0] += 1\n            group[1] = instance_id\n",
        "            group[0] += 1\n",
        "forgotten update: a status's newest instance stays its oldest",
        STORE + CLI,
    ),
    Mutant(
        "lock-release-inner",
        "chatflow/storage/file_lock.py",
        "if held.count == 0 and held.fd is not None:",
        "if held.fd is not None:",
        "dropped check: an inner release of a re-entrant lock drops the OS lock",
        STORE,
    ),
    # -- SQL -------------------------------------------------------------------------------
    Mutant(
        "sql-delete-keeps-count",
        SQL,
        'cursor.execute(self.sql("count"), (found[0], found[1], -1))',
        'cursor.execute(self.sql("count"), (found[0], found[1], 0))',
        "forgotten decrement: a deleted instance stays in the roll-up counts",
        STORE + CLI,
    ),
    Mutant(
        "sql-counts-order-desc",
        SQL,
        "WHERE c.feature_id = ? AND c.n > 0 ORDER BY h.seq",
        "WHERE c.feature_id = ? AND c.n > 0 ORDER BY h.seq DESC",
        "swapped order: a feature's latest instance is its oldest status group's",
        STORE,
    ),
    Mutant(
        "sql-old-status-kept",
        SQL,
        "changes = [(new_status, 1)] + ([(old_status, -1)] if old_status is not None else [])",
        "changes = [(new_status, 1)]",
        "forgotten decrement: a step counts the new status without leaving the old",
        STORE,
    ),
    Mutant(
        "sqlite-busy-ms",
        "chatflow/storage/sqlite.py",
        'conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")',
        'conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout)}")',
        "wrong unit: the busy timeout is 30 ms, not 30 s",
        STORE,
    ),
    Mutant(
        "sqlite-sync-swapped",
        "chatflow/storage/sqlite.py",
        "{'FULL' if self.durable else 'NORMAL'}",
        "{'NORMAL' if self.durable else 'FULL'}",
        "swapped default: a durable SQLite store commits without a full sync",
        STORE,
    ),
    Mutant(
        "migrate-older-overwrites",
        BASE,
        'if same_feature and (event["seq"], _log.link_of(event)) == (head["seq"], head["hash"]):',
        'if same_feature and event["seq"] == head["seq"]:',
        "loosened comparison: migrate continues a target copy that went its own way (same"
        " seq, other hash) instead of leaving it as a conflict",
        STORE,
    ),
    # -- views -----------------------------------------------------------------------------
    Mutant(
        "views-resume-as-approval",
        VIEWS,
        'if event.kind is EventKind.RESUMED and event.data.get("kind") == "approval":',
        "if event.kind is EventKind.RESUMED:",
        "dropped check: a manual resume shows as an approval decision",
        CLI + UI,
    ),
    Mutant(
        "views-offset-minutes",
        VIEWS,
        "{abs(offset) // 60:02d}:{abs(offset) % 60:02d}",
        "{abs(offset) // 60:02d}:{abs(offset) // 60:02d}",
        "wrong field: the UTC offset's minutes repeat its hours (+05:05 for +05:30)",
        CLI + UI,
    ),
    Mutant(
        "views-duration-sign",
        VIEWS,
        "round(ended - entry.started_at, 3)",
        "round(entry.started_at - ended, 3)",
        "swapped operands: durations are negative",
        CLI + UI,
    ),
    # -- command line ----------------------------------------------------------------------
    Mutant(
        "cli-bad-id-exit",
        "chatflow/cli/context.py",
        "if isinstance(error, (UsageError, InvalidIdError)):",
        "if isinstance(error, UsageError):",
        "wrong exit code: a malformed id on the command line exits 1, not 2",
        CLI,
    ),
    Mutant(
        "cli-list-oldest-first",
        "chatflow/cli/read.py",
        "    summaries.sort(key=lambda summary: summary.created_at, reverse=True)\n    rows = []\n"
        "    for summary in summaries[: args.limit]:",
        "    summaries.sort(key=lambda summary: summary.created_at)\n    rows = []\n"
        "    for summary in summaries[: args.limit]:",
        "swapped order: list --limit shows the oldest instances",
        CLI,
    ),
    Mutant(
        "cli-show-tampered-ok",
        "chatflow/cli/read.py",
        "    return EXIT_FAILED if bad else EXIT_OK\n\n\ndef print_instance",
        "    return EXIT_OK\n\n\ndef print_instance",
        "wrong exit code: show of tampered artifacts exits 0",
        CLI,
    ),
    Mutant(
        "cli-verify-exit-ok",
        "chatflow/cli/admin.py",
        "    return EXIT_FAILED if problems else EXIT_OK\n\n\ndef cmd_compact",
        "    return EXIT_OK\n\n\ndef cmd_compact",
        "wrong exit code: verify that finds damage exits 0",
        CLI,
    ),
    Mutant(
        "cli-delete-default-yes",
        "chatflow/cli/admin.py",
        'return answer.strip().lower() in ("y", "yes")',
        'return answer.strip().lower() in ("y", "yes", "")',
        "wrong default: pressing Enter at the delete prompt deletes",
        CLI,
    ),
    Mutant(
        "cli-nan-parsed",
        "chatflow/cli/context.py",
        'values[key] = parse_json(raw, f"{option} {key}", parse_constant=_not_json)',
        'values[key] = parse_json(raw, f"{option} {key}")',
        "loosened parse: --var x=NaN is a float NaN (then refused), not the text 'NaN'",
        CLI,
    ),
    # -- the page --------------------------------------------------------------------------
    Mutant(
        "ui-origin-any-port",
        SERVER,
        "return origin == f\"http://{self.headers.get('Host', '')}\"",
        "return urlsplit(origin).hostname == urlsplit(f\"http://{self.headers.get('Host', '')}\")"
        ".hostname",
        "loosened comparison: an Origin on another port of the same host may act",
        UI,
    ),
    Mutant(
        "ui-readonly-bearer-acts",
        SERVER,
        "if not app.allow_actions:",
        "if not app.allow_actions and not self._by_bearer:",
        "dropped check: a read-only server lets a Bearer client act",
        UI,
    ),
    Mutant(
        "ui-cookie-without-csrf",
        SERVER,
        'return app.valid_csrf(self.headers.get("X-ChatFlow-CSRF"))',
        "return True",
        "dropped check: the cookie alone (no CSRF header) reads /api/",
        UI,
    ),
    Mutant(
        "ui-dot-segments",
        SERVER,
        'if any(segment in (".", "..") for segment in segments) or "//" in path:',
        'if "//" in path:',
        "dropped check: dot segments are no longer refused up front",
        UI,
        equivalent=(
            "every route is a full regex match whose ids cannot contain '.', and static "
            "files come from a fixed table, so a dot segment still matches nothing: 404 "
            "for every authorized request, as before; only a request already refused "
            "(cookie without the CSRF header) gets 401 instead of 404 on such a path"
        ),
    ),
    Mutant(
        "ui-approve-manual-pause",
        VIEWS,
        "return state.pause_info is not None and state.pause_info.is_approval",
        "return state.pause_info is not None",
        "loosened check: 'approve' on a manually paused instance resumes it (a pause by hand"
        " counts as waiting for approval)",
        CLI + UI,
    ),
    Mutant(
        "ui-limit-zero",
        SERVER,
        "not 0 < int(text) <= 1_000_000",
        "not 0 <= int(text) <= 1_000_000",
        "off-by-one: ?limit=0 answers an empty list instead of 400",
        UI,
    ),
    # -- validation ------------------------------------------------------------------------
    Mutant(
        "val-id-length",
        "chatflow/_validation.py",
        "if len(value) > MAX_ID_LENGTH:",
        "if len(value) >= MAX_ID_LENGTH:",
        "off-by-one: an id of exactly 128 characters is refused",
        CORE,
    ),
)
