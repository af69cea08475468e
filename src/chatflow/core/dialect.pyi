# Old path, typed: the module itself is chatflow.domain.dialect (chatflow/core/__init__.py).
from chatflow.domain.dialect import *  # noqa: F403
