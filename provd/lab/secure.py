"""The lab's Secure Mode: bootstrap material, item placeholders and the TAN check (spec §7).

At start the lab makes what a provisioning server hands a phone to bootstrap it:

- the server CA (the lab CA of `LabPKI`, which issued the server certificate both
  listeners present) — the phone's `dls-server-ca`;
- a client CA, and the phone's key and certificate issued by it — the secure listener
  requires a client certificate from this CA (spec §7.4);
- `secure-mode-data` (spec §7.2 [B]): Base64 of a PKCS#12 archive encrypted with the
  password part of the PIN, holding the key, the certificate, the client CA (chain) and
  the server CA under the friendly name `dls-server-ca`;
- `dls-client-certificate` (spec §7.1 [B]): Base64 of the same key and certificate in a
  PKCS#12 archive with an empty password.

Scenarios name the material in item values with placeholders, expanded when the lab
sends the item::

    {secure-mode-data}   {dls-client-certificate}   {dls-server-ca}   {secure-port}

and broken variants as `{name:variant}` (see `VARIANTS`): `corrupt` (not Base64),
`truncated` (Base64 of half an archive), `expired` (the client certificate expired
yesterday), `mismatched` (a key that matches no certificate of the archive), `no-ca`
(no `dls-server-ca` inside), `other-ca` (inside: a `dls-server-ca` that did not issue
the server certificate), and for `dls-client-certificate` the PEM bundle form `pem`
and `pem-mismatched`; `{dls-server-ca:other}` is a CA that did not issue the server
certificate, `{dls-server-ca:corrupt}` one that does not parse.

The PIN is `<password><TAN>`, the TAN its last 3 characters [G p.67-68]: with the PIN
`1234321` the archive's password is `1234` and the phone must answer `ReadItems
bootstrapping-tan` with `321`. `tan_matches` is the lab's check.
"""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from provd.lab.pki import (
    SERVER_CA_FRIENDLY_NAME,
    Credential,
    LabPKI,
    as_item_value,
    bootstrap_pkcs12,
    issue,
    make_ca,
    utc_now,
)
from provd.wpi.bootstrap import split_pin
from provd.wpi.model import Item

#: A PIN for demos and scenarios that name none: password `1234`, TAN `321`.
DEFAULT_PIN = "1234321"
#: [G p.67-68] the TAN is the PIN's last three characters.
#: [G p.31] the server's cleanup-reason for a wrong TAN.
WRONG_TAN = "wrong TAN from device"
#: [G p.68] the item the server reads to learn the TAN.
TAN_ITEM = "bootstrapping-tan"
CLIENT_NAME = "provd lab phone"

#: Placeholder name → the variants it knows ("" is the good material).
VARIANTS: dict[str, frozenset[str]] = {
    "secure-mode-data": frozenset(
        {"", "corrupt", "truncated", "expired", "mismatched", "no-ca", "other-ca"}
    ),
    "dls-client-certificate": frozenset(
        {"", "corrupt", "truncated", "expired", "mismatched", "pem", "pem-mismatched"}
    ),
    "dls-server-ca": frozenset({"", "other", "corrupt"}),
    "secure-port": frozenset({""}),
}
PLACEHOLDER = re.compile(r"\{(?P<name>[a-z][a-z-]*)(?::(?P<variant>[a-z][a-z-]*))?\}")

_DAY = datetime.timedelta(days=1)


class PlaceholderError(ValueError):
    """A placeholder the lab does not know; the message names it."""


def placeholders(text: str) -> list[tuple[str, str]]:
    """The `(name, variant)` of the lab placeholders in `text`; PlaceholderError for a
    placeholder of a known name with an unknown variant. Braces around anything else
    (JSON in an item value, say) are not placeholders and are left alone."""
    found: list[tuple[str, str]] = []
    for match in PLACEHOLDER.finditer(text):
        name, variant = match.group("name"), match.group("variant") or ""
        if name not in VARIANTS:
            continue
        if variant not in VARIANTS[name]:
            choices = ", ".join(sorted(v for v in VARIANTS[name] if v)) or "none"
            raise PlaceholderError(
                f"{{{name}:{variant}}}: {name} has no variant {variant!r} (variants: {choices})"
            )
        found.append((name, variant))
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class TanCheck:
    """One `bootstrapping-tan` answer the lab compared with the PIN's TAN."""

    interaction: int
    channel: str
    matched: bool


def tan_answer(items: Iterable[Item]) -> str | None:
    """The `bootstrapping-tan` value among a phone's reply items, or None if absent."""
    for item in items:
        if item.name == TAN_ITEM and item.index is None:
            return item.value if item.status is None else ""
    return None


@dataclass(slots=True)
class BootstrapMaterial:
    """The lab's Secure Mode material, made once; broken variants on first use.

    `server_ca` is the CA that issued the lab's server certificate; `client_ca` issues
    the phone's certificate (`client`) and is what the secure listener trusts.
    """

    pki: LabPKI
    client_ca: Credential
    client: Credential
    pin: str
    clock: Callable[[], datetime.datetime] = utc_now
    _cache: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(
        cls,
        pki: LabPKI,
        *,
        pin: str = DEFAULT_PIN,
        client_name: str = CLIENT_NAME,
        clock: Callable[[], datetime.datetime] = utc_now,
    ) -> BootstrapMaterial:
        """A client CA, the phone's credential from it, for `pin` (checked here)."""
        split_pin(pin)
        client_ca = make_ca("provd lab client CA", key_type=pki.key_type, clock=clock)
        client = pki.issue_client(client_name, ca=client_ca, clock=clock)
        return cls(pki=pki, client_ca=client_ca, client=client, pin=pin, clock=clock)

    # ------------------------------------------------------------------ what tests read

    @property
    def server_ca(self) -> Credential:
        return self.pki.ca

    @property
    def password(self) -> str:
        """The PKCS#12 password: the PIN without its TAN."""
        return split_pin(self.pin)[0]

    @property
    def tan(self) -> str:
        """The PIN's last three characters, which the phone must answer."""
        return split_pin(self.pin)[1]

    @property
    def client_subject(self) -> str:
        """The phone certificate's subject as RFC 4514 text (what the listener records)."""
        return self.client.cert.subject.rfc4514_string()

    @property
    def client_ca_pem(self) -> bytes:
        return self.client_ca.cert_pem

    def tan_matches(self, answer: str) -> bool:
        """Whether a `bootstrapping-tan` answer is this PIN's TAN."""
        return answer == self.tan

    # ------------------------------------------------------------------ item values

    def value(self, name: str, variant: str = "", *, secure_port: int | None = None) -> str:
        """The item value a placeholder stands for (`{name}` or `{name:variant}`)."""
        if name == "secure-port":
            if secure_port is None:
                raise PlaceholderError("{secure-port}: the lab has no secure listener")
            return str(secure_port)
        if variant not in VARIANTS.get(name, frozenset()):
            raise PlaceholderError(f"no placeholder {{{name}:{variant}}}")
        with self._lock:
            cached = self._cache.get((name, variant))
            if cached is None:
                cached = self._make(name, variant)
                self._cache[(name, variant)] = cached
        return cached

    def expand(self, text: str, *, secure_port: int | None = None) -> str:
        """`text` with every lab placeholder replaced by its value."""
        placeholders(text)  # refuse unknown variants before replacing anything

        def one(match: re.Match[str]) -> str:
            name = match.group("name")
            if name not in VARIANTS:
                return match.group(0)
            return self.value(name, match.group("variant") or "", secure_port=secure_port)

        return PLACEHOLDER.sub(one, text)

    def _make(self, name: str, variant: str) -> str:
        if name == "dls-server-ca":
            if variant == "other":
                return make_ca("not the lab CA", key_type=self.pki.key_type).cert_pem.decode()
            pem = self.server_ca.cert_pem.decode()
            return _corrupt(pem) if variant == "corrupt" else pem
        if variant == "corrupt":
            return _corrupt(self._make(name, ""))
        password = None if name == "dls-client-certificate" else self.password.encode("utf-8")
        cas: list[Credential] = [] if name == "dls-client-certificate" else [self.server_ca]
        if variant in ("pem", "pem-mismatched"):
            # spec §7.1 [B]: a PEM bundle (certificate, chain, key) is accepted too.
            key = self.client if variant == "pem" else self._someone_else()
            return (self.client.chain_pem + key.key_pem).decode("ascii")
        if variant == "other-ca":
            cas = [make_ca("not the lab CA", key_type=self.pki.key_type)]
        if variant == "no-ca":
            cas = []
        client = self.client
        if variant == "expired":
            now = self.clock()
            client = issue(
                self.client_ca,
                client.common_name,
                client=True,
                key_type=self.pki.key_type,
                not_before=now - 30 * _DAY,
                not_after=now - _DAY,
            )
        if variant == "mismatched":
            archive = _mismatched(client, self._someone_else(), password, cas)
        else:
            archive = bootstrap_pkcs12(client, cas=cas, password=password)
        if variant == "truncated":
            archive = archive[: len(archive) // 2]
        return as_item_value(archive)

    def _someone_else(self) -> Credential:
        return issue(self.client_ca, "someone else", client=True, key_type=self.pki.key_type)


def _corrupt(text: str) -> str:
    """Not Base64 (nor PEM) any more: characters outside the alphabet in the middle."""
    middle = len(text) // 2
    return text[:middle] + "*?!~" + text[middle + 4 :]


def _mismatched(
    client: Credential, other: Credential, password: bytes | None, cas: list[Credential]
) -> bytes:
    """An archive whose key (`other`'s) matches none of its certificates: the client's
    certificate goes in as an ordinary bag (PKCS12_create refuses a pair that does not
    match, so that is how such archives look)."""
    bags = [pkcs12.PKCS12Certificate(client.cert, None)]
    bags += [pkcs12.PKCS12Certificate(c, None) for c in client.chain]
    bags += [pkcs12.PKCS12Certificate(ca.cert, SERVER_CA_FRIENDLY_NAME) for ca in cas]
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(b"mismatched", other.key, None, bags, encryption)


def pem_body_lines(pem: bytes) -> list[str]:
    """The Base64 lines of a PEM block (no BEGIN/END lines): what a leak would show."""
    return [
        line
        for line in pem.decode("ascii").splitlines()
        if line.strip() and not line.startswith("-----")
    ]
