"""``python -m chatflow``: the same as the ``chatflow`` command."""

import sys

from chatflow.cli import main

sys.exit(main())
