"""`python -m provd.lab`: see `provd.lab.cli`."""

from __future__ import annotations

from provd.lab.cli import main

raise SystemExit(main())
