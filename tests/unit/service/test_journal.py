"""Journal logging: secrets redacted everywhere, MESSAGE_IDs stable (catalog: test_message_ids)."""

from __future__ import annotations

import io
import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provd.service.journal import (
    REDACTED,
    ConsoleFormatter,
    MessageId,
    RedactingFilter,
    Redactor,
    format_items,
    log_event,
    setup_logging,
    under_journal,
)
from provd.wpi.model import Item, ItemStatus

log = logging.getLogger("provd.test.journal")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class JournalRecorder:
    """Stands in for `systemd.journal.send`: keeps exactly what would go to journald."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, MESSAGE: str, /, **fields: Any) -> None:
        self.sent.append({"MESSAGE": MESSAGE, **fields})

    def text(self) -> str:
        """Every field of every entry as journald would receive it (str() of each value)."""
        return "\n".join(f"{k}={v}" for entry in self.sent for k, v in entry.items())

    def by_id(self, message_id: MessageId) -> dict[str, Any]:
        [entry] = [e for e in self.sent if e.get("MESSAGE_ID") == message_id.value]
        return entry


# --- redaction of every kind of secret ---------------------------------------------------------


def log_every_kind_of_secret(redactor: Redactor, pem: str) -> list[str]:
    """Log secrets through every channel a record has; return the secret strings."""
    pin, tan, ftp_password = "90817263", "T4N", "ftp-s3cret!"
    user_password, sip_secret, raw_key = "hunter2-pw", "sipsecretvalue", b"\x00raw-key-bytes"
    redactor.add_secret(pin)
    redactor.add_secret(tan)
    redactor.add_secret(raw_key)
    redactor.add_secret_items(["sip-auth-secret"])

    # message text and %-args, including reprs of a mapping and of wpi Items
    log.info("PIN typed: %s, TAN %s", pin, tan)
    log.info("PIN %(pin)s as a mapping arg", {"pin": pin})
    log.warning("server wrote user-pwd=%s and e164=4989", user_password)
    log.info("request %r", {"cmd": "set", "items": {"file-pwd": ftp_password}})
    log.info("items %r", [Item(name="user-pwd", value=user_password), Item(name="e164", value="1")])
    log.debug("key material %s", pem)
    log.debug("raw %r", raw_key)
    # structured fields, set by log_event and by hand
    log_event(
        log,
        MessageId.ACTION_PERFORMED,
        "WriteItems accepted",
        action="WriteItems",
        nonce="0123456789ABCDEF0123456789ABCDEF",
        items=[
            Item(name="user-pwd", value=user_password),
            Item(name="file-pwd", value=ftp_password),
            Item(name="sip-auth-secret", value=sip_secret, index=1),
            Item(name="dls-client-certificate", value=pem),
            Item(name="e164", value="4989722"),
        ],
    )
    log.info("by hand", extra={"PROVD_ITEMS": f'restart-password="{pin}", e164="1"'})
    log.info("raw items", extra={"PROVD_ITEMS": {"user-pwd": user_password, "e164": "2"}})
    log.info("detail", extra={"PROVD_DETAIL": f"pem follows {pem}", "note": f"pin {pin}"})
    # exception text
    try:
        raise ValueError(f"cannot decrypt with PIN {pin}: key {pem}")
    except ValueError:
        log.exception("bootstrap failed for TAN %s", tan)
    return [pin, tan, ftp_password, user_password, sip_secret, "raw-key-bytes", pem.splitlines()[1]]


def test_no_secret_reaches_the_journal_sender() -> None:
    recorder = JournalRecorder()
    redactor = Redactor()
    setup_logging(to_journal=True, level="debug", redactor=redactor, sender=recorder)
    secrets = log_every_kind_of_secret(redactor, private_key_pem())
    sent = recorder.text()
    assert len(recorder.sent) == 12
    for secret in secrets:
        assert sent.count(secret) == 0, secret
    assert "PRIVATE KEY" not in sent.replace(f"{REDACTED}", "")
    assert sent.count(REDACTED) >= 15
    # What is not secret stays readable.
    assert 'e164="4989722"' in recorder.by_id(MessageId.ACTION_PERFORMED)["PROVD_ITEMS"]
    assert "sip-auth-secret[1]=[redacted]" in sent
    assert "e164=4989" in sent


def test_no_secret_reaches_stderr_either() -> None:
    stream = io.StringIO()
    redactor = Redactor()
    setup_logging(to_journal=False, level=logging.DEBUG, redactor=redactor, stream=stream)
    secrets = log_every_kind_of_secret(redactor, private_key_pem())
    output = stream.getvalue()
    assert output.count("\n") >= 12
    for secret in secrets:
        assert output.count(secret) == 0, secret
    assert "Traceback" in output and "ValueError: cannot decrypt with PIN [redacted]" in output


def test_exception_is_sent_as_redacted_text_only() -> None:
    recorder = JournalRecorder()
    redactor = Redactor()
    redactor.add_secret("s3cr3t-pin")
    setup_logging(to_journal=True, redactor=redactor, sender=recorder)
    try:
        raise RuntimeError("boom s3cr3t-pin")
    except RuntimeError:
        log.exception("failed")
    [entry] = recorder.sent
    assert "EXCEPTION_INFO" not in entry  # its repr would carry the exception's arguments
    assert "CODE_ARGS" not in entry
    assert entry["EXCEPTION_TEXT"].endswith("RuntimeError: boom [redacted]")
    assert "s3cr3t-pin" not in recorder.text()


def test_holding_redacts_only_while_the_secret_is_in_memory() -> None:
    redactor = Redactor()
    with redactor.holding("tan-827"):
        assert redactor.redact("typed tan-827") == "typed [redacted]"
    assert redactor.redact("typed tan-827") == "typed tan-827"
    redactor.add_secret("x1y2")
    redactor.add_secret("x1y2")
    redactor.discard_secret("x1y2")
    assert redactor.redact("x1y2") == REDACTED  # still held once


def test_secret_is_redacted_in_its_escaped_forms() -> None:
    redactor = Redactor()
    redactor.add_secret('pa"ss\nword')
    assert redactor.redact(repr('pa"ss\nword')) == "'[redacted]'"
    assert redactor.redact('{"p": "pa\\"ss\\nword"}') == '{"p": "[redacted]"}'


def test_private_key_blocks_are_redacted_unregistered_and_even_cut_short() -> None:
    redactor = Redactor()
    pem = private_key_pem()
    assert redactor.redact(f"a {pem} b") == f"a {REDACTED}\n b"
    assert redactor.redact(repr(pem)) == f"'{REDACTED}\\n'"
    rsa_head = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow"
    assert redactor.redact(f"x {rsa_head}") == f"x {REDACTED}"
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redactor.redact(cert) == cert  # certificates are public


@pytest.mark.parametrize(
    ("hostile", "redacted"),
    [
        ("pwd" * 30000 + "=x", False),  # not a password's name: -pwd is not in it
        ("user-pwd" * 20000 + "=x", True),
        ('x="' * 30000 + "user-pwd=x", True),
        ("'a':'" * 30000 + "user-pwd=x", True),
        ("name='" * 20000 + "user-pwd=x", True),
    ],
    ids=["pwd-run", "name-run", "open-quotes", "open-mapping", "open-item-repr"],
)
def test_long_hostile_text_is_redacted_without_backtracking(hostile: str, redacted: bool) -> None:
    # These took minutes with nested quantifiers; possessive ones keep the scan linear.
    result = Redactor().redact(hostile)
    assert result.endswith("=[redacted]") is redacted
    assert len(result) == len(hostile) + (len(REDACTED) - 1 if redacted else 0)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("user-pwd", True),
        ("user-pwd-unicode", True),
        ("file-pwd", True),
        ("restart-password", True),
        ("ldap-passwd", True),
        ("secure-mode-data", True),
        ("dls-client-certificate", True),
        ("bootstrapping-tan", True),
        ("e164", False),
        ("max-pin-retries", False),
        ("dls-server-ca", False),
        ("password-policy-min-length", True),  # over-redaction is the safe side
    ],
)
def test_secret_item_names(name: str, secret: bool) -> None:
    assert Redactor().is_secret_item(name) is secret


def test_a_filter_on_a_plain_handler_redacts_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    redactor = Redactor()
    redactor.add_secret("0000-pin")
    handler.addFilter(RedactingFilter(redactor))
    plain = logging.getLogger("provd.test.plain")
    plain.addHandler(handler)
    plain.propagate = False
    try:
        plain.warning("pin %s", "0000-pin")
    finally:
        plain.removeHandler(handler)
    assert stream.getvalue() == "pin [redacted]\n"


def test_a_broken_format_string_is_still_logged_redacted() -> None:
    recorder = JournalRecorder()
    redactor = Redactor()
    redactor.add_secret("zz-secret")
    handler = setup_logging(to_journal=True, redactor=redactor, sender=recorder)
    # Not through the root logger: pytest's own capture handler would raise on the bad format.
    alone = logging.getLogger("provd.test.alone")
    alone.addHandler(handler)
    alone.propagate = False
    try:
        alone.warning("two %s %s", "zz-secret")
    finally:
        alone.removeHandler(handler)
    assert len(recorder.sent) == 1
    assert "zz-secret" not in recorder.text()


# --- structured events --------------------------------------------------------------------------


def test_log_event_sends_message_id_and_provd_fields() -> None:
    recorder = JournalRecorder()
    setup_logging(to_journal=True, identifier="provd", redactor=Redactor(), sender=recorder)
    log_event(
        log,
        MessageId.INTERACTION_FAILED,
        "interaction %s failed",
        "ABCD",
        level=logging.WARNING,
        reason=ItemStatus.FAILED,  # an enum goes as its value
        nonce="ABCD",
        server="https://dls:18443/DeploymentService/LoginService",
        result=None,  # left out
        PROVD_ERROR="timeout",
    )
    entry = recorder.by_id(MessageId.INTERACTION_FAILED)
    assert entry["MESSAGE"] == "interaction ABCD failed"
    assert entry["MESSAGE_ID"] == "90059ecb76494c1db12daddb8ececde1"
    assert entry["PROVD_EVENT"] == "interaction-failed"
    assert entry["PROVD_REASON"] == "failed"
    assert entry["PROVD_NONCE"] == "ABCD"
    assert entry["PROVD_SERVER"] == "https://dls:18443/DeploymentService/LoginService"
    assert entry["PROVD_ERROR"] == "timeout"
    assert "PROVD_RESULT" not in entry
    assert entry["PRIORITY"] == "4"
    assert entry["SYSLOG_IDENTIFIER"] == "provd"
    assert entry["CODE_FUNC"] == "test_log_event_sends_message_id_and_provd_fields"


def test_catalog_secret_items_known_only_to_the_handler_are_still_hidden() -> None:
    # log_event formats items with the process-wide REDACTOR; the daemon's own redactor,
    # on the handler, knows the catalog's secret items and redacts the formatted text again.
    recorder = JournalRecorder()
    redactor = Redactor(["sip-auth-token"])
    setup_logging(to_journal=True, redactor=redactor, sender=recorder)
    log_event(
        log,
        MessageId.ACTION_PERFORMED,
        "WriteItems",
        items=[Item(name="sip-auth-token", value="tok" * 100), Item(name="e164", value="1")],
    )
    [entry] = recorder.sent
    assert entry["PROVD_ITEMS"] == 'sip-auth-token=[redacted], e164="1"'


def test_log_event_below_the_level_does_nothing() -> None:
    recorder = JournalRecorder()
    setup_logging(to_journal=True, level="warning", redactor=Redactor(), sender=recorder)
    log_event(log, MessageId.POLL_RESULT, "poll: 200", result="200")
    assert recorder.sent == []


def test_log_event_refuses_a_field_journald_would_drop() -> None:
    with pytest.raises(ValueError, match="journal field"):
        fields: dict[str, Any] = {"bad-name": 1}
        log_event(log, MessageId.POLL_RESULT, "x", **fields)


def test_format_items_is_readable_and_hides_secret_items() -> None:
    redactor = Redactor(["sip-auth"])
    text = format_items(
        [
            Item(name="e164", value='49 "89"'),
            Item(name="ldap-server", value="ldap.lab", index=2),
            Item(name="sip-auth", value="zzz"),
            Item(name="user-pwd", value=""),
            Item(name="x-unknown", status=ItemStatus.UNKNOWN_ITEM),
            Item(name="dls-server-ca", value="C" * 500, index=1),
        ],
        redactor,
    )
    assert text.startswith(
        'e164="49 \\"89\\"", ldap-server[2]="ldap.lab", sip-auth=[redacted], '
        "user-pwd=[redacted], x-unknown=(unknown item), "
    )
    assert text.endswith('C… (500 chars)"')
    assert format_items({"e164": "1", "file-pwd": "p"}) == 'e164="1", file-pwd=[redacted]'
    assert format_items(["e164", "user-pwd"]) == "e164, user-pwd"
    assert redactor.redact(text) == text  # stable under a second pass


def test_console_lines_show_the_provd_fields() -> None:
    stream = io.StringIO()
    setup_logging(to_journal=False, stream=stream, redactor=Redactor())
    log_event(log, MessageId.RETRY_SCHEDULED, "retry in %d s", 17, reason="start-up", delay=17)
    line = stream.getvalue().strip()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO provd\.test\.journal: retry in 17 s "
        r"\[delay=17 reason=start-up\]",
        line,
    ), line


def test_setup_logging_again_replaces_its_handler() -> None:
    first = setup_logging(to_journal=False, stream=io.StringIO())
    second = setup_logging(to_journal=False, stream=io.StringIO(), level="error")
    root = logging.getLogger()
    assert second in root.handlers and first not in root.handlers
    assert root.level == logging.ERROR
    assert isinstance(second.formatter, ConsoleFormatter)


# --- choosing the journal -----------------------------------------------------------------------


def test_journal_stream_matching_stderr_means_the_journal(tmp_path: Path) -> None:
    with open(tmp_path / "stderr", "w") as stream:
        stat = os.fstat(stream.fileno())
        matching = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        other = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino + 1}"}
        missing_socket = tmp_path / "no-socket"
        assert under_journal(matching, stream, missing_socket)
        assert not under_journal(other, stream, missing_socket)  # stderr was redirected
        assert not under_journal({}, stream, missing_socket)
        assert not under_journal({"JOURNAL_STREAM": "garbage"}, stream, missing_socket)


def test_invocation_id_means_the_journal_when_its_socket_exists(tmp_path: Path) -> None:
    socket_path = tmp_path / "socket"
    env = {"INVOCATION_ID": uuid.uuid4().hex}
    assert not under_journal(env, io.StringIO(), socket_path)
    socket_path.touch()
    assert under_journal(env, io.StringIO(), socket_path)


# --- MESSAGE_IDs (the catalog, both ways: tests/unit/test_message_ids.py) --------------------


def test_message_ids_are_unique_128_bit_ids() -> None:
    values = [member.value for member in MessageId]
    assert len(set(values)) == len(values)
    for value in values:
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        assert uuid.UUID(value).version == 4
