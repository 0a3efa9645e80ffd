"""What every proof suite reports, and how it is run on its own.

A suite is a module of `bench/proof/` with a `run(report: Report) -> None` function; its
`__main__` is `main(run, __doc__)`. It measures, then records:

- `report.figure(...)`: one figure next to its target (`met` says whether it holds). A
  figure that misses its target says why in `cause` (a measured cause, not an excuse): the
  runner prints it in docs/proof.md and counts the miss as explained. A correctness figure
  (a corrupt store, a crash, a followed redirect) has no cause: a miss fails the suite.
- `report.scan(...)`: suite 6's evidence. After a scenario, the texts a field engineer or an
  attacker could read (the daemon's log stream with its journal fields, its notifications,
  `provctl status`, files outside the secure store) and the secrets the scenario used
  (PIN, TAN, passwords, key material). The scan keeps only counts and labels, never a value.

`python -m bench.proof.<suite> [--scale short|full] [--json FILE]` runs one suite, prints
its figures, and exits 1 when a figure misses without a cause. `bench/proof/__main__.py`
runs them all and writes docs/proof.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

Scale = Literal["short", "full"]

#: A secret shorter than this is looked for only as a whole word of the text (a 4-digit PIN
#: would otherwise "appear" in timestamps and ports by chance).
SHORT_SECRET = 8


@dataclass(frozen=True)
class Figure:
    """One measured figure next to its target."""

    what: str
    value: str
    target: str
    met: bool
    cause: str = ""  # for a miss: why, as measured


@dataclass(frozen=True)
class Scan:
    """Secrets looked for in the texts one scenario left behind (suite 6)."""

    scenario: str
    secrets: int  # how many distinct secrets were looked for
    places: int  # how many texts were searched
    bytes_searched: int
    found: tuple[str, ...]  # "<secret label> in <place>", never the value


@dataclass
class Report:
    """What one suite run measured."""

    suite: str
    title: str
    scale: Scale
    command: str
    figures: list[Figure] = field(default_factory=list)
    scans: list[Scan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""  # a suite that crashed says so here (and fails)

    @property
    def short(self) -> bool:
        return self.scale == "short"

    def figure(self, what: str, value: object, target: str, met: bool, cause: str = "") -> None:
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        self.figures.append(Figure(what, shown, target, bool(met), cause))
        mark = "ok  " if met else ("MISS" if not cause else "miss")
        print(f"  [{mark}] {what}: {shown} (target {target})", flush=True)
        if cause and not met:
            print(f"         cause: {cause}", flush=True)

    def note(self, text: str) -> None:
        """A line of context for docs/proof.md (how the figure was made, how it scales)."""
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def scan(
        self,
        scenario: str,
        secrets: Mapping[str, str | bytes],
        texts: Mapping[str, str | bytes],
    ) -> Scan:
        """Look for every secret in every text; record the result (no values kept)."""
        needles = {label: _as_bytes(value) for label, value in secrets.items() if value}
        found: list[str] = []
        searched = 0
        for place, text in texts.items():
            haystack = _as_bytes(text)
            searched += len(haystack)
            for label, needle in needles.items():
                if contains_secret(haystack, needle):
                    found.append(f"{label} in {place}")
        result = Scan(scenario, len(needles), len(texts), searched, tuple(found))
        self.scans.append(result)
        state = "none found" if not found else f"FOUND {len(found)}: {', '.join(found)}"
        print(
            f"  [scan] {scenario}: {len(needles)} secrets in {len(texts)} texts"
            f" ({searched:,} bytes): {state}",
            flush=True,
        )
        return result

    @property
    def failed(self) -> list[Figure]:
        """Misses with no cause: the suite fails."""
        return [f for f in self.figures if not f.met and not f.cause]

    @property
    def passed(self) -> bool:
        leaks = any(scan.found for scan in self.scans)
        return not self.error and not self.failed and not leaks and bool(self.figures)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        report = cls(
            suite=data["suite"],
            title=data["title"],
            scale=data["scale"],
            command=data["command"],
            notes=list(data.get("notes", [])),
            seconds=float(data.get("seconds", 0.0)),
            error=str(data.get("error", "")),
        )
        report.figures = [Figure(**f) for f in data.get("figures", [])]
        report.scans = [Scan(**{**s, "found": tuple(s["found"])}) for s in data.get("scans", [])]
        return report


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def contains_secret(haystack: bytes, needle: bytes) -> bool:
    """Whether `needle` occurs in `haystack`; a short one only as a whole token."""
    if len(needle) >= SHORT_SECRET:
        return needle in haystack
    start = 0
    while (at := haystack.find(needle, start)) >= 0:
        before = haystack[at - 1 : at] if at else b""
        after = haystack[at + len(needle) : at + len(needle) + 1]
        if not (before.isalnum() or after.isalnum()):
            return True
        start = at + 1
    return False


def environment() -> dict[str, str]:
    """The machine a figure was measured on, for docs/proof.md's header."""
    return {
        # No path: the page is committed, and a machine's paths are not the project's.
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
    }


def main(run: Callable[[Report], None], doc: str | None, suite: str) -> None:
    """The command line of one suite: `--scale`, `--json`; exit 1 when it fails."""
    title = (doc or suite).strip().splitlines()[0].rstrip(".")
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--scale", choices=("short", "full"), default="full")
    parser.add_argument("--json", type=Path, help="write the report here (for the runner)")
    args = parser.parse_args()
    command = f"python3 -m bench.proof.{suite} --scale {args.scale}"
    report = Report(suite=suite, title=title, scale=args.scale, command=command)
    print(f"== {suite} ({args.scale}): {title}", flush=True)
    started = time.monotonic()
    try:
        run(report)
    except Exception:  # a crashed suite is reported, then fails
        report.error = traceback.format_exc()
        print(report.error, file=sys.stderr, flush=True)
    report.seconds = round(time.monotonic() - started, 1)
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
    verdict = "passed" if report.passed else "FAILED"
    print(f"== {suite}: {verdict} in {report.seconds:.0f} s", flush=True)
    sys.exit(0 if report.passed else 1)
