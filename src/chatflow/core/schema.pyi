# Old path, typed: the module itself is chatflow.domain.schema (chatflow/core/__init__.py).
from chatflow.domain.schema import *  # noqa: F403
