"""``python -m tilevm``: the same as the ``tilevm`` command."""

import sys

from tilevm.cli import main

sys.exit(main())
