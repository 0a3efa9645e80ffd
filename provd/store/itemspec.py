"""What a catalog entry says about an item: its type, who may access it, and its limits.

`ItemSpec` is one entry of the item catalog (spec §8.1 [B]); `provd.store.catalog` loads
them, `provd.store.validate` checks item values against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
