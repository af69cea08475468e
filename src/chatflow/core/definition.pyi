# Old path, typed: the module itself is chatflow.domain.definition (chatflow/core/__init__.py).
from chatflow.domain.definition import *  # noqa: F403
