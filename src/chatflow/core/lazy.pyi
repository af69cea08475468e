# Old path, typed: the module itself is chatflow.storage._lazy (chatflow/core/__init__.py).
from chatflow.storage._lazy import *  # noqa: F403
