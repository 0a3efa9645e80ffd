"""The check after every Secure Mode scenario: no secret outside the secure store.

Issue 5: the PIN, the TAN, the PKCS#12 password and key material appear in no log line,
no journal field, no file outside the secure store. Here that means: no line of the
daemon's stderr (where it logs outside systemd, journal fields included) nor of its
`STATUS=` notifications; no byte of any file under the state directory outside the
secure store directory, nor under the runtime directory; and no `provctl status` output.

As a control the key is looked for inside the secure store too: once a phone holds
credentials, the check must find them there, or it could not find them anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provd.lab.pki import Credential
from provd.lab.secure import BootstrapMaterial, pem_body_lines
from tests.integration.daemon.harness import Phone

#: Bootstrap items whose values carry key material (or the archive sealed by the PIN).
MATERIAL_ITEMS = ("dls-client-certificate", "secure-mode-data")
#: Long enough that a match is a leak, not chance.
CHUNK = 40


def key_secrets(credential: Credential) -> dict[str, bytes]:
    """The key as PEM lines (text logs), PKCS#8 DER and, for EC, the private scalar."""
    found = {
        f"key PEM line {n}": line.encode()
        for n, line in enumerate(pem_body_lines(credential.key_pem))
    }
    found["key DER"] = credential.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if isinstance(credential.key, ec.EllipticCurvePrivateKey):
        value = credential.key.private_numbers().private_value
        found["key scalar"] = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return found


def value_chunks(label: str, value: str) -> dict[str, bytes]:
    """Pieces of a long item value (start, middle, end): a log may cut a value short."""
    if len(value) < 3 * CHUNK:
        return {label: value.encode()}
    middle = len(value) // 2
    return {
        f"{label} (start)": value[:CHUNK].encode(),
        f"{label} (middle)": value[middle : middle + CHUNK].encode(),
        f"{label} (end)": value[-CHUNK:].encode(),
    }


@dataclass
class Secrets:
    """What must stay inside the secure store, by label."""

    values: dict[str, bytes] = field(default_factory=dict)

    def add(self, label: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        if data:
            self.values[label] = data

    def add_pin(self, pin: str) -> None:
        """A PIN typed (right or wrong), its password part and its TAN."""
        self.add(f"PIN {pin!r}", pin)
        self.add(f"password of {pin!r}", pin[:-3])
        self.add(f"TAN of {pin!r}", pin[-3:])

    def add_material(self, material: BootstrapMaterial) -> None:
        self.add_pin(material.pin)
        self.values.update(key_secrets(material.client))

    def add_item_values(self, name: str, values: Iterable[str]) -> None:
        for n, value in enumerate(values):
            self.values.update(value_chunks(f"{name} value {n}", value))


def _text_leaks(where: str, text: str, secrets: Secrets) -> list[str]:
    return [
        f"{label} in {where}"
        for label, value in secrets.values.items()
        if value.isascii() and value.decode() in text
    ]


def _file_leaks(root: Path, secrets: Secrets, skip: Path | None) -> list[str]:
    leaks: list[str] = []
    if not root.is_dir():
        return leaks
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        leaks += [f"{label} in {path}" for label, value in secrets.values.items() if value in data]
    return leaks


def secure_dir(phone: Phone) -> Path:
    """The secure store directory (`paths.secure-dir`, by default `<state-dir>/secure`)."""
    return Path(phone.settings.get("paths.secure-dir", phone.state_dir / "secure"))


def key_in_secure_store(phone: Phone, material: BootstrapMaterial) -> bool:
    """The control: the phone's key is where it belongs."""
    line = pem_body_lines(material.client.key_pem)[1].encode()
    return any(line in p.read_bytes() for p in secure_dir(phone).rglob("*") if p.is_file())


def leaks_while_running(phone: Phone, secrets: Secrets) -> list[str]:
    """`provctl status` (the real command) says nothing secret."""
    result = phone.provctl("status")
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown
    raw = phone.provctl("--json", "status")
    assert raw.returncode == 0, raw.stdout + raw.stderr
    return _text_leaks("provctl status", shown, secrets) + _text_leaks(
        "provctl --json status", raw.stdout + raw.stderr, secrets
    )


def leaks_after_stop(phone: Phone, secrets: Secrets) -> list[str]:
    """The logs of every run, the notifications, and the files."""
    leaks = _text_leaks("the daemon's log", phone.logtext(), secrets)
    if phone.notify is not None:
        status = "\n".join("\n".join(n.lines) for n in phone.notify.notices())
        leaks += _text_leaks("a notification", status, secrets)
    leaks += _file_leaks(phone.state_dir, secrets, skip=secure_dir(phone))
    leaks += _file_leaks(phone.runtime_dir, secrets, skip=None)
    return leaks
