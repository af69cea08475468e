"""``chatflow.testing`` used exactly as a third party would: a store written here from
``chatflow.storage.spi`` alone (docs/stores.md, "Writing a store"), a
``chatflow_store_factory`` fixture, and one star import that collects the whole
contract, which the store must pass."""

from __future__ import annotations

import ast
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatflow.storage.spi import (
    DAMAGE_KINDS,
    Commit,
    Event,
    Head,
    LogTransaction,
    RawAccess,
    RawInstance,
    SchemaRow,
    Store,
    TaskTexts,
    canonical,
    check_head,
    corrupt,
    decode_json,
    is_tail_of,
    link_problem,
    validate_id,
)
from chatflow.testing import StoreFactory, validate
from chatflow.testing.contract import *  # noqa: F403


class DictStore(Store):
    """Instances kept as encoded JSON in dicts, behind one lock."""

    where = "the dict store"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.heads: dict[str, str] = {}
        self.logs: dict[str, list[str]] = {}
        self.texts: dict[tuple[str, str, int], str] = {}
        self.features: dict[str, list[str]] = {}
        self.schemas: dict[tuple[str, str], str] = {}

    @contextlib.contextmanager
    def _transaction(
        self, instance_id: str, feature_id: str | None = None
    ) -> Iterator[LogTransaction]:
        with self.lock:
            yield DictTransaction(self, instance_id, feature_id)

    def _read(self, instance_id: str) -> tuple[Head, list[Event]] | None:
        with self.lock:
            head = self._read_head(instance_id)
            lines = list(self.logs.get(instance_id, ()))
        if head is None:
            return None
        return head, [decode_json(line, instance_id, self.where) for line in lines]

    def _read_head(self, instance_id: str) -> Head | None:
        text = self.heads.get(instance_id)
        if text is None:
            return None
        return check_head(decode_json(text, instance_id, self.where), instance_id, self.where)

    def _read_texts(self, instance_id: str, task: str, version: int) -> TaskTexts | None:
        text = self.texts.get((instance_id, task, version))
        return None if text is None else TaskTexts(*json.loads(text))

    def list_instances_by_feature(self, feature_id: str) -> list[str]:
        validate_id(feature_id, "feature_id")
        with self.lock:
            return list(self.features.get(feature_id, ()))

    def list_features(self) -> list[str]:
        with self.lock:
            return sorted(self.features)

    def put_schema(
        self, name: str, version: int | str, content_hash: str, schema: dict[str, Any]
    ) -> None:
        with self.lock:
            self.schemas[(name, str(version))] = json.dumps([version, content_hash, schema])

    def list_schemas(self) -> list[SchemaRow]:
        with self.lock:
            rows = sorted(self.schemas.items())
        return [SchemaRow(name, *json.loads(text)) for (name, _), text in rows]

    def delete_instance(self, instance_id: str) -> bool:  # optional: "delete"
        validate_id(instance_id, "instance_id")
        with self.lock:
            head = self._read_head(instance_id)
            if head is None:
                return False
            feature = head["state"]["feature_id"]
            del self.heads[instance_id], self.logs[instance_id]
            for key in [key for key in self.texts if key[0] == instance_id]:
                del self.texts[key]
            self.features[feature].remove(instance_id)
            if not self.features[feature]:
                del self.features[feature]
            return True


class DictTransaction(LogTransaction):
    """One instance, held under the store's lock."""

    def __init__(self, store: DictStore, instance_id: str, feature_id: str | None) -> None:
        self.store, self.instance_id, self.feature_id = store, instance_id, feature_id

    def head(self) -> Head | None:
        head = self.store._read_head(self.instance_id)
        if head is not None:
            last = decode_json(self.store.logs[self.instance_id][-1], self.instance_id, "")
            if not is_tail_of(last, head):
                raise corrupt(self.instance_id, self.store.where, "its head is not its log's")
        return head

    def events(self) -> list[Event]:
        found = self.store._read(self.instance_id)
        return [] if found is None else found[1]

    def append(self, commit: Commit, texts: tuple[str, int, TaskTexts] | None) -> None:
        if texts is not None:
            self.put_texts(*texts)
        if self.instance_id not in self.store.heads:  # a first append lists the instance
            assert self.feature_id is not None
            self.store.features.setdefault(self.feature_id, []).append(self.instance_id)
        log = self.store.logs.setdefault(self.instance_id, [])
        log.extend(line.decode() for line in commit.lines)
        self.store.heads[self.instance_id] = commit.head_json().decode()

    def replace_prefix(self, checkpoint: Event, upto: int) -> None:
        log = self.store.logs[self.instance_id]
        kept = [line for line in log if json.loads(line)["seq"] > upto]
        log[:] = [canonical(checkpoint).decode(), *kept]

    def put_texts(self, task: str, version: int, texts: TaskTexts) -> None:  # optional: "copy"
        self.store.texts[(self.instance_id, task, version)] = json.dumps(list(texts))


class CheckedDictStore(DictStore):
    """The dict store with the optional capability ``damage``: raw access to its
    strings, and reads that refuse a log whose events do not chain."""

    def _read(self, instance_id: str) -> tuple[Head, list[Event]] | None:
        found = super()._read(instance_id)
        if found is not None:
            problem = link_problem(found[1], list(self.logs[instance_id]))
            if problem is not None:
                raise corrupt(instance_id, self.where, f"event {problem[0]}: {problem[1]}")
        return found

    def raw_access(self) -> RawAccess:
        return DictRawAccess(self)


class DictRawAccess(RawAccess):
    # Its head is what says the instance exists: losing it would be a delete.
    kinds = frozenset(DAMAGE_KINDS) - {"lose_head"}

    def __init__(self, store: DictStore) -> None:
        self.store = store

    def read(self, instance_id: str) -> RawInstance:
        head = self.store.heads[instance_id].encode()
        return RawInstance(head, tuple(line.encode() for line in self.store.logs[instance_id]))

    def write(self, instance_id: str, stored: RawInstance) -> None:
        assert stored.head is not None
        self.store.heads[instance_id] = stored.head.decode()
        self.store.logs[instance_id] = [event.decode() for event in stored.events]


@pytest.fixture
def chatflow_store_factory() -> StoreFactory:
    opened = DictStore()
    return lambda: opened  # an in-process store: every "open" is the same object


def test_validate_finds_the_dict_store_complete() -> None:
    report = validate(lambda folder: DictStore(), shared=True)
    report.raise_for_failures()
    assert report.capabilities >= {"delete", "copy"}
    assert "feed" not in report.capabilities  # it keeps no change feed: those checks skip
    assert "damage" not in report.capabilities  # no raw_access: the damage checks skip
    assert [r.name for r in report.skipped if r.capability not in ("feed", "damage")] == [
        "test_bad_ids_are_refused_and_nothing_is_written[list_instances-None]",
        "test_a_writer_killed_mid_write_loses_nothing_acknowledged",  # in-process
    ]
    assert all(r.name.startswith("test_feed") for r in report.skipped if r.capability == "feed")
    damage = [r for r in report.results if r.capability == "damage"]
    assert len(damage) == 2 * len(DAMAGE_KINDS)
    assert all(r.outcome == "skipped" for r in damage)
    assert all("not supported by DictStore" in r.message for r in damage), damage


def test_the_store_uses_only_public_names() -> None:
    """No ``chatflow`` module or name starting with ``_`` is imported, and no private
    attribute is reached but the ones this file defines (the SPI's hooks it implements)."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert not any(p.startswith("_") for p in alias.name.split(".")), alias.name
                imported.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chatflow"):
            module = node.module or ""
            assert not any(part.startswith("_") for part in module.split(".")), module
            for alias in node.names:
                assert not alias.name.startswith("_"), f"{module}.{alias.name}"
                imported.add(alias.asname or alias.name)
    defined = {
        node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    reached = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_")
    }
    assert reached <= defined, reached - defined
    assert "chatflow.storage.spi" in Path(__file__).read_text(encoding="utf-8")


def test_validate_finds_the_dict_store_with_raw_access_whole_under_damage() -> None:
    report = validate(lambda folder: CheckedDictStore(), shared=True, only={"damage"})
    report.raise_for_failures()
    assert "damage" in report.capabilities
    assert len(report.passed) == 2 * (len(DAMAGE_KINDS) - 1)
    assert all("'lose_head' not supported by CheckedDictStore" in r.message for r in report.skipped)
