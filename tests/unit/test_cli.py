"""`provd check-config`: settings and the item catalog, as an integrator runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from provd.cli import provd_main

CATALOG = Path(__file__).resolve().parents[2] / "config" / "items.toml"


def run(tmp_path: Path, *overrides: str) -> int:
    config = tmp_path / "provd.toml"
    config.write_text("", encoding="utf-8")
    args = ["check-config", "--config", str(config)]
    for override in overrides:
        args += ["--set", override]
    return provd_main(args)


def test_a_broken_catalog_drop_in_fails_even_when_the_settings_only_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No server and no MAC: the settings give warnings, not errors.
    dropins = tmp_path / "items.d"
    dropins.mkdir()
    (dropins / "50-bad.toml").write_text('[item."x"]\ntype = "no-such-type"\n', encoding="utf-8")
    code = run(tmp_path, f"paths.catalog={CATALOG}", f"paths.catalog-dropins={dropins}")
    out = capsys.readouterr().out
    assert code == 1
    assert "warning:" in out
    assert "error: " in out and "50-bad.toml:2: item 'x'" in out


def test_warnings_alone_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(tmp_path, f"paths.catalog={CATALOG}", f"paths.catalog-dropins={tmp_path}")
    assert code == 0
    assert "settings and item catalog OK (with warnings)" in capsys.readouterr().out
