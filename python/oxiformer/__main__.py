"""``python -m oxiformer``."""

import sys

from oxiformer.cli import main

sys.exit(main())
