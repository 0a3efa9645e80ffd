"""Contact-me requests: what to answer and whether a `solicited` interaction is wanted.

The server asks the phone to call back with a plain-HTTP request to
``/contact_dls.html/ContactDLS`` carrying the form field ``ContactMe=true`` and,
optionally, ``dls_ip_addr`` / ``dls_ip_port`` naming another server to call
[G p.14-15]. This module decides, from the parts of one request, what the
listener answers and what the daemon should queue. It does no I/O: the
listener (`provd.transport.contactme`) parses HTTP with h11 and hands the parts in.

Rules (spec §4.1):

- ``POST`` with ``application/x-www-form-urlencoded`` [G p.14], and ``GET`` with a
  query string [F], are both taken. The fields of a ``POST`` are those of its query
  string and of its body (a body field wins over a query field of the same name);
  a ``POST`` with a non-empty body of any other content type is answered 400.
- **[B]** path other than ``/contact_dls.html/ContactDLS`` → 404; method other than
  ``GET`` / ``POST`` → 405; body over 4 KiB → 413; a query or form that cannot be
  decoded (not UTF-8, bad percent escapes, too many fields) → 400.
- ``ContactMe`` must be ``true`` (compared case-insensitively; the first value counts
  if the field is repeated). Anything else, the field missing included, is answered
  204 and queues nothing.
- **[B]** ``dls_ip_addr`` / ``dls_ip_port`` redirect the callback only when the
  allow-list passed in names the address (``host`` or ``host:port``: then the port
  too) and Secure Mode is off; otherwise the callback goes
  to the configured server. A missing port means the Default-Mode port 18443
  [G p.12]. Taking over phones through this redirect is a known attack
  [F: Unify advisory OBSO-2312-01], hence the allow-list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

#: The one path a contact-me may use [G p.14].
CONTACT_PATH = "/contact_dls.html/ContactDLS"
#: **[B]** The largest body taken; a larger one is answered 413 (spec §4.1).
MAX_BODY = 4096
#: The callback port when ``dls_ip_addr`` comes without ``dls_ip_port`` (Default Mode) [G p.12].
DEFAULT_REDIRECT_PORT = 18443
#: A contact-me has three fields; a few more are tolerated, a flood of them is refused.
MAX_FIELDS = 16

_FORM = "application/x-www-form-urlencoded"
_METHODS = frozenset({"GET", "POST"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactMeDecision:
    """What to answer a contact-me request, and what it asks of the daemon.

    `status` is the HTTP status to answer (204, 400, 404, 405 or 413).
    `solicited` is True when a `solicited` interaction is to be queued; `redirect`
    is the allowed ``(address, port)`` to call instead of the configured server.
    `reason` is a short text for the log; it names no secret (a contact-me carries none).
    """

    status: int
    solicited: bool = False
    redirect: tuple[str, int] | None = None
    #: A `dls_ip_addr` was given and not followed (not allowed, Secure Mode, bad port).
    redirect_refused: bool = False
    reason: str = ""


def split_target(target: str) -> tuple[str, str]:
    """The path and the query string of a request target (origin or absolute form).

    Never raises: a target `urlsplit` refuses (`//[`) is a path, answered 404."""
    try:
        parts = urlsplit(target)
    except ValueError:
        path, _, query = target.partition("?")
        return path, query
    return parts.path, parts.query


def precheck(method: str, path: str, content_length: int | None) -> ContactMeDecision | None:
    """The refusal that needs no body (404, 405, 413), or None to read the body and `decide`.

    The listener calls this once the headers are in, so an unwanted request is
    answered without reading its body. `content_length` is the declared length,
    None for a chunked body (the listener then counts what arrives).
    """
    if path != CONTACT_PATH:
        return ContactMeDecision(status=404, reason="unknown path")
    if method not in _METHODS:
        return ContactMeDecision(status=405, reason=f"method {method[:16]!r} not allowed")
    if content_length is not None and content_length > MAX_BODY:
        return ContactMeDecision(status=413, reason=f"body of {content_length} bytes")
    return None


def decide(
    method: str,
    path: str,
    query: str,
    content_type: str | None,
    body: bytes,
    *,
    allow_redirect: Iterable[str] = (),
    secure_mode: bool = False,
) -> ContactMeDecision:
    """Decide the answer to one contact-me request (spec §4.1).

    `content_type` is the ``Content-Type`` header as received (None when absent);
    `allow_redirect` holds the addresses a redirect may name (setting
    ``contact-me.allow-redirect``); `secure_mode` turns every redirect off.
    """
    refused = precheck(method, path, len(body))
    if refused is not None:
        return refused
    try:
        fields = _fields(query)
        if method == "POST" and body:
            if _media_type(content_type) != _FORM:
                return ContactMeDecision(status=400, reason="body is not form-urlencoded")
            fields.update(_fields(body.decode("utf-8")))
    except ValueError as exc:  # UnicodeDecodeError included; also too many fields
        return ContactMeDecision(status=400, reason=f"undecodable form: {type(exc).__name__}")
    contact = fields.get("ContactMe")
    if contact is None:
        return ContactMeDecision(status=204, reason="no ContactMe field: nothing queued")
    if contact.lower() != "true":
        return ContactMeDecision(status=204, reason="ContactMe is not true: nothing queued")
    redirect, note = _redirect(fields, allow_redirect, secure_mode)
    not_followed = redirect is None and bool(fields.get("dls_ip_addr", "").strip())
    return ContactMeDecision(
        status=204, solicited=True, redirect=redirect, redirect_refused=not_followed, reason=note
    )


def _fields(text: str) -> dict[str, str]:
    """The first value of each field of a urlencoded `text`; ValueError if undecodable."""
    if not text:
        return {}
    parsed = parse_qs(
        text,
        keep_blank_values=True,
        strict_parsing=False,
        encoding="utf-8",
        errors="strict",
        max_num_fields=MAX_FIELDS,
    )
    return {name: values[0] for name, values in parsed.items() if values}


def _media_type(content_type: str | None) -> str:
    """``type/subtype`` of a Content-Type header, lower case, parameters dropped."""
    if content_type is None:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _redirect(
    fields: dict[str, str], allow: Iterable[str], secure_mode: bool
) -> tuple[tuple[str, int] | None, str]:
    """The allowed redirect target of a contact-me, and a note for the log."""
    addr = fields.get("dls_ip_addr", "").strip()
    if not addr:
        return None, "solicited interaction requested"
    shown = addr[:64]
    if secure_mode:
        # spec §4.1 [B]: never in Secure Mode, whatever the allow-list says.
        return None, f"redirect to {shown!r} ignored: Secure Mode"
    port = _port(fields.get("dls_ip_port", ""))
    if port is None:
        return None, f"redirect to {shown!r} ignored: bad port"
    target = _normal(addr)
    if not redirect_allowed(allow, target, port):
        return None, f"redirect to {shown!r} ignored: not in allow-redirect"
    return (target, port), f"solicited interaction requested, redirected to {shown}:{port}"


def split_host_port(target: str) -> tuple[str, int | None]:
    """An allow-redirect entry: `host`, `host:port`, `[v6]:port` or a bare IPv6
    address → (host, port or None). Raises ValueError for anything else."""
    target = target.strip()
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:
        host, port_text = target, ""
    if not host or (port_text and not (port_text.isascii() and port_text.isdigit())):
        raise ValueError(f"{target!r} is not host, host:port or [address]:port")
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{target!r}: port must be 1..65535")
    return host.lower(), port


def redirect_allowed(allow: Iterable[str], host: str, port: int) -> bool:
    """Whether an allow-redirect entry names `host` (and `port`, when the entry has one)."""
    wanted = _normal(host)
    for entry in allow:
        try:
            allowed_host, allowed_port = split_host_port(entry)
        except ValueError:
            continue  # settings refuse such entries; never let one match
        if _normal(allowed_host) == wanted and allowed_port in (None, port):
            return True
    return False


def _port(text: str) -> int | None:
    text = text.strip()
    if not text:
        return DEFAULT_REDIRECT_PORT
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def _normal(addr: str) -> str:
    """One spelling per address: IP addresses compressed, host names in lower case."""
    addr = addr.strip()
    try:
        return str(ipaddress.ip_address(addr.strip("[]")))
    except ValueError:
        return addr.lower()
