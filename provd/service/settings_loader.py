"""Reading the layers of settings and building `Settings` from them.

The settings file and its drop-ins are read with tomllib; a value's line is looked up in the
file's text so that every problem names file and line. `--set group.key=value` overrides come
last. Tables merge key by key across layers; `build` then converts and checks every value
(`provd.service.settings_values`) and settles relative paths under their base directory.
"""

from __future__ import annotations

import functools
import re
import tomllib
import typing
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from provd.service.settings_model import DefaultTrust, Settings
from provd.service.settings_values import CHECKS, InvalidValue, convert, unknown_name


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the settings, located as well as it can be."""

    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = self.file or ""
        if self.file and self.line:
            where = f"{self.file}:{self.line}"
        parts = [p for p in (where, self.key) if p]
        return ": ".join([*parts, self.message])


# --- the settings as TOML names them ----------------------------------------------------------


class Schema(NamedTuple):
    """Every setting as the files name it (`group.key`), with its type and default."""

    #: group key → (attribute of `Settings`, dataclass), in declaration order.
    groups: dict[str, tuple[str, type[Any]]]
    #: group key → key → (attribute, type), in declaration order.
    group_keys: dict[str, dict[str, tuple[str, Any]]]
    #: `group.key` → default.
    defaults: dict[str, Any]
    #: `group.key` → type.
    hints: dict[str, Any]


@functools.cache
def schema() -> Schema:
    """The schema, built once on first use rather than at import: resolving the dataclasses'
    type hints (`typing.get_type_hints`) takes a millisecond that importing need not pay."""
    settings_hints = typing.get_type_hints(Settings)
    groups = {
        _toml_key(f.name): (f.name, settings_hints[f.name])
        for f in fields(Settings)
        if f.name != "sources"
    }
    group_keys = {group: _group_keys(cls) for group, (_, cls) in groups.items()}
    defaults = {
        f"{group}.{key}": _default_of(cls, name)
        for group, (_, cls) in groups.items()
        for key, (name, _) in group_keys[group].items()
    }
    hints = {
        f"{group}.{key}": hint for group in groups for key, (_, hint) in group_keys[group].items()
    }
    return Schema(groups=groups, group_keys=group_keys, defaults=defaults, hints=hints)


def _toml_key(name: str) -> str:
    return name.replace("_", "-")


def _group_keys(cls: type[Any]) -> dict[str, tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    return {_toml_key(f.name): (f.name, hints[f.name]) for f in fields(cls)}


def _default_of(cls: type[Any], name: str) -> Any:
    spec = next(f for f in fields(cls) if f.name == name)
    if spec.default is not MISSING:
        return spec.default
    assert spec.default_factory is not MISSING
    return spec.default_factory()


# --- the layers -------------------------------------------------------------------------------

#: Where a raw value came from: file (or "--set ..."), line.
_Origin = tuple[str, int | None]


@dataclass
class Layers:
    """The raw values read so far, where each came from, and every problem found."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, _Origin] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def set(self, group: str, key: str, value: Any, origin: _Origin) -> None:
        table = self.values.setdefault(group, {})
        table[key] = _merged(table[key], value) if key in table else value
        self.origin[f"{group}.{key}"] = origin

    def problem(self, message: str, origin: _Origin | None, key: str | None = None) -> None:
        file, line = origin if origin else (None, None)
        self.problems.append(Problem(message, file=file, line=line, key=key))


def _merged(old: Any, new: Any) -> Any:
    """Tables merge key by key at every depth (`[ui.evdev]` in a drop-in keeps the file's
    other `[ui.evdev]` keys); anything else, lists included, is replaced."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: _merged(old[k], v) if k in old else v for k, v in new.items()}}
    return new


def read_file(layers: Layers, path: Path) -> None:
    """Add the settings file `path` to `layers`, or the problems with it."""
    name = str(path)
    layers.sources.append(name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        layers.problem("no such settings file", (name, None))
        return
    except (OSError, UnicodeDecodeError) as exc:
        layers.problem(f"cannot read: {exc}", (name, None))
        return
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        line = int(found.group(1)) if found else None
        layers.problem(f"TOML syntax: {message}", (name, line))
        return
    lines = _key_lines(text)
    known = schema()
    for group, table in data.items():
        where: _Origin = (name, lines.get(group))
        if group not in known.groups:
            layers.problem(unknown_name("setting group", group, known.groups), where, f"[{group}]")
            continue
        if not isinstance(table, dict):
            layers.problem("must be a table of settings", where, group)
            continue
        for key, value in table.items():
            dotted = f"{group}.{key}"
            at: _Origin = (name, lines.get(dotted, lines.get(group)))
            if key not in known.group_keys[group]:
                layers.problem(unknown_name("setting", key, known.group_keys[group]), at, dotted)
                continue
            layers.set(group, key, value, at)


def apply_override(layers: Layers, arg: str) -> None:
    """Add one `--set group.key=value` to `layers`, or the problem with it."""
    origin: _Origin = (f"--set {arg}", None)
    if "--set" not in layers.sources:
        layers.sources.append("--set")
    dotted, sep, text = arg.partition("=")
    group, dot, key = dotted.strip().partition(".")
    if not sep or not dot:
        layers.problem("expected group.key=value, e.g. contact-me.port=18085", origin)
        return
    known = schema()
    if group not in known.groups:
        layers.problem(unknown_name("setting group", group, known.groups), origin)
        return
    if key not in known.group_keys[group]:
        layers.problem(unknown_name("setting", key, known.group_keys[group]), origin)
        return
    layers.set(group, key, _override_value(text, known.group_keys[group][key][1]), origin)


def _override_value(text: str, hint: Any) -> Any:
    """A TOML value when `text` is one, else the string; shaped for string and list settings."""
    try:
        value: Any = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    if _is_stringish(hint) and not isinstance(value, str):
        return text  # `device.e164=4989700` is a string setting, not the integer
    if typing.get_origin(hint) is tuple and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _is_stringish(hint: Any) -> bool:
    if hint in (str, Path) or hint == (Path | None):
        return True
    return isinstance(hint, type) and issubclass(hint, StrEnum)


def _key_lines(text: str) -> dict[str, int]:
    """`group` and `group.key` → first line (1-based) where the file sets them.

    A line scanner, not a parser: it runs after tomllib accepted the text, and only has to
    point a person at the right line. Multi-line strings are skipped.
    """
    lines: dict[str, int] = {}
    table = ""
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if line.count(in_string) % 2:
                in_string = None
            continue
        header = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.\-\s]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            table = re.sub(r"\s*\.\s*", ".", header.group(1))
            lines.setdefault(table, number)
            continue
        key = re.match(r"\s*([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*=(.*)$", line)
        if key:
            dotted = re.sub(r"\s*\.\s*", ".", key.group(1))
            full = f"{table}.{dotted}" if table else dotted
            lines.setdefault(full, number)
            if not table and "." in dotted:
                lines.setdefault(dotted.split(".")[0], number)
            for quote in ('"""', "'''"):
                if key.group(2).count(quote) % 2:
                    in_string = quote
    return lines


# --- building Settings ------------------------------------------------------------------------

#: Paths that follow another path: unset, or relative, they lie under it.
_BASES: dict[str, str] = {
    "paths.secure-dir": "paths.state-dir",
    "paths.files-dir": "paths.state-dir",
    "paths.staging-dir": "paths.state-dir",
    "control.socket": "paths.runtime-dir",
}


def build(layers: Layers) -> Settings:
    """The defaults overlaid with `layers`, converted and checked; problems go to `layers`."""
    known = schema()
    # The paths others rest on are settled first.
    keys = sorted(known.defaults, key=lambda dotted: dotted not in _BASES.values())
    values: dict[str, Any] = {}
    for dotted in keys:
        default = known.defaults[dotted]
        base = _BASES.get(dotted)
        raw = layers.values.get(dotted.partition(".")[0], {})
        key = dotted.partition(".")[2]
        # Unset, a path that follows its base moves with it: <state-dir>/secure.
        values[dotted] = (
            values[base] / default.relative_to(known.defaults[base]) if base else default
        )
        if key not in raw:
            continue
        try:
            value = convert(known.hints[dotted], raw[key])
            if isinstance(value, Path) and not value.is_absolute():
                if base is None:
                    raise InvalidValue(f"{str(value)!r} must be an absolute path")
                value = values[base] / value
            check = CHECKS.get(dotted)
            values[dotted] = check(value) if check else value
        except InvalidValue as exc:
            layers.problem(str(exc), layers.origin.get(dotted), dotted)
    groups = {
        attr: cls(
            **{name: values[f"{group}.{key}"] for key, (name, _) in known.group_keys[group].items()}
        )
        for group, (attr, cls) in known.groups.items()
    }
    settings = Settings(**groups, sources=tuple(layers.sources))
    _cross_checks(settings, layers)
    return settings


def _cross_checks(settings: Settings, layers: Layers) -> None:
    if settings.tls.default_trust is DefaultTrust.CA and settings.tls.ca_file is None:
        origin = layers.origin.get("tls.default-trust")
        layers.problem("'ca' needs tls.ca-file (spec §7.4)", origin, "tls.default-trust")
    if settings.retry.cap < settings.retry.m:
        origin = layers.origin.get("retry.cap", layers.origin.get("retry.m"))
        layers.problem("cap must not be below m (spec §3.1)", origin, "retry.cap")
