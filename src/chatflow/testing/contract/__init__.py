"""Every contract test, for ``from chatflow.testing.contract import *`` in a test module.

The importing module must provide a ``chatflow_store_factory`` fixture (see
``chatflow.testing``); the ``store`` fixture defined here opens and closes stores
through it. Each capability lives in its own module (its ``CAPABILITY`` names it), the
way LangGraph splits its checkpointer conformance suite. The checks themselves need no
pytest (``chatflow.testing._check``), so ``chatflow.testing.validate`` runs them without
it; only the ``store`` fixture is pytest's, and it is left out when pytest is missing.
"""

from __future__ import annotations

import importlib.util

from chatflow.testing.contract import (
    _artifacts,
    _bad_input,
    _copying,
    _damage,
    _delete,
    _event_log,
    _feature_counts,
    _feature_index,
    _feed,
    _kills,
    _rollup_and_text,
    _round_trip,
    _threads,
    _update_state,
    _values,
    _workflows,
)
from chatflow.testing.contract._artifacts import *  # noqa: F403
from chatflow.testing.contract._bad_input import *  # noqa: F403
from chatflow.testing.contract._copying import *  # noqa: F403
from chatflow.testing.contract._damage import *  # noqa: F403
from chatflow.testing.contract._delete import *  # noqa: F403
from chatflow.testing.contract._event_log import *  # noqa: F403
from chatflow.testing.contract._feature_counts import *  # noqa: F403
from chatflow.testing.contract._feature_index import *  # noqa: F403
from chatflow.testing.contract._feed import *  # noqa: F403
from chatflow.testing.contract._kills import *  # noqa: F403
from chatflow.testing.contract._rollup_and_text import *  # noqa: F403
from chatflow.testing.contract._round_trip import *  # noqa: F403
from chatflow.testing.contract._threads import *  # noqa: F403
from chatflow.testing.contract._update_state import *  # noqa: F403
from chatflow.testing.contract._values import *  # noqa: F403
from chatflow.testing.contract._workflows import *  # noqa: F403

MODULES = (
    _artifacts,
    _bad_input,
    _copying,
    _delete,
    _event_log,
    _feed,
    _feature_counts,
    _feature_index,
    _rollup_and_text,
    _round_trip,
    _threads,
    _update_state,
    _values,
    _workflows,
    _damage,
    _kills,
)
"""The capability modules, one spec each (``_fixtures`` holds only the ``store`` fixture)."""

__all__ = [name for module in MODULES for name in module.__all__]
if importlib.util.find_spec("pytest") is not None:  # else only validate() runs the checks
    from chatflow.testing.contract import _fixtures
    from chatflow.testing.contract._fixtures import *  # noqa: F403

    __all__ += _fixtures.__all__
