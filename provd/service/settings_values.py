"""One setting's raw TOML value → the typed, checked value `Settings` holds.

`convert` turns a value into the dataclass field's type; `CHECKS` then checks what the type
cannot say (ranges, addresses, URLs). Both raise `InvalidValue` saying what was expected; the
loader adds the file and line.
"""

from __future__ import annotations

import ipaddress
import re
import types
import typing
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from provd.service.settings_model import DEFAULT_SERVER_PATH, DEFAULT_SERVER_PORT, UdevRule
from provd.wpi.contactme import split_host_port


class InvalidValue(Exception):
    """A value check failed; the builder adds where."""


def unknown_name(what: str, name: str, known: Mapping[str, Any]) -> str:
    """`unknown setting 'prot' (did you mean 'port'?)`: a name not in `known`, with a hint."""
    import difflib  # noqa: PLC0415 - only a mistake needs it; provd's start-up does not

    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


# --- value checks (each returns the value to keep, or raises InvalidValue) --------------------

Check = Callable[[Any], Any]


def _range(low: float, high: float | None = None) -> Check:
    def check(value: Any) -> Any:
        if value < low or (high is not None and value > high):
            raise InvalidValue(f"must be {low}..{high}" if high is not None else f"must be ≥ {low}")
        return value

    return check


def _positive(value: Any) -> Any:
    if not value > 0:
        raise InvalidValue("must be greater than 0")
    return value


_port = _range(1, 65535)
_listen_port = _range(0, 65535)  # 0: any free port (tests, labs)


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidValue(f"{value!r} is not an IP address") from None


def _ip_or_empty(value: str) -> str:
    return _ip(value) if value else value


def _mac_or_empty(value: str) -> str:
    if value and not re.fullmatch(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}", value):
        raise InvalidValue(f"{value!r} is not a MAC address like 00:1A:E8:12:34:56")
    return value


def _e164_or_empty(value: str) -> str:
    if value and not re.fullmatch(r"\+?[0-9]{1,32}", value):
        raise InvalidValue(f"{value!r} is not a telephone number (digits, optional leading +)")
    return value


def _server_url(value: str) -> str:
    """Complete and check the server URL (spec §1 [B]); "" means no server configured."""
    if not value:
        return value
    text = value if "://" in value else "https://" + value
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidValue(f"{value!r} is not a URL: {exc}") from None
    if parts.scheme != "https":
        raise InvalidValue(f"{value!r}: the XML channel is HTTPS only (spec §1)")
    if not parts.hostname or parts.username or parts.password:
        raise InvalidValue(f"{value!r} needs a host and no user name or password")
    if port == 0:
        raise InvalidValue(f"{value!r}: port must be 1..65535")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{port or DEFAULT_SERVER_PORT}"
    path = parts.path if parts.path not in ("", "/") else DEFAULT_SERVER_PATH
    return urlunsplit(("https", netloc, path, parts.query, ""))


def _poll_url(value: str) -> str:
    if not value:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidValue(f"{value!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue(f"{value!r} must be an http:// or https:// URL with a host (spec §4.2)")
    return value


def _redirect_targets(value: tuple[str, ...]) -> tuple[str, ...]:
    for target in value:
        try:
            split_host_port(target)
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None
    return value


def _item_names(value: tuple[str, ...]) -> tuple[str, ...]:
    for name in value:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise InvalidValue(f"{name!r} is not an item name")
    return value


def _command(value: tuple[str, ...]) -> tuple[str, ...]:
    if any(not arg for arg in value):
        raise InvalidValue("a command is a list of non-empty strings")
    return value


def _sizes(value: Mapping[str, int]) -> Mapping[str, int]:
    for name, size in value.items():
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise InvalidValue(f"size of {name!r} must be a positive integer")
    return value


def _subtable(table: Mapping[str, Any], keys: Mapping[str, type]) -> Mapping[str, Any]:
    for key, value in table.items():
        if key not in keys:
            raise InvalidValue(unknown_name("key", key, keys) + f" (known: {', '.join(keys)})")
        if not isinstance(value, keys[key]):
            raise InvalidValue(f"{key} must be {_TYPE_NAMES.get(keys[key], 'a table')}")
        if isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
            raise InvalidValue(f"{key} maps names to strings")
    return table


#: Value checks beyond the type, by setting.
CHECKS: dict[str, Check] = {
    "server.url": _server_url,
    "server.secure-port": _port,
    "tls.cert-expiry-warn-days": _range(0),
    "contact-me.listen": _ip,
    "contact-me.port": _listen_port,
    "contact-me.contact-gap": _range(0),
    "contact-me.allow-redirect": _redirect_targets,
    "poll.url": _poll_url,
    "poll.interval": _positive,
    "retry.m": _positive,
    "retry.k": _range(1000),
    "retry.cap": _positive,
    "timeouts.connect": _positive,
    "timeouts.response": _positive,
    "timeouts.interaction": _positive,
    "protocol.max-message": _range(1024),
    "protocol.max-body": _range(4096),
    "changes.debounce": _range(0),
    "files.max-size": _positive,
    "files.type-limits": _sizes,
    "files.quota": _positive,
    "files.software-max-size": _positive,
    "device.mac-addr": _mac_or_empty,
    "device.ip-address": _ip_or_empty,
    "device.e164": _e164_or_empty,
    "hooks.timeout": _positive,
    "hooks.installer-command": _command,
    "items.dhcp-locked": _item_names,
    "ui.timeout": _range(0),
    "ui.evdev": lambda table: _subtable(table, {"name-match": str, "device": str, "keymap": dict}),
    "ui.display": lambda table: _subtable(table, {"path": str}),
    "ui.console": lambda table: _subtable(table, {"tty": str}),
}


_SCALARS: dict[Any, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (int, float),
    str: (str,),
}
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def convert(hint: Any, value: Any) -> Any:
    """A raw TOML value → the dataclass field's type, or `InvalidValue` saying what was expected."""
    if hint in _SCALARS:
        accepted = _SCALARS[hint]
        if isinstance(value, bool) != (hint is bool) or not isinstance(value, accepted):
            raise InvalidValue(f"must be {_TYPE_NAMES[hint]}, not {_describe(value)}")
        return float(typing.cast(float, value)) if hint is float else value
    if hint is Path or hint == (Path | None):
        if not isinstance(value, str):
            raise InvalidValue(f"must be a path (a string), not {_describe(value)}")
        if not value:
            if hint is Path:
                raise InvalidValue("must not be empty")
            return None
        return Path(value)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        choices = [member.value for member in hint]
        if value not in choices:
            raise InvalidValue(f"must be one of {', '.join(choices)}, not {value!r}")
        return hint(value)
    if hint is Any:
        return value
    if hint is UdevRule:
        return _udev_rule(value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise InvalidValue(f"must be a list, not {_describe(value)}")
        return tuple(convert(args[0], element) for element in value)
    if origin is Mapping:
        if not isinstance(value, dict):
            raise InvalidValue(f"must be a table, not {_describe(value)}")
        return types.MappingProxyType({str(k): convert(args[1], v) for k, v in value.items()})
    raise AssertionError(f"no conversion for {hint!r}")


def _udev_rule(value: Any) -> UdevRule:
    if not isinstance(value, dict):
        raise InvalidValue(f"a rule is a table {{item, subsystem, match}}, not {_describe(value)}")
    unknown = set(value) - {"item", "subsystem", "match"}
    if unknown or "item" not in value or "subsystem" not in value:
        raise InvalidValue("a rule has keys item, subsystem and optionally match")
    match = convert(Mapping[str, str], value.get("match", {}))
    return UdevRule(
        item=convert(str, value["item"]), subsystem=convert(str, value["subsystem"]), match=match
    )


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"
