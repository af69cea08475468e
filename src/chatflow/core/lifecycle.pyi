# Old path, typed: the module itself is chatflow.domain.lifecycle (chatflow/core/__init__.py).
from chatflow.domain.lifecycle import *  # noqa: F403
