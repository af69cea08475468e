# Old path, typed: the module itself is chatflow.domain.models (chatflow/core/__init__.py).
from chatflow.domain.models import *  # noqa: F403
