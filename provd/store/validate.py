"""Validation of incoming items against the catalog (spec §3.3 [B]).

Pure functions: an item, the catalog and the message it came in go in, the status to
answer comes out (None when the item is valid). Every rejected-item status of §3.3 is
decided here except `failed`, which means storage failed and is set by the book.
Values are text (spec §2.3); type checks are strict but take what real servers send.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import re
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from provd.store.catalog import Catalog
from provd.store.itemspec import Access, ItemSpec, ItemType
from provd.wpi.model import Action, DLSMessage, Item, ItemStatus
from provd.wpi.xmltext import is_xml_text


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageContext:
    """The message an item came in: its action and all its items (for `requires`)."""

    action: str
    items: tuple[Item, ...] = ()
    # (name, value) of every item, built once per message: a hostile WriteItems of
    # 25,000 `secure-mode-data` items would otherwise cost one scan of the message
    # per item (quadratic).
    _pairs: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = frozenset((i.name, i.value) for i in self.items if i.status is None)
        object.__setattr__(self, "_pairs", pairs)

    @classmethod
    def of(cls, message: DLSMessage) -> MessageContext:
        """The context of a parsed server message."""
        return cls(action=message.action, items=message.items)

    @classmethod
    def write_items(cls, items: Sequence[Item]) -> MessageContext:
        """The context of a `WriteItems` carrying `items`."""
        return cls(action=Action.WRITE_ITEMS.value, items=tuple(items))

    def carries(self, name: str, value: str) -> bool:
        """True when the message carries item `name` with exactly `value`."""
        return (name, value) in self._pairs


def validate_item(
    item: Item,
    catalog: Catalog,
    context: MessageContext,
    *,
    dhcp_locked: Set[str] = frozenset(),
) -> ItemStatus | None:
    """The status to answer for `item` written in `context`, or None when it is valid.

    Checks run from the most to the least fundamental, so the answer names the first
    thing wrong: unknown name, a malformed index the codec found, not implemented, wrong
    message, not writable (read-only or locked by DHCP [G p.16]), index, value.
    """
    spec = catalog.get(item.name)
    if spec is None:
        return ItemStatus.UNKNOWN_ITEM
    if item.status is not None:
        # The codec marks an `index` that is not a number; answer what it found.
        return item.status
    if not spec.supported:
        return ItemStatus.NOT_SUPPORTED
    if (spec.actions or spec.requires) and not _expected(spec, context):
        return ItemStatus.UNEXPECTED_ITEM
    if spec.access is Access.RO or item.name in dhcp_locked:
        return ItemStatus.READ_ONLY
    if not index_valid(spec, item.index):
        return ItemStatus.INVALID_INDEX
    if not check_value(spec, item.value):
        return ItemStatus.INVALID_DATA
    return None


def validate_items(
    items: Sequence[Item],
    catalog: Catalog,
    context: MessageContext,
    *,
    dhcp_locked: Set[str] = frozenset(),
) -> list[ItemStatus | None]:
    """`validate_item` for each of `items`, in order."""
    return [validate_item(i, catalog, context, dhcp_locked=dhcp_locked) for i in items]


def _expected(spec: ItemSpec, context: MessageContext) -> bool:
    # spec §3.3 [B]: goto-secure-mode outside WriteItems, secure-mode-data without
    # goto-secure-mode=pin in the same message -> `unexpected item`.
    if spec.actions and context.action not in spec.actions:
        return False
    return all(context.carries(name, value) for name, value in spec.requires)


def index_valid(spec: ItemSpec, index: int | None) -> bool:
    """True when `index` fits `spec`: present on indexed items and in range, absent on others."""
    if index is None:
        return not spec.indexed or spec.index_optional
    return spec.indexed and spec.index_in_range(index)


# --------------------------------------------------------------------------- values


def check_value(spec: ItemSpec, value: str) -> bool:
    """True when `value` is valid text for `spec`: its type, limits and length."""
    if not is_xml_text(value):
        return False  # spec §2.3: control characters are `invalid data`
    if spec.max_length is not None and len(value) > spec.max_length:
        return False
    if spec.min_length is not None and len(value) < spec.min_length:
        return False
    if value == "":
        return spec.nullable or spec.type is ItemType.STRING
    return _CHECKS[spec.type](spec, value)


_INT = re.compile(r"[+-]?[0-9]{1,19}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_E164 = re.compile(r"\+?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# The body of a PEM block is Base64 and line breaks: a pattern that cannot run past
# another BEGIN keeps a hostile value of repeated BEGIN lines linear.
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----[A-Za-z0-9+/=\s]+-----END \1-----")
_DATE = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{4})")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})")
_B64_SPACE = re.compile(r"[ \t\r\n]+")


def _check_string(spec: ItemSpec, value: str) -> bool:
    return True


def _check_int(spec: ItemSpec, value: str) -> bool:
    # int() alone would take " 7", "1_000" and non-ASCII digits: match first.
    if not _INT.fullmatch(value):
        return False
    number = int(value)
    if spec.choices:
        return str(number) in spec.choices
    if spec.min is not None and number < spec.min:
        return False
    if spec.max is not None and number > spec.max:
        return False
    return number not in spec.exclude


def _check_bool(spec: ItemSpec, value: str) -> bool:
    return value in ("true", "false")  # [G p.34, p.40] exactly these


def _check_enum(spec: ItemSpec, value: str) -> bool:
    return value in spec.choices


def is_ip(value: str) -> bool:
    """True for an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_host(value: str) -> bool:
    """True for an IP address or a DNS host name (RFC 1123 labels)."""
    if is_ip(value):
        return True
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False  # looks like an IPv4 address but is not one
    return all(_LABEL.fullmatch(label) for label in labels)


def _check_ip(spec: ItemSpec, value: str) -> bool:
    return is_ip(value)


def _check_host(spec: ItemSpec, value: str) -> bool:
    return is_host(value)


def _check_mac(spec: ItemSpec, value: str) -> bool:
    return bool(_MAC.fullmatch(value))


def _check_uri(spec: ItemSpec, value: str) -> bool:
    if any(char.isspace() for char in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if parts.scheme.lower() not in spec.schemes:
        return False
    return parts.hostname is not None and is_host(parts.hostname)


def _check_pem(spec: ItemSpec, value: str) -> bool:
    return bool(_PEM.search(value))


def _decodes_base64(value: str) -> bool:
    # Servers wrap Base64 over lines; anything else outside the alphabet is refused.
    compact = _B64_SPACE.sub("", value)
    if not compact:
        return False
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_base64(spec: ItemSpec, value: str) -> bool:
    return _decodes_base64(value)


def _check_pkcs12(spec: ItemSpec, value: str) -> bool:
    # spec §7.1 [B]: Base64 of a PKCS#12 archive, or a PEM bundle.
    return _check_pem(spec, value) or _decodes_base64(value)


def _check_date(spec: ItemSpec, value: str) -> bool:
    found = _DATE.fullmatch(value)  # DD:MM:YYYY [G p.54, p.245]
    if found is None:
        return False
    day, month, year = (int(part) for part in found.groups())
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _check_time(spec: ItemSpec, value: str) -> bool:
    found = _TIME.fullmatch(value)  # HH:MM:SS [G p.54, p.245]
    if found is None:
        return False
    hour, minute, second = (int(part) for part in found.groups())
    return hour < 24 and minute < 60 and second < 60


def _check_e164(spec: ItemSpec, value: str) -> bool:
    return bool(_E164.fullmatch(value))


def _check_digits(spec: ItemSpec, value: str) -> bool:
    return bool(_DIGITS.fullmatch(value))


_CHECKS = {
    ItemType.STRING: _check_string,
    ItemType.INT: _check_int,
    ItemType.BOOL: _check_bool,
    ItemType.ENUM: _check_enum,
    ItemType.IP: _check_ip,
    ItemType.HOST: _check_host,
    ItemType.MAC: _check_mac,
    ItemType.URI: _check_uri,
    ItemType.PEM: _check_pem,
    ItemType.BASE64: _check_base64,
    ItemType.PKCS12: _check_pkcs12,
    ItemType.DATE: _check_date,
    ItemType.TIME: _check_time,
    ItemType.E164: _check_e164,
    ItemType.DIGITS: _check_digits,
}
