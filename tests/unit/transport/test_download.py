"""fetch / fetch_to_file: the §6.1 source rules, HTTPS and FTP downloads, resume after a cut.

The file servers are the lab's (`provd.lab.fileserver`), presenting the transport
tests' certificates.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.lab.fileserver import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    FileBehaviour,
    FtpFileServer,
    HttpsFileServer,
)
from provd.lab.pki import LabPKI
from provd.transport.download import DownloadError, FileSource, fetch, fetch_to_file
from provd.transport.tls import TrustPolicy
from tests.certs import Issued
from tests.fileservers import rests

from .pki import Pki

DATA = bytes(range(256)) * 600  # 153 600 bytes


class TrustRecorder:
    """`https_trust_for` that trusts `ca` and records whom it was asked about."""

    def __init__(self, ca: Issued) -> None:
        self.policy = TrustPolicy.from_ca_pem(ca.cert_pem)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> TrustPolicy:
        self.asked.append((host, port))
        return self.policy


@pytest.fixture
def https(pki: Pki) -> Iterator[HttpsFileServer]:
    with HttpsFileServer(pki=LabPKI(pki.ca, pki.server)) as srv:
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
    https.put("/media/a b.png", DATA)
    trust = TrustRecorder(pki.ca)
    source = FileSource.from_values(
        {"file-https-base-url": https.url_for("/media/"), "file-name": "a b.png"}
    )
    sink = io.BytesIO()

    got = fetch(source, sink, max_bytes=1 << 20, https_trust_for=trust)

    assert sink.getvalue() == DATA
    assert (got.received, got.total, got.resumed) == (len(DATA), len(DATA), False)
    assert trust.asked == [("127.0.0.1", https.port)]
    # the file name is sent percent-encoded; the server records the path decoded
    assert source.url == f"{https.url}/media/a%20b.png"
    assert https.requests[0].path == "/media/a b.png"


def test_https_download_from_an_untrusted_server_fails_tls(
    https: HttpsFileServer, pki: Pki
) -> None:
    https.put("/a.png", DATA)
    source = FileSource.from_values({"file-https-base-url": https.url_for("/a.png")})
    with pytest.raises(DownloadError) as info:
        fetch(source, io.BytesIO(), max_bytes=1 << 20, https_trust_for=TrustRecorder(pki.other_ca))
    assert info.value.kind == "tls"
    assert https.requests == []


def test_https_404_is_not_found_and_writes_nothing(https: HttpsFileServer, pki: Pki) -> None:
    sink = io.BytesIO()
    source = FileSource.from_values({"file-https-base-url": https.url_for("/none.png")})
    with pytest.raises(DownloadError) as info:
        fetch(source, sink, max_bytes=1 << 20, https_trust_for=TrustRecorder(pki.ca))
    assert info.value.kind == "not-found"
    assert sink.getvalue() == b""


def test_https_cut_mid_file_is_closed(https: HttpsFileServer, pki: Pki) -> None:
    https.put("/a.img", DATA)
    https.misbehave("/a.img", FileBehaviour(cut_after=70_000))
    source = FileSource.from_values({"file-https-base-url": https.url_for("/a.img")})
    sink = io.BytesIO()
    with pytest.raises(DownloadError) as info:
        fetch(source, sink, max_bytes=1 << 20, https_trust_for=TrustRecorder(pki.ca))
    assert info.value.kind == "closed"
    assert info.value.retryable
    assert len(sink.getvalue()) < len(DATA)


def test_https_file_announced_larger_than_allowed_is_too_large(
    https: HttpsFileServer, pki: Pki
) -> None:
    https.put("/a.img", DATA)
    source = FileSource.from_values({"file-https-base-url": https.url_for("/a.img")})
    sink = io.BytesIO()
    with pytest.raises(DownloadError) as info:
        fetch(source, sink, max_bytes=1000, https_trust_for=TrustRecorder(pki.ca))
    assert info.value.kind == "too-large"
    assert not info.value.retryable
    assert sink.getvalue() == b""


def test_cut_https_download_resumes_with_range(
    https: HttpsFileServer, pki: Pki, tmp_path: Path
) -> None:
    https.put("/fw.img", DATA)
    https.misbehave("/fw.img", FileBehaviour(cut_after=70_000, cuts=1))
    source = FileSource.from_values({"file-https-base-url": https.url_for("/fw.img")})
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
    https.put("/fw.img", DATA)
    https.misbehave("/fw.img", FileBehaviour(cut_after=70_000, cuts=1, ignore_range=True))
    source = FileSource.from_values({"file-https-base-url": https.url_for("/fw.img")})
    target = tmp_path / "fw.partial"

    fetch_to_file(
        source, target, max_bytes=1 << 20, https_trust_for=TrustRecorder(pki.ca), sleep=print
    )

    assert target.read_bytes() == DATA


def test_download_cut_every_time_fails_after_the_attempts(
    https: HttpsFileServer, pki: Pki, tmp_path: Path
) -> None:
    https.put("/fw.img", DATA)
    https.misbehave("/fw.img", FileBehaviour(cut_after=1000))
    source = FileSource.from_values({"file-https-base-url": https.url_for("/fw.img")})
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
    source = FileSource.from_values({"file-https-base-url": https.url_for("/none.img")})
    with pytest.raises(DownloadError) as info:
        fetch_to_file(source, tmp_path / "x", max_bytes=100, https_trust_for=TrustRecorder(pki.ca))
    assert info.value.kind == "not-found"
    assert len(https.requests) == 1


# --------------------------------------------------------------------------- FTP


def ftp_source(srv: FtpFileServer, name: str) -> FileSource:
    return FileSource.from_values(
        {
            "file-server": "127.0.0.1",
            "file-port": str(srv.port),
            "file-username": DEFAULT_USER,
            "file-pwd": DEFAULT_PASSWORD,
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
    with FtpFileServer(tmp_path) as srv:
        got = fetch(
            ftp_source(srv, "ring.wav"), sink, max_bytes=1 << 20, https_trust_for=never_asked
        )
    assert sink.getvalue() == DATA
    assert got.total == len(DATA)


def test_ftp_550_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    with FtpFileServer(tmp_path) as srv, pytest.raises(DownloadError) as info:
        fetch(ftp_source(srv, "none.wav"), io.BytesIO(), max_bytes=10, https_trust_for=never_asked)
    assert info.value.kind == "not-found"


def test_cut_ftp_download_resumes_with_rest(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "fw.img").write_bytes(DATA)
    target = tmp_path / "fw.partial"
    with FtpFileServer(tmp_path) as srv:
        srv.misbehave("/media/fw.img", FileBehaviour(cut_after=70_000, cuts=1))
        size = fetch_to_file(
            ftp_source(srv, "fw.img"),
            target,
            max_bytes=1 << 20,
            https_trust_for=never_asked,
            sleep=lambda s: None,
        )
        offsets = rests(srv)

    assert size == len(DATA)
    assert target.read_bytes() == DATA
    assert len(offsets) == 1 and 0 < offsets[0] <= 70_000
