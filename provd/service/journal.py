"""Logging for the daemon: the journal under systemd, stderr otherwise, secrets never.

- `setup_logging()` installs one handler on the root logger: python-systemd's `JournalHandler`
  when provd runs under systemd, a readable stderr handler otherwise. Either way the handler
  carries a `RedactingFilter`.
- `log_event()` logs one event with its stable `MESSAGE_ID` (`MessageId`) and `PROVD_*` fields,
  which `JournalHandler` sends as journal fields, so field support can run
  `journalctl -u provd MESSAGE_ID=...` and read the catalog entry (`systemd/provd.catalog`).
- Secrets (STYLE.md: PIN, TAN, keys, passwords, `wo` items) never reach a log, not even at
  debug level: the filter rewrites every record (message, args, exception text, extra fields)
  before any output, from a `Redactor` that knows the secret values in memory, the secret
  item names, and the shapes of private keys.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

REDACTED = "[redacted]"

#: Items that are secret whatever the catalog says: key material and bootstrap secrets
#: (spec §7: the PKCS#12 archives hold the phone's private key; the TAN proves the PIN).
SECRET_ITEMS = frozenset(
    {"secure-mode-data", "dls-client-certificate", "bootstrapping-tan", "cloud-pin-value"}
)
# `*-pwd`, `user-pwd-unicode`, `restart-password`, `*-passwd`: passwords by name.
_SECRET_NAME = re.compile(r"(?:^|-)(?:pwd|passwd)(?:-|$)|password")
_PEM_PRIVATE_KEY = (
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)"
)
# Possessive quantifiers (Python 3.11) keep these linear on long or hostile text.
_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*+"
_QUOTED = r"'(?:[^'\\]|\\.)*+'|\"(?:[^\"\\]|\\.)*+\""
# A value after `name=` as format_items writes it: quoted, parenthesised status, or a word.
_ITEM_VALUE = rf"{_QUOTED}|\([^)]*+\)|\[redacted\]|[^\s,;]*+"
# Where an item's value shows in text; the name decides whether the value is hidden.
_NAMED_VALUE = re.compile(
    # Item(name='user-pwd', value='x', ...) (an Item's repr; before `name=...` is taken as k=v)
    rf"name=(?P<q3>['\"])(?P<n3>{_NAME})(?P=q3),\s*value=(?P<v3>{_QUOTED})"
    # {'user-pwd': 'x'} (a mapping's repr or JSON)
    rf"|(?P<q2>['\"])(?P<n2>{_NAME})(?P=q2)\s*:\s*(?P<v2>{_QUOTED})"
    # user-pwd=x, user-pwd[1]="x y" (format_items, key=value text)
    rf"|(?<![A-Za-z0-9_-])(?P<n1>{_NAME})(?:\[\d+\])?=(?P<v1>{_ITEM_VALUE})"
)


class MessageId(StrEnum):
    """Stable journal MESSAGE_IDs of the events `provd/service/` logs, one per kind of event.

    Generated once with uuid4 and never changed: field support and scripts match on them.
    The adapters (store, ui), which may not import this module, keep their own `MSG_*`
    constants; an event both layers log has one id, spelled alike in both places
    (`STORE_RECOVERED` is `provd.store.items.MSG_STORE_RECOVERED`). Every id, here or there,
    has an entry in systemd/provd.catalog (tests/unit/test_message_ids.py keeps them in step).
    """

    STARTED = "bc585dbc32104a658091c11b68cb3635"
    STOPPING = "6b733a4f950f41b3b197a42cdd2f4593"
    SETTINGS_RELOADED = "97346dd80bb446798b5bb2af93664ce3"
    SETTINGS_REJECTED = "51a69c9de7c744baa5eff05531a75dd5"
    INTERACTION_STARTED = "c3fef291e99f45a5917f201473948a77"
    INTERACTION_COMPLETED = "d322e4be02ef4e8dbef04a55f284b597"
    INTERACTION_FAILED = "90059ecb76494c1db12daddb8ececde1"
    RETRY_SCHEDULED = "b5251dffc0644056991970de639d47ee"
    ACTION_PERFORMED = "c89f57a3179845a38788e92d6e0090ff"
    ITEM_WRITE_REJECTED = "dbb195b0320b400c8b69056394449aed"
    DOCUMENT_REFUSED = "86a2017ae1414beeb49fdc3fd3960df9"
    NONCE_MISMATCH = "5e8d40a850ba42ed8f62cac98045d616"
    CONTACT_ME_RECEIVED = "6214ef993523454f953a3b5713445edc"
    CONTACT_ME_REDIRECT_REFUSED = "64dd896d75c5452baf15db954b2bc52d"
    CONTACT_ME_FLOOD = "bdc3bdca21db4f008451bbb725aebd20"
    POLL_RESULT = "191e492978134789a8ff32bfa6a955bc"
    LOCAL_CHANGES_QUEUED = "28c9851e525c4a6295102b5542c6fb3e"
    INVENTORY_CHANGED = "b04da391b9544c16880b846d7e0159e8"
    TLS_FAILURE = "a3b17f8644e04188bec98480d7159650"
    TRUST_PIN_MISMATCH = "448e73e82d0c4224a510faa99a6aba22"
    TRUST_PINNED = "90f48a767320461bbfae8a624a3e4727"
    TRUST_PIN_RESET = "2ab714f8e9f74d91947e16dd74441131"
    TRUST_ANY = "292f1ec7271940e3a6e6d6a33bfe0209"
    CERTIFICATE_EXPIRING = "928d7c1421194fe8a395053e91f84de0"
    STORE_RECOVERED = "4615acdf0c6745849e277b668dae67be"
    SECURE_PENDING = "ff5394a979894cd9837f7311e33a4e72"
    SECURE_PIN_PROMPT = "45372590b2214ca49bab48541148afa3"
    SECURE_PIN_WRONG = "c63dc803471f4f4aba536266da56520e"
    SECURE_RETRIES_EXCEEDED = "c9253725ef0a452d906f4e460e6e0e4d"
    SECURE_COMMITTED = "250a53f2464a43ab81b2a788c66ad95a"
    SECURE_TAN_WRONG = "dd008210a68b4a0583a018d4be46a81c"
    FILE_DEPLOYED = "d78558c3fafd4df9a15dab235a87695d"
    FILE_DEPLOY_FAILED = "e04c44d3c65945108666970f9d87e08f"
    SOFTWARE_STAGED = "c88cabf556ad43a5a144f05d55b453b4"
    SOFTWARE_DEPLOY_FAILED = "28074a1ef2d1419b8b8e2e994a280772"
    PRIVILEGED_STEP_REQUESTED = "e7e4da542a834e8e85c3ff7af6fbc434"
    IMAGE_CHECK_FAILED = "ff2c013d367e42bc85d6a1d5b6a86a17"
    RESTART = "1bb349670202484e84e2257f55c07f44"
    FACTORY_RESET = "c4c95675f4e1433ba8ae9f088b95d40b"


class Redactor:
    """Knows what must not be logged and replaces it with `[redacted]`.

    Secret values are registered while they are in memory (`add_secret(pin)`, or
    `with redactor.holding(pin): ...`); secret item names come from the catalog
    (`add_secret_items`). Private-key PEM blocks and password-named items are redacted
    whether registered or not. Over-redaction is the safe side: a short secret (a 3-digit
    TAN) also hides the same digits elsewhere in a line. Thread-safe.
    """

    def __init__(self, secret_items: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, int] = {}
        self._items: set[str] = set(SECRET_ITEMS) | set(secret_items)
        self._values = re.compile(_PEM_PRIVATE_KEY, re.DOTALL)

    def add_secret(self, value: str | bytes) -> None:
        """Redact `value` (and its repr/JSON-escaped forms) from now on; empty is ignored."""
        with self._lock:
            for form in _forms(value):
                self._secrets[form] = self._secrets.get(form, 0) + 1
            self._rebuild()

    def discard_secret(self, value: str | bytes) -> None:
        """Undo one `add_secret(value)` (for a value no longer in memory)."""
        with self._lock:
            for form in _forms(value):
                count = self._secrets.get(form, 0) - 1
                if count > 0:
                    self._secrets[form] = count
                else:
                    self._secrets.pop(form, None)
            self._rebuild()

    @contextlib.contextmanager
    def holding(self, value: str | bytes) -> Iterator[None]:
        """Redact `value` while the block runs."""
        self.add_secret(value)
        try:
            yield
        finally:
            self.discard_secret(value)

    def add_secret_items(self, names: Iterable[str]) -> None:
        """Item names whose values are never logged (catalog `secret`/`wo`, spec §8.1)."""
        with self._lock:
            self._items.update(names)

    def is_secret_item(self, name: str) -> bool:
        return name in self._items or _SECRET_NAME.search(name) is not None

    def redact(self, text: str) -> str:
        """`text` without secret values, private keys and values of secret items."""
        text = self._values.sub(REDACTED, text)
        return _NAMED_VALUE.sub(self._hide_value, text)

    def _hide_value(self, match: re.Match[str]) -> str:
        branch = "3" if match.group("n3") else "2" if match.group("n2") else "1"
        if not self.is_secret_item(match.group("n" + branch)):
            return match.group(0)
        return match.group(0)[: match.start("v" + branch) - match.start()] + REDACTED

    def _rebuild(self) -> None:
        secrets = sorted(self._secrets, key=len, reverse=True)  # longest first
        self._values = re.compile("|".join([_PEM_PRIVATE_KEY, *map(re.escape, secrets)]), re.DOTALL)


def _forms(value: str | bytes) -> set[str]:
    """A secret as it may appear in a log line: itself, repr-escaped, JSON-escaped."""
    if isinstance(value, bytes):
        forms = {value.decode("utf-8", "replace"), repr(value)[2:-1]}
    else:
        forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
    return {form for form in forms if form}


#: The process-wide redactor; the daemon registers secrets here (tests pass their own).
REDACTOR = Redactor()

# Attributes every LogRecord has; anything else came in through `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
_PLAIN = (int, float, bool, type(None), uuid.UUID)
_EXCEPTIONS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no handler can output a secret.

    The message is merged with its args and redacted (args are dropped: `JournalHandler` would
    send them again as `CODE_ARGS`); an exception is rendered to text and redacted (the
    exception object is dropped: `JournalHandler` would send its repr as `EXCEPTION_INFO`);
    every `extra=` value is redacted, `PROVD_ITEMS` formatted with secret items hidden.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or REDACTOR

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string still gets logged, redacted
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redact(message), ()
        if record.exc_info:
            record.exc_text = record.exc_text or _EXCEPTIONS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key in _RECORD_ATTRS or isinstance(value, _PLAIN):
                continue
            if key == "PROVD_ITEMS" and not isinstance(value, str):
                text = format_items(value, self.redactor)
            else:
                text = value if isinstance(value, str) else str(value)
            setattr(record, key, redact(text))
        return True


ItemLike = Any  # an object with .name, .value and optionally .index and .status (wpi Item)
Items = Iterable[ItemLike] | Mapping[str, object]

_MAX_VALUE = 200  # characters of one value in PROVD_ITEMS; certificates are long


def format_items(items: Items, redactor: Redactor | None = None) -> str:
    """`PROVD_ITEMS` text: `name="value", name[2]="value", user-pwd=[redacted], x=(read only)`.

    Takes wpi `Item`s (or anything with `.name`/`.value`/`.index`/`.status`), a mapping of
    name to value, (name, value) pairs, or bare names (listed as they are). Values are
    JSON-quoted and cut at 200 characters; secret items show `[redacted]` whatever their value.
    """
    redactor = redactor or REDACTOR
    pairs: Iterable[Any] = items.items() if isinstance(items, Mapping) else items
    entries = []
    for item in pairs:
        if isinstance(item, str):  # names only (changed items, hooks)
            entries.append(item)
            continue
        if isinstance(item, tuple):
            name, value, index, status = str(item[0]), item[1], None, None
        else:
            name, value = str(item.name), item.value
            index, status = getattr(item, "index", None), getattr(item, "status", None)
        key = name if index is None else f"{name}[{index}]"
        if redactor.is_secret_item(name):
            entries.append(f"{key}={REDACTED}")
        elif status is not None:
            entries.append(f"{key}=({status})")
        else:
            text = redactor.redact(str(value))
            if len(text) > _MAX_VALUE:
                text = f"{text[:_MAX_VALUE]}… ({len(text)} chars)"
            entries.append(f"{key}={json.dumps(text, ensure_ascii=False)}")
    return ", ".join(entries)


_FIELD_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]*")


def log_event(
    logger: logging.Logger,
    message_id: MessageId,
    message: str,
    *args: object,
    level: int = logging.INFO,
    exc_info: BaseException | bool | None = None,
    items: Items | None = None,
    **fields: object,
) -> None:
    """Log one event with its `MESSAGE_ID`, `PROVD_EVENT` and `PROVD_*` fields.

    `fields` are named in lower case and become journal fields: ``reason="start-up"`` →
    ``PROVD_REASON=start-up``. None values are left out. `items` becomes `PROVD_ITEMS`
    (see `format_items`). The message takes lazy `%` args like any log call.
    """
    named = {}
    for name, value in fields.items():
        field = name.upper() if name.upper().startswith("PROVD_") else f"PROVD_{name.upper()}"
        if not _FIELD_NAME.fullmatch(field):  # journald would silently drop it
            raise ValueError(f"not a journal field name: {field}")
        named[field] = value
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, object] = {
        "MESSAGE_ID": message_id.value,
        "PROVD_EVENT": message_id.name.lower().replace("_", "-"),
    }
    for field, value in named.items():
        if value is not None:
            extra[field] = value.value if isinstance(value, StrEnum) else value
    if items is not None:
        extra["PROVD_ITEMS"] = format_items(items)
    logger.log(level, message, *args, exc_info=exc_info, extra=extra, stacklevel=2)


class ConsoleFormatter(logging.Formatter):
    """`2025-01-01 12:03:04,123 INFO provd.x: message [reason=start-up nonce=AB…]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = [
            f"{key[6:].lower()}={value}"
            for key, value in sorted(vars(record).items())
            if key.startswith("PROVD_") and key != "PROVD_EVENT"
        ]
        return f"{text} [{' '.join(fields)}]" if fields else text


#: Where journald listens for native messages (python-systemd's `journal.send` uses it).
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def under_journal(
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    journal_socket: Path = JOURNAL_SOCKET,
) -> bool:
    """Whether to log to the journal: stderr is journald's stream (`JOURNAL_STREAM` names its
    device:inode), or systemd started us (`INVOCATION_ID`) and journald's socket is there."""
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    if device and inode:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stat = os.fstat(stream.fileno())
            if (stat.st_dev, stat.st_ino) == (int(device), int(inode)):
                return True
    return bool(env.get("INVOCATION_ID")) and journal_socket.exists()


_HANDLER_NAME = "provd"


def setup_logging(
    *,
    to_journal: bool | None = None,
    level: int | str = logging.INFO,
    redactor: Redactor | None = None,
    identifier: str = "provd",
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    sender: Callable[..., None] | None = None,
) -> logging.Handler:
    """Install provd's one root handler (replacing an earlier one, e.g. on SIGHUP) and return it.

    `to_journal`: True → `JournalHandler` (`sender` replaces `systemd.journal.send`, for tests);
    False → `stream` (stderr); None → decide with `under_journal(env, stream)`.
    `level`: a logging level or its name ("info", "debug", ...).
    """
    if to_journal is None:
        to_journal = under_journal(env, stream)
    handler: logging.Handler
    if to_journal:
        # Imported here: only under systemd, and start-up stays lean (bench: exec to READY=1).
        # By module name, because the repository's systemd/ directory (unit files) would
        # otherwise look to mypy like a namespace package shadowing python-systemd.
        journal = importlib.import_module("systemd.journal")

        kwargs: dict[str, Any] = {"SYSLOG_IDENTIFIER": identifier}
        if sender is not None:
            kwargs["sender_function"] = sender
        handler = journal.JournalHandler(**kwargs)
    else:
        handler = logging.StreamHandler(sys.stderr if stream is None else stream)
        handler.setFormatter(ConsoleFormatter())
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
