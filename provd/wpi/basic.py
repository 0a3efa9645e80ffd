"""The basic items of a phone's first message (spec §3.2 [G p.27, p.33, p.43]).

Pure: the caller passes the values it has (from the item store and the
device description); this module fixes the order and what a missing value
looks like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from provd.wpi.contactme import CONTACT_PATH
from provd.wpi.model import Item, ItemStatus

#: spec §3.2: the order provd sends them in, after the guide's examples
#: [G p.33, p.43] and real phones [F].
BASIC_ITEMS: tuple[str, ...] = (
    "device-type",
    "related-device-type",
    "software-type",
    "related-software-type",
    "software-version",
    "related-software-version",
    "contact-me-uri",
    "mac-addr",
    "configuration-changed-flag",
    "part-number",
    "e164",
    "basic-e164",
    "mobility-enabled",
    "sip-mobility-state",
)

#: [G p.35] contact-me-uri is at most 255 characters.
MAX_CONTACT_ME_URI = 255


def basic_items(
    values: Mapping[str, str | None],
    extra: Sequence[Item] = (),
    names: Sequence[str] = BASIC_ITEMS,
) -> list[Item]:
    """The basic items `names` (spec order by default), then `extra`.

    A basic item the phone cannot deliver (None or absent) is sent empty with
    `status="failed"` [G p.33]; an empty string is a value (an empty `e164`).
    """
    items = []
    for name in names:
        value = values.get(name)
        if value is None:
            items.append(Item(name=name, status=ItemStatus.FAILED))
        else:
            items.append(Item(name=name, value=value))
    items.extend(extra)
    return items


def contact_me_uri(address: str, port: int) -> str:
    """`http://<phone address>:<port>/contact_dls.html/ContactDLS` (spec §3.2).

    IPv6 addresses are bracketed. Raises ValueError past 255 characters.
    """
    host = f"[{address}]" if ":" in address else address
    uri = f"http://{host}:{port}{CONTACT_PATH}"
    if len(uri) > MAX_CONTACT_ME_URI:
        raise ValueError("contact-me-uri longer than 255 characters")
    return uri


def local_changes_items(changed: Sequence[Item]) -> list[Item]:
    """The items a `local-changes` message adds to the basic ones [G p.40]:
    the flags, the count and the changed items themselves."""
    return [
        Item(name="configuration-attached-flag", value="true"),
        Item(name="configuration-attached-number", value=str(len(changed))),
        *changed,
    ]
