"""One atheris (libFuzzer) worker of suite 2, run as its own process by bench/proof/fuzz.py.

Usage: python -m bench.proof.fuzz_atheris --mode bytes|structured --findings DIR
       [libFuzzer flags] CORPUS_DIR

`bytes` leaves mutation to libFuzzer (bit flips, splices, dictionary tokens over the seeds);
`structured` adds the structure-aware mutator of bench/proof/fuzz_corpus.py. provd's
modules are imported under `atheris.instrument_imports`, so libFuzzer is guided by the
branches of provd's own Python code (lxml's C code is not instrumented).

The target catches what escapes the harness instead of letting libFuzzer stop at the
first one: each distinct finding (kind, exception type, the innermost provd frame) is
written to DIR/findings.json with its count and the first input that caused it, so the
suite can count them all. libFuzzer still catches what the harness cannot: a native crash,
a hang past -timeout, memory past -rss_limit_mb (its crash-*, timeout-*, oom-* files).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

#: Where provd's own modules live: a finding is placed at the innermost frame in them.
_PROVD = str(Path(__file__).resolve().parents[2] / "provd") + "/"


class Findings:
    """What escaped the harness, grouped by where it came from."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "findings.json"
        self.groups: dict[str, dict[str, Any]] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def record(self, kind: str, error: BaseException, data: bytes) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        ours = [f for f in frames if f.filename.startswith(_PROVD)] or frames
        where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
        key = f"{kind}|{type(error).__name__}|{where}"
        group = self.groups.get(key)
        if group is None:
            group = {
                "kind": kind,
                "type": type(error).__name__,
                "message": str(error)[:300],
                "where": where,
                "count": 0,
                "input": data.hex(),
                "traceback": "".join(traceback.format_exception(error))[-3000:],
            }
            self.groups[key] = group
        group["count"] += 1
        # Written at once: libFuzzer ends the process without running Python's atexit.
        self.path.write_text(json.dumps(list(self.groups.values()), indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=("bytes", "structured"), required=True)
    parser.add_argument("--findings", type=Path, required=True)
    args, libfuzzer = parser.parse_known_args()
    atheris: Any = importlib.import_module("atheris")
    with atheris.instrument_imports(include=["provd"]):
        harness = importlib.import_module("bench.proof.fuzz_harness")
        importlib.import_module("provd.wpi.fragment")
        importlib.import_module("provd.wpi.nonce")
    corpus = importlib.import_module("bench.proof.fuzz_corpus")
    findings = Findings(args.findings)

    def test_one_input(data: bytes) -> None:
        try:
            harness.run_input(data)
        except harness.WrongAnswer as wrong:
            findings.record("wrong answer", wrong, data)
        except Exception as error:  # every escape is a finding to count
            findings.record("unhandled", error, data)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        result: bytes = corpus.mutate(data, max_size, seed, atheris.Mutate)
        return result

    options: dict[str, Any] = {}
    if args.mode == "structured":
        options["custom_mutator"] = custom_mutator
    atheris.Setup([sys.argv[0], *libfuzzer], test_one_input, **options)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
