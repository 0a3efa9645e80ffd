"""The proof runner's judgement (bench/proof/common.py): what makes a suite pass or fail.

docs/proof.md is only worth something if a leak, an unexplained miss or a suite that
measured nothing fails the run; these tests hold the runner to that.
"""

from __future__ import annotations

from bench.proof.__main__ import render
from bench.proof.common import Report, contains_secret


def report() -> Report:
    return Report(suite="demo", title="Demo", scale="short", command="python3 -m x")


def test_a_suite_with_every_figure_met_and_no_leak_passes() -> None:
    r = report()
    r.figure("corrupt states", 0, "0", met=True)
    r.scan("write", {"admin-pwd": "Adm1n-Secret-42"}, {"log": "WriteItems → accepted"})
    assert r.passed


def test_a_miss_without_a_cause_fails_and_an_explained_one_does_not() -> None:
    r = report()
    r.figure("idle RSS", "45 MB", "≤ 30 MB", met=False, cause="the imports alone take 31 MB")
    explained_only = r.passed
    r.figure("corrupt states", 1, "0", met=False)
    assert explained_only
    assert not r.passed
    assert [f.what for f in r.failed] == ["corrupt states"]


def test_a_secret_found_in_any_text_fails_the_suite_and_is_named_without_its_value() -> None:
    r = report()
    r.figure("items changed", 0, "0", met=True)
    scan = r.scan("pin", {"PIN": "12345678"}, {"log": "ok", "status": b"pin=12345678"})
    assert scan.found == ("PIN in status",)
    assert not r.passed
    assert "12345678" not in str(r.to_json())


def test_a_suite_that_measured_nothing_or_crashed_fails() -> None:
    assert not report().passed
    r = report()
    r.figure("kills", 1000, "≥ 1,000", met=True)
    r.error = "Traceback ..."
    assert not r.passed


def test_a_short_secret_is_found_as_a_word_not_inside_other_digits() -> None:
    assert contains_secret(b"typed 4711 at the prompt", b"4711")
    assert not contains_secret(b"port 47115 at 14:47:11", b"4711")
    assert contains_secret(b"x-Secret-42-y", b"Secret-42")


def test_the_page_shows_each_figure_next_to_its_target_and_every_leak() -> None:
    r = report()
    r.figure("corrupt states", 0, "0", met=True)
    r.figure("idle RSS", "45 MB", "≤ 30 MB", met=False, cause="imports take 31 MB")
    r.scan("pin", {"PIN": "12345678"}, {"log": "12345678"})
    again = Report.from_json(r.to_json())
    page = render([("1. Demo", again)], "short", 60.0)
    assert "| corrupt states | 0 | 0 | met |" in page
    assert "| idle RSS | 45 MB | ≤ 30 MB | missed, explained |" in page
    assert "- **idle RSS**: imports take 31 MB" in page
    assert "| 1. Demo | **failed** |" in page
    assert "- PIN in log" in page
