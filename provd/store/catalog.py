"""The item catalog: which items exist and what values they accept (spec §8.1 [B]).

The catalog is data: a shipped TOML file (`config/items.toml`) plus drop-ins
(`items.d/*.toml`, lexical order, later wins) with which an integrator adds items or
overrides single fields of shipped ones. Loading checks every entry; a problem is a
:class:`CatalogError` naming the file and line, so `provd check-config` can point at it.

An entry is an `ItemSpec` (`provd.store.itemspec`); turning one entry's merged fields into a
checked `ItemSpec` is `provd.store.catalog_entry`'s.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from provd.store.catalog_entry import ENTRY_FIELDS, EntryError, build_spec
from provd.store.itemspec import ItemSpec

#: The catalog format this code reads (the `format` key of a catalog file).
CATALOG_FORMAT = 1


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """One problem in a catalog file: where it is and what is wrong."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class CatalogError(Exception):
    """The catalog cannot be loaded; `problems` says where and why (file and line)."""

    def __init__(self, problems: Sequence[CatalogProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class Catalog:
    """The items provd knows, in catalog order (shipped file first, then drop-ins)."""

    def __init__(self, specs: Iterable[ItemSpec], sources: Sequence[Path] = ()) -> None:
        self._specs: Mapping[str, ItemSpec] = MappingProxyType({s.name: s for s in specs})
        self._order: Mapping[str, int] = MappingProxyType(
            {name: position for position, name in enumerate(self._specs)}
        )
        self._basic = tuple(
            sorted((s for s in self._specs.values() if s.basic is not None), key=_basic_key)
        )
        self._inventory = tuple(s for s in self._specs.values() if s.inventory)
        #: The files this catalog was loaded from, in load order.
        self.sources = tuple(sources)

    def get(self, name: str) -> ItemSpec | None:
        """The entry called `name` (names are case-sensitive), or None."""
        return self._specs.get(name)

    def position(self, name: str) -> int:
        """The rank of `name` in catalog order; unknown names sort last."""
        return self._order.get(name, len(self._order))

    def basic_items(self) -> tuple[ItemSpec, ...]:
        """The basic items, in the order of the first message (spec §3.2)."""
        return self._basic

    def inventory_items(self) -> tuple[ItemSpec, ...]:
        """The inventory items (spec §3.5), in catalog order."""
        return self._inventory

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ItemSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)


def _basic_key(spec: ItemSpec) -> int:
    assert spec.basic is not None
    return spec.basic


def dropin_paths(directory: Path) -> list[Path]:
    """The drop-in files of `directory` (`*.toml`), in lexical order; none if it is absent."""
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.glob("*.toml") if path.is_file())


def load_catalog(shipped: Path, dropin_dir: Path | None = None) -> Catalog:
    """Load the shipped catalog and the drop-ins of `dropin_dir`, or raise CatalogError."""
    paths = [shipped]
    if dropin_dir is not None:
        paths += dropin_paths(dropin_dir)
    return load_catalog_files(paths)


def load_catalog_files(paths: Sequence[Path]) -> Catalog:
    """Load catalog files in order (later wins, field by field), or raise CatalogError."""
    catalog, problems = collect_catalog(paths)
    if problems:
        raise CatalogError(problems)
    assert catalog is not None
    return catalog


def collect_catalog(paths: Sequence[Path]) -> tuple[Catalog | None, list[CatalogProblem]]:
    """Load what can be loaded and every problem found; the catalog is None on problems."""
    problems: list[CatalogProblem] = []
    sources: list[_Source] = []
    for path in paths:
        source = _read(path, problems)
        if source is not None:
            sources.append(source)
    specs = _merge(sources, problems)
    if problems:
        return None, problems
    return Catalog(specs, [source.path for source in sources]), problems


# --------------------------------------------------------------------------- reading files


@dataclass(slots=True)
class _Source:
    """One parsed catalog file, with the lines of its entries for error messages."""

    path: Path
    text: str
    items: dict[str, dict[str, Any]]

    def line_of(self, name: str, field: str | None = None) -> int:
        """The line of `[item."name"]` (or of `field` inside it); 1 when not found."""
        lines = self.text.splitlines()
        header = _header_pattern(name)
        start: int | None = None
        for number, line in enumerate(lines, start=1):
            if header.match(line):
                start = number
                break
        if start is None:
            for number, line in enumerate(lines, start=1):
                if name in line:
                    return number
            return 1
        if field is None:
            return start
        key = re.compile(rf"""^\s*(?:{re.escape(field)}|"{re.escape(field)}")\s*=""")
        for number in range(start + 1, len(lines) + 1):
            line = lines[number - 1]
            if line.lstrip().startswith("["):
                break
            if key.match(line):
                return number
        return start


def _header_pattern(name: str) -> re.Pattern[str]:
    quoted = re.escape(name)
    return re.compile(rf"""^\s*\[\s*item\s*\.\s*(?:"{quoted}"|'{quoted}'|{quoted})\s*\]""")


_SYNTAX_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def _read(path: Path, problems: list[CatalogProblem]) -> _Source | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(CatalogProblem(path, 1, f"cannot read catalog file ({exc})"))
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _SYNTAX_LINE.search(message)
        line = int(found.group(1)) if found else 1
        message = _SYNTAX_LINE.sub("", message).strip()
        problems.append(CatalogProblem(path, line, f"TOML syntax error: {message}"))
        return None
    source = _Source(path=path, text=text, items={})
    for key, value in data.items():
        if key == "format":
            if type(value) is not int or value != CATALOG_FORMAT:
                problems.append(
                    CatalogProblem(
                        path,
                        _key_line(text, key),
                        f"unsupported catalog format {value!r} (this provd reads {CATALOG_FORMAT})",
                    )
                )
        elif key == "item":
            if not isinstance(value, dict):
                problems.append(CatalogProblem(path, _key_line(text, key), "item is not a table"))
                continue
            for name, fields in value.items():
                if not isinstance(fields, dict):
                    line = source.line_of(name)
                    problems.append(CatalogProblem(path, line, f"item {name!r} is not a table"))
                    continue
                source.items[name] = fields
        else:
            problems.append(
                CatalogProblem(path, _key_line(text, key), f"unknown top-level key {key!r}")
            )
    return source


def _key_line(text: str, key: str) -> int:
    pattern = re.compile(rf"""^\s*\[?\s*(?:{re.escape(key)}|"{re.escape(key)}")\b""")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return 1


# --------------------------------------------------------------------------- merging entries


def _merge(sources: Sequence[_Source], problems: list[CatalogProblem]) -> list[ItemSpec]:
    """Merge the entries of all sources field by field (later wins), then build each."""
    merged: dict[str, dict[str, Any]] = {}
    last: dict[str, _Source] = {}  # the last file that touched an entry, for messages
    for source in sources:
        for name, fields in source.items.items():
            bad = sorted(set(fields) - ENTRY_FIELDS)
            if bad:
                line = source.line_of(name, bad[0])
                problems.append(
                    CatalogProblem(source.path, line, f"item {name!r}: unknown field {bad[0]!r}")
                )
                continue
            if name not in merged and "type" not in fields:
                line = source.line_of(name)
                problems.append(
                    CatalogProblem(source.path, line, f"item {name!r}: new item without a type")
                )
                continue
            merged.setdefault(name, {}).update(fields)
            last[name] = source
    specs: list[ItemSpec] = []
    for name, fields in merged.items():
        try:
            specs.append(build_spec(name, fields))
        except EntryError as exc:
            source = last[name]
            line = source.line_of(name, exc.field if exc.field in source.items[name] else None)
            problems.append(CatalogProblem(source.path, line, f"item {name!r}: {exc}"))
    _check_across(specs, last, problems)
    return specs


def _check_across(
    specs: Sequence[ItemSpec], last: Mapping[str, _Source], problems: list[CatalogProblem]
) -> None:
    """Checks that need the whole catalog: basic positions, names in `requires`."""
    names = {spec.name for spec in specs}
    positions: dict[int, str] = {}
    for spec in specs:
        source = last[spec.name]
        if spec.basic is not None:
            if spec.basic in positions:
                problems.append(
                    CatalogProblem(
                        source.path,
                        source.line_of(spec.name, "basic"),
                        f"item {spec.name!r}: basic position {spec.basic} is also "
                        f"{positions[spec.basic]!r}'s",
                    )
                )
            positions[spec.basic] = spec.name
        for required, _value in spec.requires:
            if required not in names:
                problems.append(
                    CatalogProblem(
                        source.path,
                        source.line_of(spec.name, "requires"),
                        f"item {spec.name!r}: requires unknown item {required!r}",
                    )
                )
