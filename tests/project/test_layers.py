"""The layering of ``chatflow``, checked from the source (docs/architecture.md draws it).

Every module under ``src/chatflow`` is parsed with ``ast``; every import counts, at
module level or inside a function (a lazy import is still a dependency), and so does a
module named by string where a module imports by string (``importlib.import_module``,
``__import__``: the lazy name tables). Each module belongs to one package below; the
rules say which packages a package must not import, and the packages must form no
cycle. A failure names the module, the line and the import.
"""

from __future__ import annotations

import ast
import functools
import importlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from repo_paths import SRC

# The base layer: modules every layer may use, which use nothing of ChatFlow's but each other.
BASE = "chatflow.base"
BASE_MODULES = (
    "chatflow.errors",
    "chatflow._validation",
    "chatflow._text",
    "chatflow._logger",
    "chatflow._git",
)
FACADE = "chatflow"  # the package's lazy public names (and the shared engine): the top
# Top-level modules that are not packages, by the package they count as.
TOP_LEVEL = {
    **dict.fromkeys(BASE_MODULES, BASE),
    "chatflow": FACADE,
    "chatflow._shared": FACADE,
    "chatflow.__main__": "chatflow.cli",
    "chatflow.views": "chatflow.views",
    "chatflow.diagram": "chatflow.views",  # a read-only rendering of the domain, as views
}
PACKAGES = (
    BASE,
    "chatflow.domain",
    "chatflow.storage",
    "chatflow.core",
    "chatflow.views",
    "chatflow.webhooks",
    "chatflow.cli",
    "chatflow.ui",
    "chatflow.agent",
    "chatflow.testing",
    FACADE,
)
FRONT_ENDS = ("chatflow.cli", "chatflow.ui", "chatflow.agent", "chatflow.testing", FACADE)
# What each package must not import. Above ``views`` the acyclicity check is the rule.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    BASE: tuple(p for p in PACKAGES if p != BASE),
    "chatflow.domain": ("chatflow.storage", "chatflow.core", "chatflow.views", *FRONT_ENDS),
    "chatflow.storage": ("chatflow.core", "chatflow.views", *FRONT_ENDS),
    "chatflow.core": ("chatflow.views", *FRONT_ENDS),
    "chatflow.views": FRONT_ENDS,
    "chatflow.webhooks": FRONT_ENDS,  # the sender: the CLI and the page run it
}


@dataclass(frozen=True)
class Import:
    """One module importing another (``line`` in ``path``)."""

    module: str
    target: str
    path: Path
    line: int
    by_string: bool = False  # named in a lazy-import table, not an import statement

    def __str__(self) -> str:
        where = (
            self.path.relative_to(SRC.parent) if self.path.is_relative_to(SRC.parent) else self.path
        )
        return f"{self.module} ({where}:{self.line}) imports {self.target}"


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module under ``src/chatflow``, by dotted name."""
    found = {}
    for path in sorted((src / "chatflow").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def package_of(module: str) -> str:
    """The package ``module`` counts as (a KeyError names a top-level module not placed)."""
    if module.count(".") == 0 or module in TOP_LEVEL:
        return TOP_LEVEL[module]
    package = ".".join(module.split(".")[:2])
    if package not in PACKAGES:  # a new sub-package: place it in PACKAGES and FORBIDDEN
        raise KeyError(package)
    return package


def imports_of(module: str, path: Path, source: str, known: dict[str, Path]) -> Iterator[Import]:
    """The ChatFlow modules ``source`` (module ``module``) imports, wherever it imports them."""
    tree = _tree(source, str(path))
    by_string = any(
        isinstance(node, ast.Attribute | ast.Name)
        and (getattr(node, "attr", None) or getattr(node, "id", None))
        in ("import_module", "__import__")
        for node in ast.walk(tree)
    )
    for node in ast.walk(tree):
        names: list[str] = []
        named = False
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(module, path, node)
            names = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                for alias in node.names
            ]
        elif by_string and isinstance(node, ast.Constant) and isinstance(node.value, str):
            names, named = ([node.value] if node.value in known else []), True
        for name in names:
            if name == "chatflow" or name.startswith("chatflow."):
                yield Import(module, _nearest(name, known), path, node.lineno, named)


@functools.cache
def _tree(source: str, filename: str) -> ast.Module:
    """``source`` parsed, once a session: the checks here read the same modules again
    (read only: a tree is never changed)."""
    return ast.parse(source, filename)


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _nearest(name: str, known: dict[str, Path]) -> str:
    """``name``, or the module that defines it (``chatflow.x.Name`` -> ``chatflow.x``)."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def all_imports(src: Path = SRC, extra: dict[str, str] | None = None) -> list[Import]:
    """Every import between ChatFlow modules; ``extra`` replaces a module's source."""
    known = modules(src)
    found = []
    for module, path in known.items():
        source = (extra or {}).get(module) or path.read_text(encoding="utf-8")
        found.extend(imports_of(module, path, source, known))
    return found


def violations(imports: list[Import]) -> list[str]:
    """Each import a rule forbids, as one line naming the module, line and import."""
    bad = []
    for item in imports:
        mine, theirs = package_of(item.module), package_of(item.target)
        if theirs in FORBIDDEN.get(mine, ()):
            bad.append(f"{item}: {mine} must not import {theirs}")
    return bad


def private_storage(imports: list[Import]) -> list[str]:
    """Each import by the application layer of a private storage module: the engine
    reaches storage only through its public names (``storage.codec`` for the wire
    format). The table of old ``chatflow.core`` paths may name one (by string)."""
    return [
        f"{item}: chatflow.core must use chatflow.storage's public modules"
        for item in imports
        if package_of(item.module) == "chatflow.core"
        and item.target.startswith("chatflow.storage._")
        and not item.by_string
    ]


SPI_PRIMITIVES = ("_transaction", "_read", "_read_head", "_read_texts", "_log_where")
"""The store primitives ``chatflow.storage.spi`` asks a store author for: the contract
(``chatflow.testing``) checks them, so it alone may call them from outside storage."""


def private_store_members(src: Path = SRC, extra: dict[str, str] | None = None) -> list[str]:
    """Each use, outside ``chatflow.storage``, of a ``_``-prefixed member of a store
    (``store._x``, ``self.state_store._x``: anything named ``...store``): a store's
    internals are its own (the file store's transactions use its ``TransactionSide``)."""
    found = []
    for module, path in modules(src).items():
        if package_of(module) == "chatflow.storage":
            continue
        source = (extra or {}).get(module) or path.read_text(encoding="utf-8")
        allowed = SPI_PRIMITIVES if package_of(module) == "chatflow.testing" else ()
        for node in ast.walk(_tree(source, str(path))):
            if not isinstance(node, ast.Attribute) or not _private(node.attr):
                continue
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name.lower().endswith("store") and node.attr not in allowed:
                found.append(f"{module} ({path.name}:{node.lineno}) uses {name}.{node.attr}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def cycles(imports: list[Import]) -> list[str]:
    """One cycle between packages, if any, with an import for each of its edges."""
    edges: dict[str, dict[str, Import]] = {}
    for item in imports:
        mine, theirs = package_of(item.module), package_of(item.target)
        if mine != theirs:
            edges.setdefault(mine, {}).setdefault(theirs, item)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(package: str) -> list[str]:
        state[package] = 1
        path.append(package)
        for nxt in sorted(edges.get(package, {})):
            if state.get(nxt) == 1:
                ring = [*path[path.index(nxt) :], nxt]
                return [str(edges[a][b]) for a, b in itertools.pairwise(ring)]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[package] = 2
        return []

    for package in sorted(edges):
        if package not in state and (found := visit(package)):
            return found
    return []


def test_every_module_belongs_to_a_package() -> None:
    unplaced = []
    for module in modules():
        try:
            package_of(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"place these modules in tests/project/test_layers.py: {unplaced}"


@functools.cache
def _imports() -> list[Import]:
    return all_imports()


def test_no_package_imports_a_layer_above_it() -> None:
    bad = violations(_imports())
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_the_engine_uses_storage_only_by_public_names() -> None:
    bad = private_storage(_imports())
    assert not bad, "\n".join(bad)


def test_no_module_outside_storage_touches_a_stores_private_members() -> None:
    bad = private_store_members()
    assert not bad, "use the store's public names (or add one):\n" + "\n".join(bad)


def test_the_check_sees_a_private_store_member_used_by_the_engine() -> None:
    path = modules()["chatflow.core.fork_repair"]
    planted = path.read_text(encoding="utf-8") + (
        "\n\ndef _planted(engine):\n    engine.state_store._repaired('wfi_x', 'x')\n"
    )
    bad = private_store_members(extra={"chatflow.core.fork_repair": planted})
    assert bad == [
        f"chatflow.core.fork_repair (fork_repair.py:{planted.count(chr(10))}) uses "
        "state_store._repaired"
    ]


def test_no_import_cycle_between_packages() -> None:
    ring = cycles(_imports())
    assert not ring, "packages import each other in a cycle:\n" + "\n".join(ring)


def test_the_check_sees_a_lazy_import_of_storage_in_the_domain() -> None:
    """The check itself: a forbidden import hidden in a function fails it, by name."""
    path = modules()["chatflow.domain.lifecycle"]
    planted = path.read_text(encoding="utf-8") + (
        "\n\ndef _planted() -> None:\n    from chatflow.storage import _log  # noqa\n"
    )
    bad = violations(all_imports(extra={"chatflow.domain.lifecycle": planted}))
    assert len(bad) == 1
    assert bad[0].startswith("chatflow.domain.lifecycle (src/chatflow/domain/lifecycle.py:")
    assert (
        "imports chatflow.storage._log: chatflow.domain must not import chatflow.storage"
        in (bad[0])
    )


def test_the_check_sees_a_cycle_and_names_its_imports() -> None:
    path = modules()["chatflow.views"]
    planted = path.read_text(encoding="utf-8") + "\nfrom chatflow.cli import main  # noqa\n"
    imports = all_imports(extra={"chatflow.views": planted})
    ring = cycles(imports)
    assert any(line.startswith("chatflow.views (src/chatflow/views.py:") for line in ring)
    assert any("chatflow.cli" in line.split(" imports ")[0] for line in ring)


@pytest.mark.parametrize("old", sorted(importlib.import_module("chatflow.core").MOVED))
def test_old_core_paths_import_the_moved_module_itself(old: str) -> None:
    moved = importlib.import_module("chatflow.core").MOVED[old]
    assert importlib.import_module(f"chatflow.core.{old}") is importlib.import_module(moved)
