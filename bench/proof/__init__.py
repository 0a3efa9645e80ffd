"""provd's proof suites (issue 8): every claim as a figure anyone can reproduce.

`python3 -m bench.proof` runs them all and writes docs/proof.md; each suite also runs on
its own (`python3 -m bench.proof.<suite>`). See bench/proof/common.py for what a suite
reports.
"""
