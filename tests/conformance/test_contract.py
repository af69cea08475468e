"""The packaged store contract (``chatflow.testing``), run against each of our stores."""

from chatflow.testing.contract import *  # noqa: F403
