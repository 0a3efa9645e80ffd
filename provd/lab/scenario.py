"""Scenarios: what the lab server answers on each contact.

A scenario is a list of scripts. Each script applies to an interaction chosen
by its contact number (the n-th interaction the server sees, from 1) or by the
`ReasonForContact` of the phone's first message, and holds the steps that
answer the phone's messages one by one. See `scenarios/README.md` for the file
format; `Scenario.from_dict` takes the same structure as Python data.

Selection for a new interaction: the script with that `contact` number, else
the first with that `reason`, else the first with neither (the default), else
none (the server answers `CleanUp`). A script with a `channel` (`default` or
`secure`, spec §7) applies only to interactions on that port. When a script's
steps run out the server answers `CleanUp`.

The `[secure]` table sets the lab's Secure Mode (`SecureOptions`): the PIN its
`secure-mode-data` is made for, and what it does with a wrong TAN. Item values
may name the lab's bootstrap material with placeholders (`provd.lab.secure`).
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from provd.lab.secure import DEFAULT_PIN, PlaceholderError, placeholders
from provd.wpi.bootstrap import split_pin
from provd.wpi.model import Action, Item, Reason

#: The lab's two ports (spec §1, §7): Default Mode and Secure Mode.
CHANNELS = ("default", "secure")
#: What the lab does when the phone's `bootstrapping-tan` is wrong (spec §7.3 step 4).
WRONG_TAN_ANSWERS = ("clean-up", "ignore")


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One server answer.

    Exactly one of: `action` (a DLS document; any name, known or not), `raw`
    (these bytes as the body, `{nonce}` replaced by the phone's nonce), `empty`
    (HTTP 200 with an empty body), or only `status` (that HTTP status with an
    empty body: 204, 404, 500...). `nonce` overrides the echoed nonce of an
    action document; `delay` waits that many seconds before answering; `close`
    closes the connection after the answer.
    """

    action: str | None = None
    items: tuple[Item, ...] = ()
    raw: bytes | None = None
    empty: bool = False
    status: int = 200
    nonce: str | None = None
    delay: float = 0.0
    close: bool = False
    note: str = ""

    @property
    def ends_interaction(self) -> bool:
        """Whether the phone ends the interaction on this answer (spec §2.3)."""
        if self.status != 200:
            return True  # 204 is an empty answer; anything else a failure [F]
        if self.action is not None:
            return self.action == Action.CLEAN_UP.value
        return self.raw is None  # an empty 200

    def describe(self) -> str:
        """A few words for a log line or a transcript note."""
        if self.action is not None:
            return self.action
        if self.raw is not None:
            return self.note or f"raw document ({len(self.raw)} bytes)"
        if self.empty:
            return "empty 200"
        return f"HTTP {self.status}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """The steps for one kind of interaction."""

    reason: Reason | None = None
    contact: int | None = None
    channel: str | None = None  # None: either port
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SecureOptions:
    """The lab's Secure Mode settings (the `[secure]` table).

    `pin` is what the user types: its password part encrypts `secure-mode-data`, its
    last 3 characters are the TAN the lab expects [G p.67-68]. `wrong_tan` is what the
    lab does when the phone answers `bootstrapping-tan` wrongly: `clean-up` answers
    `CleanUp` with `cleanup-reason` `wrong TAN from device` [G p.31]; `ignore` goes on
    with the script. `client_name` is the common name of the phone's certificate.
    """

    pin: str = DEFAULT_PIN
    wrong_tan: str = "clean-up"
    client_name: str = "provd lab phone"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A named list of scripts."""

    name: str = "unnamed"
    description: str = ""
    scripts: tuple[Script, ...] = ()
    secure: SecureOptions = SecureOptions()

    @property
    def uses_secure_mode(self) -> bool:
        """Whether a script is for the secure port or an item names bootstrap material."""
        return bool(self.placeholders) or any(s.channel == "secure" for s in self.scripts)

    @property
    def placeholders(self) -> set[tuple[str, str]]:
        """Every `(name, variant)` of lab material the scenario's item values name."""
        return {
            found
            for script in self.scripts
            for step in script.steps
            for item in step.items
            for found in placeholders(item.value)
        }

    def script_for(self, contact: int, reason: Reason, channel: str = "default") -> Script | None:
        """The script for the `contact`-th interaction, opened with `reason` on `channel`."""
        for script in self.scripts:
            if script.contact == contact:
                return script
        usable = [s for s in self.scripts if s.channel in (None, channel)]
        for script in usable:
            if script.contact is None and script.reason is reason:
                return script
        for script in usable:
            if script.contact is None and script.reason is None:
                return script
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default_name: str = "unnamed") -> Scenario:
        """Build and validate a scenario from parsed TOML (or the same structure in Python)."""
        _check_keys(data, {"name", "description", "interaction", "secure"}, "scenario")
        name = _string(data.get("name", default_name), "name")
        description = _string(data.get("description", ""), "description")
        raw_scripts = data.get("interaction", [])
        if not isinstance(raw_scripts, list):
            raise ScenarioError("interaction: must be an array of tables ([[interaction]])")
        scripts = tuple(_script(s, f"interaction[{i}]") for i, s in enumerate(raw_scripts))
        seen: set[int] = set()
        for i, script in enumerate(scripts):
            if script.contact is not None:
                if script.contact in seen:
                    raise ScenarioError(f"interaction[{i}]: contact {script.contact} given twice")
                seen.add(script.contact)
        secure = _secure(data.get("secure", {}))
        return cls(name=name, description=description, scripts=scripts, secure=secure)


# --------------------------------------------------------------------------- loading

_SCRIPT_KEYS = {"reason", "contact", "channel", "step"}
_SECURE_KEYS = {"pin", "wrong-tan", "client-name"}
_STEP_KEYS = {
    "action",
    "items",
    "raw",
    "raw-base64",
    "empty",
    "status",
    "nonce",
    "delay",
    "close",
    "note",
    "send-solicited",
    "cleanup-reason",
}
_ITEM_KEYS = {"name", "value", "index"}


def _check_keys(data: object, allowed: set[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: must be a table")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r}")


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: must be a string")
    return value


def _script(data: object, where: str) -> Script:
    _check_keys(data, _SCRIPT_KEYS, where)
    assert isinstance(data, Mapping)
    reason: Reason | None = None
    if "reason" in data:
        text = _string(data["reason"], f"{where}.reason")
        try:
            reason = Reason(text)
        except ValueError:
            choices = ", ".join(r.value for r in Reason)
            raise ScenarioError(f"{where}.reason: {text!r} is not one of {choices}") from None
    contact: int | None = None
    if "contact" in data:
        contact = data["contact"]
        if isinstance(contact, bool) or not isinstance(contact, int) or contact < 1:
            raise ScenarioError(f"{where}.contact: must be a whole number from 1")
    if reason is not None and contact is not None:
        raise ScenarioError(f"{where}: give reason or contact, not both")
    channel: str | None = None
    if "channel" in data:
        channel = _string(data["channel"], f"{where}.channel")
        if channel not in CHANNELS:
            raise ScenarioError(f"{where}.channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list):
        raise ScenarioError(f"{where}.step: must be an array of tables ([[interaction.step]])")
    steps = tuple(_step(s, f"{where}.step[{i}]") for i, s in enumerate(raw_steps))
    return Script(reason=reason, contact=contact, channel=channel, steps=steps)


def _secure(data: object) -> SecureOptions:
    _check_keys(data, _SECURE_KEYS, "secure")
    assert isinstance(data, Mapping)
    options = SecureOptions()
    pin = _string(data.get("pin", options.pin), "secure.pin")
    try:
        split_pin(pin)
    except ValueError as exc:
        raise ScenarioError(f"secure.pin: {exc}") from None
    wrong_tan = _string(data.get("wrong-tan", options.wrong_tan), "secure.wrong-tan")
    if wrong_tan not in WRONG_TAN_ANSWERS:
        choices = ", ".join(WRONG_TAN_ANSWERS)
        raise ScenarioError(f"secure.wrong-tan: {wrong_tan!r} is not one of {choices}")
    client_name = _string(data.get("client-name", options.client_name), "secure.client-name")
    if not client_name.strip():
        raise ScenarioError("secure.client-name: must not be empty")
    return SecureOptions(pin=pin, wrong_tan=wrong_tan, client_name=client_name)


def _step(data: object, where: str) -> Step:
    _check_keys(data, _STEP_KEYS, where)
    assert isinstance(data, Mapping)
    bodies = [k for k in ("action", "raw", "raw-base64", "empty") if k in data]
    if len(bodies) > 1:
        raise ScenarioError(f"{where}: {bodies[0]!r} and {bodies[1]!r} exclude each other")
    if not bodies and "status" not in data:
        raise ScenarioError(f"{where}: needs one of action, raw, raw-base64, empty or status")
    status = data.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ScenarioError(f"{where}.status: must be an HTTP status code (100-599)")
    action: str | None = None
    raw: bytes | None = None
    if "action" in data:
        action = _string(data["action"], f"{where}.action").strip()
        if not action:
            raise ScenarioError(f"{where}.action: must not be empty")
    elif "raw" in data:
        raw = _string(data["raw"], f"{where}.raw").encode("utf-8")
    elif "raw-base64" in data:
        try:
            raw = base64.b64decode(
                _string(data["raw-base64"], f"{where}.raw-base64"), validate=True
            )
        except binascii.Error:
            raise ScenarioError(f"{where}.raw-base64: not valid base64") from None
    empty = data.get("empty", False)
    if not isinstance(empty, bool):
        raise ScenarioError(f"{where}.empty: must be true or false")
    if "empty" in data and not empty:
        raise ScenarioError(f"{where}.empty: write empty = true, or leave it out")
    items = list(_items(data.get("items", []), f"{where}.items"))
    if items and action is None:
        raise ScenarioError(f"{where}.items: only an action step carries items")
    items += _clean_up_items(data, action, where)
    nonce = data.get("nonce")
    if nonce is not None:
        nonce = _string(nonce, f"{where}.nonce")
        if action is None:
            raise ScenarioError(f"{where}.nonce: only an action step has a nonce")
    delay = data.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ScenarioError(f"{where}.delay: must be a number of seconds, 0 or more")
    close = data.get("close", False)
    if not isinstance(close, bool):
        raise ScenarioError(f"{where}.close: must be true or false")
    return Step(
        action=action,
        items=tuple(items),
        raw=raw,
        empty=empty,
        status=status,
        nonce=nonce,
        delay=float(delay),
        close=close,
        note=_string(data.get("note", ""), f"{where}.note"),
    )


def _clean_up_items(data: Mapping[str, Any], action: str | None, where: str) -> list[Item]:
    """`send-solicited` and `cleanup-reason` as CleanUp items [G p.31, p.76]."""
    items: list[Item] = []
    for key in ("send-solicited", "cleanup-reason"):
        if key not in data:
            continue
        if action != Action.CLEAN_UP.value:
            raise ScenarioError(f"{where}.{key}: only a CleanUp step carries it")
        value = data[key]
        if key == "send-solicited":
            if not isinstance(value, bool):
                raise ScenarioError(f"{where}.{key}: must be true or false")
            items.append(Item(name=key, value="true" if value else "false"))
        else:
            items.append(Item(name=key, value=_string(value, f"{where}.{key}")))
    return items


def _value(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            placeholders(value)  # {secure-mode-data:...}: a variant the lab makes
        except PlaceholderError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        return value
    raise ScenarioError(f"{where}: must be a string, number or boolean")


def _items(data: object, where: str) -> list[Item]:
    """Items as an array (of names, or of {name, value, index} tables) or a table name = value."""
    if isinstance(data, Mapping):
        return [
            Item(name=_name(name, where), value=_value(value, f"{where}.{name}"))
            for name, value in data.items()
        ]
    if not isinstance(data, list):
        raise ScenarioError(f"{where}: must be an array or a table")
    items: list[Item] = []
    for i, entry in enumerate(data):
        here = f"{where}[{i}]"
        if isinstance(entry, str):
            items.append(Item(name=_name(entry, here)))
            continue
        _check_keys(entry, _ITEM_KEYS, here)
        assert isinstance(entry, Mapping)
        if "name" not in entry:
            raise ScenarioError(f"{here}: an item needs a name")
        index = entry.get("index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise ScenarioError(f"{here}.index: must be a whole number")
        items.append(
            Item(
                name=_name(entry["name"], f"{here}.name"),
                value=_value(entry.get("value", ""), f"{here}.value"),
                index=index,
            )
        )
    return items


def _name(value: object, where: str) -> str:
    name = _string(value, where).strip()
    if not name:
        raise ScenarioError(f"{where}: an item name must not be empty")
    return name


def parse_scenario(text: str, *, name: str = "unnamed") -> Scenario:
    """A scenario from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not valid TOML: {exc}") from None
    return Scenario.from_dict(data, default_name=name)


def builtin_names() -> list[str]:
    """The scenarios shipped in `provd/lab/scenarios/`."""
    folder = resources.files("provd.lab").joinpath("scenarios")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_scenario(source: str | Path) -> Scenario:
    """A scenario from a TOML file, or a shipped one by name (`demo`, `basic`, ...)."""
    path = Path(source)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ScenarioError(f"{path}: not UTF-8") from None
        try:
            return parse_scenario(text, name=path.stem)
        except ScenarioError as exc:
            raise ScenarioError(f"{path}: {exc}") from None
    name = str(source)
    shipped = resources.files("provd.lab").joinpath("scenarios", f"{name}.toml")
    if not shipped.is_file():
        raise ScenarioError(
            f"no scenario file {name!r} and no shipped scenario of that name "
            f"(shipped: {', '.join(builtin_names())})"
        )
    return parse_scenario(shipped.read_text(encoding="utf-8"), name=name)


def script(
    *answers: str | Step,
    reason: Reason | None = None,
    contact: int | None = None,
    channel: str | None = None,
) -> Script:
    """Shorthand: `script("ReadAllItems", Step(action="WriteItems", items=...), reason=...)`."""
    return Script(
        reason=reason,
        contact=contact,
        channel=channel,
        steps=tuple(a if isinstance(a, Step) else Step(action=a) for a in answers),
    )
