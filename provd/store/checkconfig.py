"""Checks behind `provd check-config`: is the item catalog loadable and sound?

Every problem is one line naming the file and line (`path:line: message`), the
form editors and CI logs link to. The check never raises for a bad catalog: a
broken drop-in is reported, not fatal, so one run lists everything to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from provd.store.catalog import Catalog, collect_catalog, dropin_paths


def catalog_files(paths: Sequence[Path]) -> list[Path]:
    """The catalog files named by `paths`: a file as is, a directory as its drop-ins
    (`*.toml`, lexical order), in the order given."""
    files: list[Path] = []
    for path in paths:
        files += dropin_paths(path) if path.is_dir() else [path]
    return files


def check_catalog(paths: Sequence[Path]) -> list[str]:
    """Every problem of the catalog made of `paths` (files and drop-in directories,
    later wins), one `path:line: message` line each; empty when the catalog is sound."""
    files = catalog_files(paths)
    if not files:
        return ["no catalog file given"]
    catalog, problems = collect_catalog(files)
    lines = [str(problem) for problem in problems]
    if catalog is not None:
        lines += _advice(catalog, files[0])
    return lines


def _advice(catalog: Catalog, shipped: Path) -> list[str]:
    """Sound but suspicious: what the protocol itself needs must be in the catalog."""
    lines: list[str] = []
    # [G p.27] the first message carries at least these three.
    for name in ("contact-me-uri", "mac-addr", "e164"):
        spec = catalog.get(name)
        if spec is None or spec.basic is None:
            lines.append(f"{shipped}:1: item {name!r} must be a basic item [G p.27]")
    for name in ("cleanup-reason", "goto-secure-mode"):
        if name not in catalog:
            lines.append(f"{shipped}:1: item {name!r} is missing (spec §3.4, §7)")
    return lines
