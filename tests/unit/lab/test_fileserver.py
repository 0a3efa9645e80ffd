"""The lab's file servers, spoken to by the standard library's clients (ftplib, http.client)."""

from __future__ import annotations

import ftplib
import http.client
import io
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.lab.fileserver import (
    PLACEHOLDERS,
    FileBehaviour,
    FtpFileServer,
    HttpsFileServer,
)
from provd.lab.pki import LabPKI

DATA = bytes(range(256)) * 300  # 76 800 bytes


@pytest.fixture(scope="module")
def pki() -> LabPKI:
    return LabPKI.create()


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    (root / "media").mkdir(parents=True)
    (root / "media" / "ring tone.wav").write_bytes(DATA)
    return root


@pytest.fixture
def ftp(served: Path) -> Iterator[FtpFileServer]:
    with FtpFileServer(served, user="dls", password="secret-pw") as server:
        yield server


@pytest.fixture
def https(pki: LabPKI, served: Path) -> Iterator[HttpsFileServer]:
    with HttpsFileServer(pki=pki, root=served) as server:
        yield server


# --------------------------------------------------------------------------- FTP


def ftp_login(server: FtpFileServer, password: str = "secret-pw") -> ftplib.FTP:
    client = ftplib.FTP()
    client.connect("127.0.0.1", server.port, timeout=5)
    client.login("dls", password)
    client.set_pasv(True)
    return client


def retr(client: ftplib.FTP, path: str, rest: int | None = None) -> bytes:
    sink = io.BytesIO()
    client.retrbinary(f"RETR {path}", sink.write, rest=rest)
    return sink.getvalue()


def test_ftp_serves_the_directory_to_its_user_in_binary_with_size_and_rest(
    ftp: FtpFileServer,
) -> None:
    client = ftp_login(ftp)
    try:
        client.voidcmd("TYPE I")
        assert client.size("/media/ring tone.wav") == len(DATA)
        assert retr(client, "/media/ring tone.wav") == DATA
        assert retr(client, "/media/ring tone.wav", rest=1000) == DATA[1000:]
    finally:
        client.quit()
    assert ftp.retrieved("/media/ring tone.wav") == 2
    assert ("USER", "dls") in ftp.commands
    assert ("PASS", "") in ftp.commands  # the password is never recorded
    assert all("secret-pw" not in arg for _, arg in ftp.commands)


def test_ftp_refuses_a_wrong_password_and_a_missing_file(ftp: FtpFileServer) -> None:
    with pytest.raises(ftplib.error_perm, match="530"):
        ftp_login(ftp, password="wrong")
    client = ftp_login(ftp)
    try:
        with pytest.raises(ftplib.error_perm, match="550"):
            retr(client, "/media/none.wav")
    finally:
        client.quit()


def test_ftp_is_read_only(ftp: FtpFileServer, served: Path) -> None:
    client = ftp_login(ftp)
    try:
        with pytest.raises(ftplib.error_perm, match="550"):
            client.storbinary("STOR /media/new.wav", io.BytesIO(b"x"))
    finally:
        client.quit()
    assert not (served / "media" / "new.wav").exists()


def test_ftp_cuts_a_transfer_the_given_number_of_times_then_serves_it_whole(
    ftp: FtpFileServer,
) -> None:
    ftp.misbehave("/media/ring tone.wav", FileBehaviour(cut_after=5000, cuts=1))
    client = ftp_login(ftp)
    try:
        client.voidcmd("TYPE I")
        got = io.BytesIO()
        with pytest.raises(ftplib.error_temp, match="426"):
            client.retrbinary("RETR /media/ring tone.wav", got.write)
        assert got.getvalue() == DATA[:5000]
        assert retr(client, "/media/ring tone.wav", rest=5000) == DATA[5000:]
    finally:
        client.close()


def test_ftp_announces_the_size_it_is_told(ftp: FtpFileServer) -> None:
    ftp.misbehave("/media/ring tone.wav", FileBehaviour(announce=10))
    client = ftp_login(ftp)
    try:
        client.voidcmd("TYPE I")
        assert client.size("/media/ring tone.wav") == 10
        assert retr(client, "/media/ring tone.wav") == DATA  # and sends the whole file
    finally:
        client.quit()


def test_ftp_values_and_placeholders_name_the_server(ftp: FtpFileServer) -> None:
    assert ftp.values("a.wav", path="/media") == {
        "file-server": "127.0.0.1",
        "file-port": str(ftp.port),
        "file-username": "dls",
        "file-pwd": "secret-pw",
        "file-path": "/media",
        "file-name": "a.wav",
    }
    assert ftp.url == f"ftp://dls@127.0.0.1:{ftp.port}/"
    assert set(ftp.placeholders()) <= set(PLACEHOLDERS)
    assert ftp.placeholders()["ftp-port"] == str(ftp.port)


# --------------------------------------------------------------------------- HTTPS


def connect(server: HttpsFileServer, pki: LabPKI) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cadata=pki.ca.cert_pem.decode())
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=5)


def get(
    server: HttpsFileServer, pki: LabPKI, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = connect(server, pki)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        try:
            body = resp.read()
        except http.client.IncompleteRead as exc:
            body = exc.partial
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def test_https_serves_put_files_and_the_root_directory_verified_by_the_lab_ca(
    https: HttpsFileServer, pki: LabPKI
) -> None:
    url = https.put("/logos/logo.png", b"PNG")
    assert url == f"https://127.0.0.1:{https.port}/logos/logo.png"
    assert get(https, pki, "/logos/logo.png")[::2] == (200, b"PNG")
    status, headers, body = get(https, pki, "/media/ring%20tone.wav")
    assert (status, body, headers["content-length"]) == (200, DATA, str(len(DATA)))
    assert https.ca_pem == pki.ca.cert_pem


def test_https_answers_404_for_what_it_does_not_have_and_never_leaves_its_root(
    https: HttpsFileServer, pki: LabPKI, served: Path
) -> None:
    (served.parent / "secret.txt").write_bytes(b"outside")
    for path in ("/media/none.wav", "/../secret.txt", "/media/..%2F..%2Fsecret.txt"):
        status, _, body = get(https, pki, path)
        assert status == 404, path
        assert b"outside" not in body
    assert [r.status for r in https.requests] == [404, 404, 404]


def test_https_honours_a_range_and_can_ignore_it(https: HttpsFileServer, pki: LabPKI) -> None:
    status, headers, body = get(https, pki, "/media/ring%20tone.wav", {"Range": "bytes=1000-"})
    assert (status, body) == (206, DATA[1000:])
    assert headers["content-range"] == f"bytes 1000-{len(DATA) - 1}/{len(DATA)}"
    status, _, body = get(https, pki, "/media/ring%20tone.wav", {"Range": "bytes=10-19"})
    assert (status, body) == (206, DATA[10:20])
    status, headers, _ = get(https, pki, "/media/ring%20tone.wav", {"Range": "bytes=999999-"})
    assert (status, headers["content-range"]) == (416, f"bytes */{len(DATA)}")

    https.misbehave("/media/ring tone.wav", FileBehaviour(ignore_range=True))
    status, _, body = get(https, pki, "/media/ring%20tone.wav", {"Range": "bytes=1000-"})
    assert (status, body) == (200, DATA)
    assert [r.range for r in https.requests][-1] == "bytes=1000-"


def test_https_cuts_a_download_mid_file_then_serves_it(https: HttpsFileServer, pki: LabPKI) -> None:
    https.misbehave("/media/ring tone.wav", FileBehaviour(cut_after=3000, cuts=1))
    status, headers, body = get(https, pki, "/media/ring%20tone.wav")
    assert (status, headers["content-length"], body) == (200, str(len(DATA)), DATA[:3000])
    assert get(https, pki, "/media/ring%20tone.wav")[::2] == (200, DATA)
    assert https.retrieved("/media/ring tone.wav") == 2


def test_https_can_announce_more_than_it_sends(https: HttpsFileServer, pki: LabPKI) -> None:
    https.put("/f.bin", b"x" * 100)
    https.misbehave("/f.bin", FileBehaviour(announce=1000))
    status, headers, body = get(https, pki, "/f.bin")
    assert (status, headers["content-length"], body) == (200, "1000", b"x" * 100)


def test_https_answers_a_status_instead_of_the_file(https: HttpsFileServer, pki: LabPKI) -> None:
    https.put("/f.bin", b"data")
    https.misbehave("/f.bin", FileBehaviour(status=403))
    assert get(https, pki, "/f.bin")[0] == 403
    https.misbehave("/f.bin", None)
    assert get(https, pki, "/f.bin")[::2] == (200, b"data")


def test_https_values_follow_the_base_url_rule_of_the_spec(https: HttpsFileServer) -> None:
    base = https.url
    assert https.values("/media/ring tone.wav") == {
        "file-https-base-url": f"{base}/media/ring%20tone.wav"
    }
    assert https.values("/media/ring tone.wav", base=True) == {
        "file-https-base-url": f"{base}/media/",
        "file-name": "ring tone.wav",
    }
    assert https.values("/get", name="x.wav") == {
        "file-https-base-url": f"{base}/get",
        "file-name": "x.wav",
    }
    assert https.placeholders() == {"https-base-url": base}


def test_a_client_that_does_not_trust_the_lab_ca_fails_the_handshake(
    https: HttpsFileServer,
) -> None:
    other = LabPKI.create()
    conn = connect(https, other)
    with pytest.raises(ssl.SSLError):
        conn.request("GET", "/media/ring%20tone.wav")
    conn.close()
