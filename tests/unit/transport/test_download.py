"""fetch / fetch_to_file: the §6.1 source rules, HTTPS and FTP downloads, resume after a cut.

`HttpsFileServer` (stdlib `ssl` + `http.server`) is also used by the deployment
integration test.
"""

from __future__ import annotations

import http.server
import io
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import pytest

from provd.transport.download import DownloadError, FileSource, fetch, fetch_to_file
from provd.transport.tls import TrustPolicy
from tests.certs import Issued

from .pki import Pki
from .test_ftp import PASSWORD, USER, Behaviour, FtpServer

DATA = bytes(range(256)) * 600  # 153 600 bytes


@dataclass
class FileBehaviour:
    """How `HttpsFileServer` misbehaves for one path."""

    cut_after: int | None = None  # announce the whole file, send this many bytes, drop TCP
    cuts: int = 1_000_000  # ... this many times
    ignore_range: bool = False
    length_says: int | None = None  # Content-Length header instead of the real one


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None


class HttpsFileServer:
    """Serves `files` (URL path → bytes) over HTTPS on 127.0.0.1, with Range support."""

    def __init__(self, cert: Issued) -> None:
        self.files: dict[str, bytes] = {}
        self.behaviours: dict[str, FileBehaviour] = {}
        self.requests: list[Request] = []
        assert cert.cert_path is not None and cert.key_path is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(Request(self.path, self.headers.get("Range")))
                body = owner.files.get(unquote(self.path))
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "9")
                    self.end_headers()
                    self.wfile.write(b"not found")
                    return
                b = owner.behaviours.get(unquote(self.path), FileBehaviour())
                start = 0
                rng = self.headers.get("Range")
                if rng and not b.ignore_range:
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                length = b.length_says if b.length_says is not None else len(part)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if b.cut_after is not None and b.cuts > 0:
                    b.cuts -= 1
                    self.wfile.write(part[: b.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, addr = self.socket.accept()
                sock.settimeout(5)
                return ctx.wrap_socket(sock, server_side=True), addr

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HttpsFileServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


class TrustRecorder:
    """`https_trust_for` that trusts `ca` and records whom it was asked about."""

    def __init__(self, ca: Issued) -> None:
        self.policy = TrustPolicy.from_ca_pem(ca.cert_pem)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> TrustPolicy:
        self.asked.append((host, port))
        return self.policy


@pytest.fixture
def https(pki: Pki) -> Any:
    with HttpsFileServer(pki.server) as srv:
        yield srv


# --------------------------------------------------------------------------- the source rules


def test_base_url_ending_in_slash_gets_the_file_name_appended_encoded() -> None:
    source = FileSource.from_values(
        {"file-https-base-url": "https://dls/media/", "file-name": "Logo for OS80.png"}
    )
    assert source.url == "https://dls/media/Logo%20for%20OS80.png"
    assert source.name == "Logo for OS80.png"


def test_whole_url_without_file_name_names_the_file_after_its_last_segment() -> None:
    # [G p.53]: the guide's own HTTPS example
    source = FileSource.from_values(
        {"file-https-base-url": "https://192.168.1.150/media/ringtone%20phone.wav"}
    )
    assert source.url == "https://192.168.1.150/media/ringtone%20phone.wav"
    assert source.name == "ringtone phone.wav"


def test_whole_url_with_file_name_downloads_the_url_and_keeps_the_file_name() -> None:
    source = FileSource.from_values(
        {"file-https-base-url": "https://dls/get?id=7", "file-name": "ring.wav"}
    )
    assert (source.url, source.name) == ("https://dls/get?id=7", "ring.wav")


def test_without_base_url_ftp_is_used_with_port_21_by_default() -> None:
    source = FileSource.from_values(
        {
            "file-server": "192.168.1.150",
            "file-username": "dls",
            "file-pwd": "dlsftp5",
            "file-path": "/media",
            "file-name": "ringtone-phone.wav",
        }
    )
    assert not source.is_https
    assert (source.server, source.port, source.path, source.name) == (
        "192.168.1.150",
        21,
        "/media",
        "ringtone-phone.wav",
    )
    assert "dlsftp5" not in repr(source)
    assert "dlsftp5" not in source.describe()


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"file-https-base-url": "http://dls/media/a.wav"},
        {"file-https-base-url": "https:///a.wav"},
        {"file-https-base-url": "https://dls:99999/a.wav"},
        {"file-https-base-url": "https://dls/media/"},
        {"file-server": "dls", "file-name": "a.wav", "file-port": "ftp"},
        {"file-server": "dls", "file-name": "a.wav", "file-port": "0"},
        {"file-server": "dls"},
    ],
)
def test_items_naming_no_fetchable_file_are_a_bad_source(values: dict[str, str]) -> None:
    with pytest.raises(DownloadError) as info:
        FileSource.from_values(values)
    assert info.value.kind == "bad-source"


# --------------------------------------------------------------------------- HTTPS


def test_https_download_asks_the_caller_whom_to_trust(https: HttpsFileServer, pki: Pki) -> None:
    https.files["/media/a b.png"] = DATA
    trust = TrustRecorder(pki.ca)
    source = FileSource.from_values(
        {"file-https-base-url": https.url("/media/"), "file-name": "a b.png"}
    )
    sink = io.BytesIO()

    got = fetch(source, sink, max_bytes=1 << 20, https_trust_for=trust)

    assert sink.getvalue() == DATA
    assert (got.received, got.total, got.resumed) == (len(DATA), len(DATA), False)
    assert trust.asked == [("127.0.0.1", https.port)]
    assert https.requests[0].path == "/media/a%20b.png"


def test_https_download_from_an_untrusted_server_fails_tls(
    https: HttpsFileServer, pki: Pki
) -> None:
    https.files["/a.png"] = DATA
    source = FileSource.from_values({"file-https-base-url": https.url("/a.png")})
    with pytest.raises(DownloadError) as info:
        fetch(source, io.BytesIO(), max_bytes=1 << 20, https_trust_for=TrustRecorder(pki.other_ca))
    assert info.value.kind == "tls"
    assert https.requests == []


def test_https_404_is_not_found_and_writes_nothing(https: HttpsFileServer, pki: Pki) -> None:
    sink = io.BytesIO()
    source = FileSource.from_values({"file-https-base-url": https.url("/none.png")})
    with pytest.raises(DownloadError) as info:
        fetch(source, sink, max_bytes=1 << 20, https_trust_for=TrustRecorder(pki.ca))
    assert info.value.kind == "not-found"
    assert sink.getvalue() == b""


def test_https_cut_mid_file_is_closed(https: HttpsFileServer, pki: Pki) -> None:
    https.files["/a.img"] = DATA
    https.behaviours["/a.img"] = FileBehaviour(cut_after=70_000)
    source = FileSource.from_values({"file-https-base-url": https.url("/a.img")})
    sink = io.BytesIO()
    with pytest.raises(DownloadError) as info:
        fetch(source, sink, max_bytes=1 << 20, https_trust_for=TrustRecorder(pki.ca))
    assert info.value.kind == "closed"
    assert info.value.retryable
    assert len(sink.getvalue()) < len(DATA)


def test_https_file_announced_larger_than_allowed_is_too_large(
    https: HttpsFileServer, pki: Pki
) -> None:
    https.files["/a.img"] = DATA
    source = FileSource.from_values({"file-https-base-url": https.url("/a.img")})
    sink = io.BytesIO()
    with pytest.raises(DownloadError) as info:
        fetch(source, sink, max_bytes=1000, https_trust_for=TrustRecorder(pki.ca))
    assert info.value.kind == "too-large"
    assert not info.value.retryable
    assert sink.getvalue() == b""


def test_cut_https_download_resumes_with_range(
    https: HttpsFileServer, pki: Pki, tmp_path: Path
) -> None:
    https.files["/fw.img"] = DATA
    https.behaviours["/fw.img"] = FileBehaviour(cut_after=70_000, cuts=1)
    source = FileSource.from_values({"file-https-base-url": https.url("/fw.img")})
    slept: list[float] = []
    target = tmp_path / "fw.partial"

    size = fetch_to_file(
        source,
        target,
        max_bytes=1 << 20,
        https_trust_for=TrustRecorder(pki.ca),
        sleep=slept.append,
    )

    assert size == len(DATA)
    assert target.read_bytes() == DATA
    assert [r.range for r in https.requests] == [None, "bytes=70000-"]
    assert slept == [2.0]


def test_server_ignoring_range_restarts_from_the_first_byte(
    https: HttpsFileServer, pki: Pki, tmp_path: Path
) -> None:
    https.files["/fw.img"] = DATA
    https.behaviours["/fw.img"] = FileBehaviour(cut_after=70_000, cuts=1, ignore_range=True)
    source = FileSource.from_values({"file-https-base-url": https.url("/fw.img")})
    target = tmp_path / "fw.partial"

    fetch_to_file(
        source, target, max_bytes=1 << 20, https_trust_for=TrustRecorder(pki.ca), sleep=print
    )

    assert target.read_bytes() == DATA


def test_download_cut_every_time_fails_after_the_attempts(
    https: HttpsFileServer, pki: Pki, tmp_path: Path
) -> None:
    https.files["/fw.img"] = DATA
    https.behaviours["/fw.img"] = FileBehaviour(cut_after=1000)
    source = FileSource.from_values({"file-https-base-url": https.url("/fw.img")})
    slept: list[float] = []

    with pytest.raises(DownloadError) as info:
        fetch_to_file(
            source,
            tmp_path / "fw.partial",
            max_bytes=1 << 20,
            https_trust_for=TrustRecorder(pki.ca),
            attempts=3,
            retry_delay=0.5,
            sleep=slept.append,
        )

    assert info.value.kind == "closed"
    assert len(https.requests) == 3
    assert slept == [0.5, 1.0]


def test_not_found_is_not_retried(https: HttpsFileServer, pki: Pki, tmp_path: Path) -> None:
    source = FileSource.from_values({"file-https-base-url": https.url("/none.img")})
    with pytest.raises(DownloadError) as info:
        fetch_to_file(source, tmp_path / "x", max_bytes=100, https_trust_for=TrustRecorder(pki.ca))
    assert info.value.kind == "not-found"
    assert len(https.requests) == 1


# --------------------------------------------------------------------------- FTP


def ftp_source(srv: FtpServer, name: str) -> FileSource:
    return FileSource.from_values(
        {
            "file-server": "127.0.0.1",
            "file-port": str(srv.port),
            "file-username": USER,
            "file-pwd": PASSWORD,
            "file-path": "/media/",
            "file-name": name,
        }
    )


def never_asked(host: str, port: int) -> TrustPolicy:
    raise AssertionError("FTP needs no TLS trust")


def test_ftp_download_through_fetch(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "ring.wav").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpServer(tmp_path) as srv:
        got = fetch(
            ftp_source(srv, "ring.wav"), sink, max_bytes=1 << 20, https_trust_for=never_asked
        )
    assert sink.getvalue() == DATA
    assert got.total == len(DATA)


def test_ftp_550_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    with FtpServer(tmp_path) as srv, pytest.raises(DownloadError) as info:
        fetch(ftp_source(srv, "none.wav"), io.BytesIO(), max_bytes=10, https_trust_for=never_asked)
    assert info.value.kind == "not-found"


def test_cut_ftp_download_resumes_with_rest(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "fw.img").write_bytes(DATA)
    target = tmp_path / "fw.partial"
    with FtpServer(tmp_path) as srv:
        srv.behaviours["fw.img"] = Behaviour(cut_after=70_000, cuts=1)
        size = fetch_to_file(
            ftp_source(srv, "fw.img"),
            target,
            max_bytes=1 << 20,
            https_trust_for=never_asked,
            sleep=lambda s: None,
        )
        rests = list(srv.rests)

    assert size == len(DATA)
    assert target.read_bytes() == DATA
    assert len(rests) == 1 and 0 < rests[0] <= 70_000
