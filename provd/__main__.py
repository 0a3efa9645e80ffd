"""`python3 -m provd` is `provd`."""

import sys

from provd.cli import provd_main

sys.exit(provd_main())
