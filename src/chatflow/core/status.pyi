# Old path, typed: the module itself is chatflow.domain.status (chatflow/core/__init__.py).
from chatflow.domain.status import *  # noqa: F403
