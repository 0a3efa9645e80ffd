"""Run the proof suites and write docs/proof.md: every figure next to its target.

Usage: python3 -m bench.proof [--scale short|full] [--only a,b] [--out FILE]

Each suite runs in its own process (`python3 -m bench.proof.<suite> --json ...`), bounded
in time, so one suite's crash, hang or leftover memory cannot spoil another's figures.
Suite 6 (secrets) is the scans every other suite made of the texts its scenarios left,
plus its own run under a real journald. `make proof` is the full run and rewrites
docs/proof.md; `make proof-short` (CI) runs suites 1-6 at a short scale and writes its
page under build/. Exit status 1 if any suite failed: a figure missed with no measured
cause, a secret found, a suite that crashed or ran out of time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.proof.common import ROOT, Report, environment

#: (module, area heading, seconds allowed at full scale, seconds allowed at short scale)
SUITES: tuple[tuple[str, str, int, int], ...] = (
    ("powercut", "1. Power cut", 420, 120),
    ("fuzz", "2. Hostile documents", 420, 120),
    ("tls", "3. TLS", 300, 180),
    ("netfaults", "4. Network faults", 420, 180),
    ("contactme", "5. Abuse of contact-me", 300, 150),
    ("secrets", "6. Secrets", 300, 150),
    ("performance", "7. Performance", 900, 300),
)
SHORT_SUITES = ("powercut", "fuzz", "tls", "netfaults", "contactme", "secrets")


def run_suite(module: str, scale: str, limit: int, workdir: Path) -> Report:
    out = workdir / f"{module}.json"
    command = [sys.executable, "-m", f"bench.proof.{module}", "--scale", scale, "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):  # judged by the missing report
        subprocess.run(command, cwd=ROOT, env=env, timeout=limit, check=False)
    if out.exists():
        return Report.from_json(json.loads(out.read_text(encoding="utf-8")))
    report = Report(module, module, "short" if scale == "short" else "full", " ".join(command))
    report.seconds = round(time.monotonic() - started, 1)
    report.error = f"no report: the suite crashed or ran past its {limit} s"
    return report


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(reports: list[tuple[str, Report]], scale: str, total: float) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    env = environment()
    lines = [
        "# provd proof: reliability, security and performance figures",
        "",
        f"Written by `make proof` (scale `{scale}`) on"
        f" {datetime.date.today().isoformat()}, commit `{commit or 'unknown'}`, in"
        f" {total / 60:.1f} minutes. Machine: {env['cpus']} CPUs, {env['machine']}, Linux"
        f" {env['kernel']}, {env['python']}.",
        "",
        "Each area's figures come from one command, runnable on its own; `make proof` runs"
        " them all and rewrites this page. A figure that misses its target gives its"
        " measured cause. `make proof-short` (CI) runs areas 1–6 at a smaller scale.",
        "",
        "| area | result | time | command |",
        "|---|---|---|---|",
    ]
    for heading, report in reports:
        explained = [f for f in report.figures if not f.met and f.cause]
        result = "**failed**" if not report.passed else "passed"
        if report.passed and explained:
            result += f" ({len(explained)} explained miss{'es' if len(explained) > 1 else ''})"
        lines.append(
            f"| {heading} | {result} | {report.seconds:.0f} s | `{cell(report.command)}` |"
        )
    for heading, report in reports:
        lines += ["", f"## {heading}", "", f"{report.title}. Command: `{report.command}`", ""]
        if report.figures:
            lines += ["| figure | measured | target | |", "|---|---|---|---|"]
            for f in report.figures:
                mark = "met" if f.met else ("missed, explained" if f.cause else "**MISSED**")
                lines.append(f"| {cell(f.what)} | {cell(f.value)} | {cell(f.target)} | {mark} |")
        causes = [f for f in report.figures if not f.met and f.cause]
        if causes:
            lines += ["", "Causes of the misses:", ""]
            lines += [f"- **{f.what}**: {f.cause}" for f in causes]
        if report.notes:
            lines += ["", "How it was measured:", ""]
            lines += [f"- {note}" for note in report.notes]
        if report.error:
            lines += ["", "The suite failed:", "", "```", report.error.strip()[-2000:], "```"]
    lines += ["", secrets_table(reports), ""]
    return "\n".join(lines)


def secrets_table(reports: list[tuple[str, Report]]) -> str:
    """Suite 6's evidence from every suite: the scans, summed per suite."""
    rows = [
        "## Secrets looked for in every scenario's captured texts",
        "",
        "| suite | scenarios scanned | secrets looked for | texts | bytes searched | found |",
        "|---|---|---|---|---|---|",
    ]
    for heading, report in reports:
        if not report.scans:
            continue
        found = sum(len(s.found) for s in report.scans)
        rows.append(
            f"| {heading} | {len(report.scans)} | {sum(s.secrets for s in report.scans)}"
            f" | {sum(s.places for s in report.scans)}"
            f" | {sum(s.bytes_searched for s in report.scans):,} | {found} |"
        )
    leaks = [f for _, r in reports for s in r.scans for f in s.found]
    if leaks:
        rows += ["", "Found:", ""] + [f"- {leak}" for leak in leaks]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", choices=("short", "full"), default="full")
    parser.add_argument("--only", default="", help="comma-separated suite names")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "proof.md")
    args = parser.parse_args()
    wanted = [s for s in args.only.split(",") if s] or [
        name for name, *_ in SUITES if args.scale == "full" or name in SHORT_SUITES
    ]
    unknown = set(wanted) - {name for name, *_ in SUITES}
    if unknown:
        parser.error(f"no such suite: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    reports: list[tuple[str, Report]] = []
    with tempfile.TemporaryDirectory(prefix="provd-proof-") as tmp:
        for name, heading, full_limit, short_limit in SUITES:
            if name not in wanted:
                continue
            limit = full_limit if args.scale == "full" else short_limit
            reports.append((heading, run_suite(name, args.scale, limit, Path(tmp))))
    total = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(reports, args.scale, total), encoding="utf-8")
    failed = [heading for heading, report in reports if not report.passed]
    print(f"\nproof: wrote {args.out} in {total:.0f} s")
    if failed:
        print(f"proof: FAILED: {', '.join(failed)}")
        sys.exit(1)
    print("proof: every suite passed")


if __name__ == "__main__":
    main()
