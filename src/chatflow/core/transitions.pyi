# Old path, typed: the module itself is chatflow.domain.transitions (chatflow/core/__init__.py).
from chatflow.domain.transitions import *  # noqa: F403
