"""Fetching a deployed file or a software image over HTTPS or FTP (spec §6.1, §6.2).

Which protocol, spec §6.1: HTTPS when `file-https-base-url` is present (**[B]** a
URL ending in ``/`` gets `file-name` appended, otherwise it is the whole URL, and
without `file-name` the file is named after the URL's last path segment, as in
the guide's own example [G p.53]); otherwise FTP with `file-server`, `file-port`
(21), `file-username`, `file-pwd`, `file-path`, `file-name`.

Trust, spec §6.1 **[B]**: the caller's `https_trust_for(host, port)` decides — the
provisioning server's own host and port are trusted exactly as the XML channel,
any other host against the system trust store or the `dls-server-ca` set. FTP is
plain, as the guide has it.

`fetch` makes one attempt into a sink; `fetch_to_file` keeps a file complete:
a download cut by the network resumes (HTTPS ``Range``, FTP ``REST``) or
restarts, and only a file whose size matches what the server announced is
reported complete (spec §6.2 **[B]**).

Every failure is a `DownloadError` whose `kind` the deployment logs; messages
name hosts and paths, never the FTP password.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from provd.transport.errors import TransportError, TransportErrorKind
from provd.transport.ftp import DEFAULT_PORT, FtpRefused, ftp_get
from provd.transport.https import HttpsChannel
from provd.transport.tls import TrustPolicy

log = logging.getLogger(__name__)

DownloadErrorKind = (
    TransportErrorKind
    | Literal["not-found", "denied", "refused", "protocol", "bad-source", "incomplete"]
)
"""The transport's kinds (``connect``, ``tls``, ``timeout``, ``http``, ``closed``,
``too-large``) and:

- ``not-found``: HTTP 404/410, FTP 550;
- ``denied``: HTTP 401/403, FTP 530 (login refused);
- ``refused``: any other HTTP status or FTP 4xx/5xx reply;
- ``protocol``: an unreadable FTP reply;
- ``bad-source``: the items do not name a file that can be fetched;
- ``incomplete``: fewer bytes than the server announced.
"""

#: Worth another attempt: the network, not the server's answer, failed.
RETRYABLE: frozenset[str] = frozenset({"connect", "timeout", "closed", "incomplete"})

TrustFor = Callable[[str, int], TrustPolicy]
"""`(host, port) -> TrustPolicy` for an HTTPS download from that server (spec §6.1 [B])."""

_PATH_SAFE = "/%:@!$&'()*+,;=~-._"


class DownloadError(Exception):
    """A download failed; `kind` says how, `message` is safe to log."""

    def __init__(self, kind: DownloadErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: DownloadErrorKind = kind
        self.message = message

    @property
    def retryable(self) -> bool:
        """Whether the network failed (another attempt may resume), not the server."""
        return self.kind in RETRYABLE


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSource:
    """Where a file comes from: the `file-*` items of one file (spec §6.1).

    Build it with `from_values`; `password` never appears in a repr or a log.
    """

    https_url: str | None = None
    server: str = ""
    port: int = DEFAULT_PORT
    username: str = ""
    password: str = field(default="", repr=False)
    path: str = ""
    file_name: str = ""

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> FileSource:
        """From item values by name (`file-https-base-url`, `file-server`, ...).

        Raises `DownloadError` ``bad-source`` when no file can be fetched with them.
        """
        url = values.get("file-https-base-url", "").strip()
        name = values.get("file-name", "").strip()
        if url:
            parts = urlsplit(url)
            if parts.scheme.lower() != "https" or not parts.hostname:
                raise DownloadError("bad-source", "file-https-base-url is not an https URL")
            try:
                parts.port  # noqa: B018 - raises ValueError for a bad port
            except ValueError:
                raise DownloadError("bad-source", "file-https-base-url has a bad port") from None
            source = cls(https_url=url, file_name=name)
        else:
            server = values.get("file-server", "").strip()
            if not server:
                raise DownloadError("bad-source", "neither file-https-base-url nor file-server")
            port_text = values.get("file-port", "").strip() or str(DEFAULT_PORT)
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise DownloadError("bad-source", "file-port is not a port number")
            source = cls(
                server=server,
                port=int(port_text),
                username=values.get("file-username", ""),
                password=values.get("file-pwd", ""),
                path=values.get("file-path", "").strip(),
                file_name=name,
            )
        if not source.name:
            raise DownloadError("bad-source", "no file name (file-name, or the URL's last segment)")
        return source

    @property
    def is_https(self) -> bool:
        return self.https_url is not None

    @property
    def name(self) -> str:
        """The file's name on the phone: `file-name`, else the URL's last path segment."""
        if self.file_name or self.https_url is None:
            return self.file_name
        return unquote(urlsplit(self.https_url).path.rpartition("/")[2])

    @property
    def url(self) -> str:
        """The HTTPS URL to GET (spec §6.1 [B]); '' for FTP."""
        if self.https_url is None:
            return ""
        if self.https_url.endswith("/"):
            return self.https_url + quote(self.file_name, safe="")
        return self.https_url

    def describe(self) -> str:
        """The source for a log line: URL, or ``ftp://user@server:port/path/name``."""
        if self.https_url is not None:
            # Never the userinfo of a URL: a password there must not reach a log.
            parts = urlsplit(self.url)
            host = parts.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            if parts.port is not None:
                netloc += f":{parts.port}"
            return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        user = f"{self.username}@" if self.username else ""
        path = self.path.rstrip("/")
        return f"ftp://{user}{self.server}:{self.port}{path}/{self.file_name}"


@dataclass(frozen=True, slots=True)
class Fetched:
    """One successful attempt: `received` bytes written, `total` the whole file's size
    as announced (None when the server did not say), `resumed` when appended."""

    received: int
    total: int | None
    resumed: bool


def fetch(
    source: FileSource,
    sink: BinaryIO,
    *,
    max_bytes: int,
    https_trust_for: TrustFor,
    offset: int = 0,
    connect_timeout: float = 10.0,
    timeout: float = 30.0,
) -> Fetched:
    """One attempt at `source` into `sink` (from `offset`, appending, when > 0).

    A server that cannot resume makes `sink` rewound and truncated (it must be
    seekable then) and gets the whole file. More than `max_bytes` in all raises
    `DownloadError` ``too-large``, any other failure its own kind; an `OSError`
    of `sink` itself (a full disk) propagates unchanged.
    """
    try:
        if source.https_url is not None:
            return _fetch_https(
                source,
                sink,
                max_bytes=max_bytes,
                trust_for=https_trust_for,
                offset=offset,
                connect_timeout=connect_timeout,
                timeout=timeout,
            )
        result = ftp_get(
            source.server,
            source.port,
            user=source.username,
            password=source.password,
            path=source.path,
            name=source.file_name,
            sink=sink,
            max_bytes=max_bytes,
            offset=offset,
            connect_timeout=connect_timeout,
            timeout=timeout,
        )
        return Fetched(result.received, result.size, result.resumed)
    except TransportError as exc:
        raise DownloadError(exc.kind, exc.message) from None
    except FtpRefused as exc:
        raise DownloadError(exc.kind, exc.message) from None
    except ValueError as exc:  # a control character, an URL http.client refuses
        raise DownloadError("bad-source", str(exc)) from None


def fetch_complete(
    source: FileSource,
    sink: BinaryIO,
    *,
    max_bytes: int,
    https_trust_for: TrustFor,
    attempts: int = 3,
    retry_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    connect_timeout: float = 10.0,
    timeout: float = 30.0,
) -> int:
    """Download `source` into the seekable `sink` completely, resuming cut downloads.

    Up to `attempts` tries; after a network failure the next one resumes where
    `sink` ends (or restarts when the server cannot resume), after `retry_delay`
    × attempt seconds. Returns the size. On failure `sink` may hold part of the
    file: the caller keeps it under a temporary name and never uses it (spec §6.2
    [B]). A failure that is the server's answer (404, too large) is not retried.
    """
    for attempt in range(1, attempts + 1):
        offset = sink.seek(0, os.SEEK_END)
        try:
            got = fetch(
                source,
                sink,
                max_bytes=max_bytes,
                https_trust_for=https_trust_for,
                offset=offset,
                connect_timeout=connect_timeout,
                timeout=timeout,
            )
            sink.flush()
            size = sink.seek(0, os.SEEK_END)
            if got.total is not None and size != got.total:
                raise DownloadError(
                    "incomplete", f"{size} of {got.total} bytes from {source.describe()}"
                )
        except DownloadError as exc:
            if not exc.retryable or attempt == attempts:
                raise
            log.info(
                "download of %s failed (%s), attempt %d of %d; resuming",
                source.describe(),
                exc.message,
                attempt,
                attempts,
                extra={"PROVD_DOWNLOAD_ERROR": exc.kind},
            )
            sleep(retry_delay * attempt)
            continue
        return size
    raise AssertionError("unreachable")


def fetch_to_file(
    source: FileSource,
    path: Path,
    *,
    max_bytes: int,
    https_trust_for: TrustFor,
    attempts: int = 3,
    retry_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    connect_timeout: float = 10.0,
    timeout: float = 30.0,
) -> int:
    """`fetch_complete` into `path` (created or truncated), synced on success; the size."""
    with path.open("w+b") as file:
        size = fetch_complete(
            source,
            file,
            max_bytes=max_bytes,
            https_trust_for=https_trust_for,
            attempts=attempts,
            retry_delay=retry_delay,
            sleep=sleep,
            connect_timeout=connect_timeout,
            timeout=timeout,
        )
        os.fsync(file.fileno())
    return size


def _fetch_https(
    source: FileSource,
    sink: BinaryIO,
    *,
    max_bytes: int,
    trust_for: TrustFor,
    offset: int,
    connect_timeout: float,
    timeout: float,
) -> Fetched:
    url = _safe_url(source.url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    channel = HttpsChannel(
        url, trust=trust_for(host, port), connect_timeout=connect_timeout, response_timeout=timeout
    )
    where = f"{host}:{port}"
    with channel:
        got = channel.get(url, max_bytes=max_bytes, sink=sink, offset=offset)
        if got.status == 416 and offset > 0:
            # Nothing at that offset any more (the file changed): start over.
            sink.seek(0)
            sink.truncate()
            offset = 0
            got = channel.get(url, max_bytes=max_bytes, sink=sink)
    if got.status in (200, 206):
        total = _total(got.status, got.header)
        have = (offset if got.resumed else 0) + got.received
        if total is not None and have != total:
            # http.client's read(n) ends quietly when the connection drops before
            # Content-Length is reached: the transfer was cut.
            raise DownloadError("closed", f"{where} ended the transfer at {have} of {total} bytes")
        return Fetched(got.received, total, got.resumed)
    if got.status in (404, 410):
        raise DownloadError("not-found", f"{where} answered {got.status} for {parts.path}")
    if got.status in (401, 403):
        raise DownloadError("denied", f"{where} answered {got.status} for {parts.path}")
    raise DownloadError("refused", f"{where} answered {got.status} for {parts.path}")


def _total(status: int, header: Callable[[str], str | None]) -> int | None:
    if status == 206:
        # "bytes 100-199/200"; "*" when the server does not know
        whole = (header("Content-Range") or "").rpartition("/")[2]
        return int(whole) if whole.isdigit() else None
    length = header("Content-Length")
    return int(length) if length is not None and length.isdigit() else None


def _safe_url(url: str) -> str:
    """`url` with spaces and other bytes http.client refuses percent-encoded."""
    parts = urlsplit(url)
    return urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            quote(parts.path, safe=_PATH_SAFE),
            quote(parts.query, safe=_PATH_SAFE + "?"),
            "",
        )
    )
