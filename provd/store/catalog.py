"""The item catalog: which items exist and what values they accept (spec §8.1 [B]).

The catalog is data: a shipped TOML file (`config/items.toml`) plus drop-ins
(`items.d/*.toml`, lexical order, later wins) with which an integrator adds items or
overrides single fields of shipped ones. Loading checks every entry; a problem is a
:class:`CatalogError` naming the file and line, so `provd check-config` can point at it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from provd.wpi.model import Action

#: The catalog format this code reads (the `format` key of a catalog file).
CATALOG_FORMAT = 1
#: uri schemes accepted when an entry names none (spec §1, DHCP's `sdlp://` [X]).
DEFAULT_SCHEMES = ("http", "https", "ftp", "sdlp")


class ItemType(StrEnum):
    """What an item's text value must look like (spec §8.1)."""

    STRING = "string"
    INT = "int"
    BOOL = "bool"
    ENUM = "enum"
    IP = "ip"
    HOST = "host"
    MAC = "mac"
    URI = "uri"
    PEM = "pem"
    BASE64 = "base64"
    PKCS12 = "pkcs12"  # Base64 PKCS#12, or a PEM bundle (spec §7.1 [B])
    DATE = "date"  # DD:MM:YYYY [G p.54]
    TIME = "time"  # HH:MM:SS [G p.54]
    E164 = "e164"
    DIGITS = "digits"


class Access(StrEnum):
    """Who may read and write an item (spec §8.1)."""

    RW = "rw"
    RO = "ro"  # a server write is answered `read only`
    WO = "wo"  # stored, never read back


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemSpec:
    """One catalog entry. Immutable; see `config/items.toml` for the meaning of each field."""

    name: str
    type: ItemType
    access: Access = Access.RW
    secret: bool = False
    default: str | None = None
    nullable: bool = False
    min: int | None = None
    max: int | None = None
    exclude: tuple[int, ...] = ()
    choices: tuple[str, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    indexed: bool = False
    min_index: int = 0
    max_index: int | None = None
    index_optional: bool = False
    basic: int | None = None
    inventory: bool = False
    supported: bool = True
    certificate: bool = False
    actions: tuple[str, ...] = ()
    requires: tuple[tuple[str, str], ...] = ()
    special: bool = False
    description: str = ""

    @property
    def readable(self) -> bool:
        """True when the item's value may be sent to the server (not `wo`)."""
        return self.access is not Access.WO

    @property
    def writable(self) -> bool:
        """True when a server may write the item (not `ro`)."""
        return self.access is not Access.RO

    def index_in_range(self, index: int) -> bool:
        """True when `index` lies in the entry's index range."""
        if index < self.min_index:
            return False
        return self.max_index is None or index <= self.max_index


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


def known_actions() -> frozenset[str]:
    """The action names an entry's `actions` may list."""
    return frozenset(action.value for action in Action)


# --------------------------------------------------------------------------- building entries

_BOOL_FIELDS = (
    "secret",
    "nullable",
    "indexed",
    "index_optional",
    "inventory",
    "supported",
    "certificate",
    "special",
)
_INT_FIELDS = ("min", "max", "min_length", "max_length", "min_index", "max_index", "basic")
_FIELDS = frozenset(
    (
        *_BOOL_FIELDS,
        *_INT_FIELDS,
        "type",
        "access",
        "default",
        "exclude",
        "choices",
        "schemes",
        "actions",
        "requires",
        "description",
    )
)


class _EntryError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _merge(sources: Sequence[_Source], problems: list[CatalogProblem]) -> list[ItemSpec]:
    """Merge the entries of all sources field by field (later wins), then build each."""
    merged: dict[str, dict[str, Any]] = {}
    last: dict[str, _Source] = {}  # the last file that touched an entry, for messages
    for source in sources:
        for name, fields in source.items.items():
            bad = sorted(set(fields) - _FIELDS)
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
            specs.append(_build(name, fields))
        except _EntryError as exc:
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


def _want_bool(fields: Mapping[str, Any], key: str) -> bool:
    value = fields.get(key, key == "supported")
    if type(value) is not bool:
        raise _EntryError(f"{key} must be true or false, not {value!r}", key)
    return value


def _want_int(fields: Mapping[str, Any], key: str) -> int | None:
    value = fields.get(key)
    if value is not None and type(value) is not int:
        raise _EntryError(f"{key} must be an integer, not {value!r}", key)
    return value


def _want_strings(fields: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _EntryError(f"{key} must be a list of strings", key)
    return tuple(value)


def _text(value: object, key: str) -> str:
    """A TOML scalar as item text: booleans as `true`/`false` (values are text, spec §2.3)."""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, str):
        return str(value)
    raise _EntryError(f"{key} must be a string, an integer or a boolean, not {value!r}", key)


def _build(name: str, fields: Mapping[str, Any]) -> ItemSpec:
    """One checked ItemSpec from merged fields, or _EntryError naming the field."""
    try:
        item_type = ItemType(fields["type"])
    except ValueError:
        known = ", ".join(t.value for t in ItemType)
        raise _EntryError(f"unknown type {fields['type']!r} (known: {known})", "type") from None
    try:
        access = Access(fields.get("access", "rw"))
    except ValueError:
        raise _EntryError(
            f"access must be rw, ro or wo, not {fields['access']!r}", "access"
        ) from None
    flags = {key: _want_bool(fields, key) for key in _BOOL_FIELDS}
    ints = {key: _want_int(fields, key) for key in _INT_FIELDS}
    description = fields.get("description", "")
    if not isinstance(description, str):
        raise _EntryError("description must be a string", "description")
    spec = ItemSpec(
        name=name,
        type=item_type,
        access=access,
        secret=flags["secret"],
        default=None if "default" not in fields else _text(fields["default"], "default"),
        nullable=flags["nullable"],
        min=ints["min"],
        max=ints["max"],
        exclude=_exclude(fields),
        choices=_choices(fields, item_type),
        min_length=ints["min_length"],
        max_length=ints["max_length"],
        schemes=_schemes(fields, item_type),
        indexed=flags["indexed"],
        min_index=ints["min_index"] if ints["min_index"] is not None else 0,
        max_index=ints["max_index"],
        index_optional=flags["index_optional"],
        basic=ints["basic"],
        inventory=flags["inventory"],
        supported=flags["supported"],
        certificate=flags["certificate"],
        actions=_actions(fields),
        requires=_requires(fields),
        special=flags["special"],
        description=description,
    )
    _check_limits(spec, fields)
    return spec


def _exclude(fields: Mapping[str, Any]) -> tuple[int, ...]:
    value = fields.get("exclude", [])
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise _EntryError("exclude must be a list of integers", "exclude")
    return tuple(value)


def _choices(fields: Mapping[str, Any], item_type: ItemType) -> tuple[str, ...]:
    value = fields.get("choices")
    if value is None:
        if item_type is ItemType.ENUM:
            raise _EntryError("an enum needs choices", "choices")
        return ()
    if item_type is ItemType.ENUM:
        choices = _want_strings(fields, "choices")
    elif item_type is ItemType.INT:
        if not isinstance(value, list) or not all(type(v) is int for v in value):
            raise _EntryError("choices of an int must be integers", "choices")
        choices = tuple(str(v) for v in value)
    else:
        raise _EntryError(f"choices do not apply to type {item_type.value}", "choices")
    if not choices:
        raise _EntryError("choices must not be empty", "choices")
    return choices or ()


def _schemes(fields: Mapping[str, Any], item_type: ItemType) -> tuple[str, ...]:
    schemes = _want_strings(fields, "schemes")
    if schemes is None:
        return DEFAULT_SCHEMES
    if item_type is not ItemType.URI:
        raise _EntryError(f"schemes do not apply to type {item_type.value}", "schemes")
    if not schemes:
        raise _EntryError("schemes must not be empty", "schemes")
    return tuple(scheme.lower() for scheme in schemes)


def _actions(fields: Mapping[str, Any]) -> tuple[str, ...]:
    actions = _want_strings(fields, "actions") or ()
    unknown = [action for action in actions if action not in known_actions()]
    if unknown:
        raise _EntryError(f"unknown action {unknown[0]!r} in actions", "actions")
    return actions


def _requires(fields: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    value = fields.get("requires", {})
    if not isinstance(value, dict):
        raise _EntryError('requires must be a table such as { "goto-secure-mode" = "pin" }')
    return tuple((str(name), _text(v, "requires")) for name, v in value.items())


def _check_limits(spec: ItemSpec, fields: Mapping[str, Any]) -> None:
    """Limits that fit the type and each other, and a default the entry itself accepts."""
    from provd.store.validate import check_value  # noqa: PLC0415 - validate imports this module

    if spec.type is not ItemType.INT:
        for key in ("min", "max", "exclude"):
            if key in fields:
                raise _EntryError(f"{key} applies to int items only", key)
    if spec.min is not None and spec.max is not None and spec.min > spec.max:
        raise _EntryError(f"min ({spec.min}) > max ({spec.max})", "min")
    for key in ("min_length", "max_length"):
        value = getattr(spec, key)
        if value is not None and value < 0:
            raise _EntryError(f"{key} must not be negative", key)
    if (
        spec.min_length is not None
        and spec.max_length is not None
        and spec.min_length > spec.max_length
    ):
        raise _EntryError(
            f"min_length ({spec.min_length}) > max_length ({spec.max_length})", "min_length"
        )
    if not spec.indexed:
        for key in ("min_index", "max_index", "index_optional"):
            if key in fields:
                raise _EntryError(f"{key} applies to indexed items only", key)
    if spec.min_index < 0:
        raise _EntryError("min_index must not be negative", "min_index")
    if spec.max_index is not None and spec.min_index > spec.max_index:
        raise _EntryError(
            f"min_index ({spec.min_index}) > max_index ({spec.max_index})", "min_index"
        )
    if spec.basic is not None:
        if spec.basic < 1:
            raise _EntryError("basic positions start at 1", "basic")
        if spec.indexed:
            raise _EntryError("an indexed item cannot be basic", "basic")
        if not spec.readable:
            raise _EntryError("a write-only item cannot be basic", "basic")
    if spec.default is not None and not check_value(spec, spec.default):
        raise _EntryError(
            f"default {spec.default!r} is not a valid {spec.type.value} for this item", "default"
        )
