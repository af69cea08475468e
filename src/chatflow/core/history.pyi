# Old path, typed: the module itself is chatflow.domain.history (chatflow/core/__init__.py).
from chatflow.domain.history import *  # noqa: F403
