"""The application layer: the engine (``WorkflowEngine``), its human actions, schema
registry and upgrades, running each change as one store step.

The domain it drives (models, definitions, schemas, conditions, transitions, lifecycle,
history, status) lives in ``chatflow.domain``, which imports nothing from here or from
storage. Its modules were first published here, so ``chatflow.core.models`` and the rest
still import: each old name is the domain module itself (the same module object, not a
copy), loaded only when first imported.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from types import ModuleType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from importlib.abc import Loader as _Loader
else:  # importlib.abc costs more to import than the whole engine: the protocol is enough
    _Loader = object

# Old path under ``chatflow.core`` -> the module it is now.
MOVED = {
    "_fields": "chatflow.domain._fields",
    "conditions": "chatflow.domain.conditions",
    "definition": "chatflow.domain.definition",
    "dialect": "chatflow.domain.dialect",
    "history": "chatflow.domain.history",
    "lazy": "chatflow.storage._lazy",
    "lifecycle": "chatflow.domain.lifecycle",
    "models": "chatflow.domain.models",
    "schema": "chatflow.domain.schema",
    "status": "chatflow.domain.status",
    "transitions": "chatflow.domain.transitions",
}


class _MovedModules(_Loader):
    """Imports ``chatflow.core.<old>`` as the module it moved to."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, leaf = fullname.rpartition(".")
        if package != __name__ or leaf not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name.rpartition(".")[2]])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported under its own name."""


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())
