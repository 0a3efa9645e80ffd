"""Suite 6's child: the scenarios under a private journald, in a private mount namespace.

`bench.proof.secrets` runs this module as
`unshare --mount --propagation private python -m bench.proof.secrets_child --json FILE`:
mounts made here (a tmpfs over /run, a scenario's directory over /var/log) are seen by
this process and its children only. It writes its report (figures, scans, notes) to FILE
for the suite to merge. SIGTERM (the suite's time limit) stops the daemons and journald
through the usual clean-ups.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

from bench.proof.common import Report
from bench.proof.secrets import SEED, measure


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def child_main() -> int:
    parser = argparse.ArgumentParser(description="suite 6 under a private journald")
    parser.add_argument("--scale", choices=("short", "full"), default="full")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    report = Report(suite="secrets", title="secrets", scale=args.scale, command="")
    try:
        measure(report, journald=True, seed=args.seed)
    except BaseException:
        report.error = traceback.format_exc()
        print(report.error, file=sys.stderr, flush=True)
    args.json.write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
    return 1 if report.error else 0


if __name__ == "__main__":
    sys.exit(child_main())
