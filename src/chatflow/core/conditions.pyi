# Old path, typed: the module itself is chatflow.domain.conditions (chatflow/core/__init__.py).
from chatflow.domain.conditions import *  # noqa: F403
