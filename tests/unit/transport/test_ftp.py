"""ftp_get against a real FTP server (pyftpdlib) on 127.0.0.1: passive, binary, SIZE, REST.

The server is the lab's (`provd.lab.fileserver.FtpFileServer`, through
`tests.fileservers.ftp_server` for a server without SIZE or REST).
"""

from __future__ import annotations

import io
import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from provd.lab.fileserver import DEFAULT_PASSWORD as PASSWORD
from provd.lab.fileserver import DEFAULT_USER as USER
from provd.lab.fileserver import FileBehaviour, FtpFileServer
from provd.transport.errors import TransportError
from provd.transport.ftp import FtpRefused, ftp_get, remote_path
from tests.fileservers import ftp_server, rests

BIG = "/media/big.img"


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    (root / "media").mkdir(parents=True)
    return root


def get(srv: FtpFileServer, name: str, sink: io.BytesIO, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "user": USER,
        "password": PASSWORD,
        "path": "/media",
        "name": name,
        "sink": sink,
        "max_bytes": 1 << 20,
        "timeout": 5.0,
        "connect_timeout": 5.0,
    }
    args.update(kw)
    return ftp_get("127.0.0.1", srv.port, **args)


DATA = bytes(range(256)) * 600  # 153 600 bytes, several data chunks


def test_download_in_binary_mode_writes_every_byte(served: Path) -> None:
    (served / "media" / "ring tone.wav").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpFileServer(served) as srv:
        result = get(srv, "ring tone.wav", sink)

    assert sink.getvalue() == DATA
    assert (result.received, result.size, result.resumed) == (len(DATA), len(DATA), False)
    commands = srv.commands
    assert ("USER", USER) in commands and ("TYPE", "I") in commands
    assert {"PASV", "EPSV"} & {c for c, _ in commands}
    assert "PORT" not in {c for c, _ in commands}
    assert ("RETR", "/media/ring tone.wav") in commands


def test_path_with_trailing_slash_and_root_path_name_the_same_file() -> None:
    assert remote_path("/media/", "a.wav") == "/media/a.wav"
    assert remote_path("/media", "a.wav") == "/media/a.wav"
    assert remote_path("/", "a.wav") == "/a.wav"
    assert remote_path("", "a.wav") == "a.wav"


def test_missing_file_is_not_found_550(served: Path) -> None:
    sink = io.BytesIO()
    with FtpFileServer(served) as srv, pytest.raises(FtpRefused) as info:
        get(srv, "nothing.wav", sink)

    assert (info.value.kind, info.value.code) == ("not-found", "550")
    assert sink.getvalue() == b""


def test_wrong_password_is_denied_and_the_password_is_not_in_the_error(
    served: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FtpFileServer(served) as srv, pytest.raises(FtpRefused) as info:
        get(srv, "x.wav", io.BytesIO(), password="s3cr3t-Pw")

    assert info.value.kind == "denied"
    assert "s3cr3t-Pw" not in str(info.value)
    assert all("s3cr3t-Pw" not in r.getMessage() for r in caplog.records)


def test_a_server_echoing_the_refused_password_does_not_put_it_in_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Some servers answer an unexpected PASS with a reply that quotes the command.
    caplog.set_level(logging.DEBUG)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            conn, _ = listener.accept()
            with conn, conn.makefile("rwb") as stream:
                stream.write(b"220 ready\r\n")
                stream.flush()
                stream.readline()  # USER
                stream.write(b"331 password please\r\n")
                stream.flush()
                line = stream.readline().strip()  # PASS s3cr3t-Pw
                stream.write(b"501 '" + line + b"': command not understood\r\n")
                stream.flush()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with pytest.raises(FtpRefused) as info:
            ftp_get(
                "127.0.0.1",
                listener.getsockname()[1],
                user=USER,
                password="s3cr3t-Pw",
                path="/media",
                name="x.wav",
                sink=io.BytesIO(),
                max_bytes=1 << 20,
                timeout=5.0,
                connect_timeout=5.0,
            )
        thread.join(5)
    assert info.value.code == "501"
    assert "s3cr3t-Pw" not in str(info.value)
    assert all("s3cr3t-Pw" not in r.getMessage() for r in caplog.records)


def test_data_connection_failing_mid_file_is_closed(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpFileServer(served) as srv:
        srv.misbehave(BIG, FileBehaviour(cut_after=70_000))
        with pytest.raises(TransportError) as info:
            get(srv, "big.img", sink)

    assert info.value.kind == "closed"
    assert len(sink.getvalue()) < len(DATA)


def test_cut_without_size_support_is_still_closed_by_the_426(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    with ftp_server(served, without={"SIZE"}) as srv:
        srv.misbehave(BIG, FileBehaviour(cut_after=70_000))
        with pytest.raises(TransportError) as info:
            get(srv, "big.img", io.BytesIO())

    assert info.value.kind == "closed"


def test_file_ending_before_the_announced_size_with_226_is_closed(served: Path) -> None:
    # 1000 bytes served whole (226) while SIZE announces all of DATA
    (served / "media" / "big.img").write_bytes(DATA[:1000])
    with FtpFileServer(served) as srv:
        srv.misbehave(BIG, FileBehaviour(announce=len(DATA)))
        with pytest.raises(TransportError) as info:
            get(srv, "big.img", io.BytesIO())

    assert info.value.kind == "closed"
    assert "1000 of 153600" in info.value.message


def test_file_announced_larger_than_allowed_is_refused_before_retr(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpFileServer(served) as srv:
        with pytest.raises(TransportError) as info:
            get(srv, "big.img", sink, max_bytes=1000)
        retrs = srv.retrieved(BIG)

    assert info.value.kind == "too-large"
    assert retrs == 0
    assert sink.getvalue() == b""


def test_more_bytes_than_announced_is_refused_as_a_protocol_error(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpFileServer(served) as srv:
        srv.misbehave(BIG, FileBehaviour(announce=5000))
        with pytest.raises(FtpRefused) as info:
            get(srv, "big.img", sink)

    assert info.value.kind == "protocol"
    assert len(sink.getvalue()) <= 5000


def test_without_size_the_cap_still_stops_the_transfer(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO()
    with ftp_server(served, without={"SIZE"}) as srv, pytest.raises(TransportError) as info:
        get(srv, "big.img", sink, max_bytes=100_000)

    assert info.value.kind == "too-large"
    assert len(sink.getvalue()) <= 100_000


def test_resume_asks_for_the_rest_with_rest_and_appends(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO(DATA[:50_000])
    sink.seek(0, io.SEEK_END)
    with FtpFileServer(served) as srv:
        result = get(srv, "big.img", sink, offset=50_000)
        offsets = rests(srv)

    assert offsets == [50_000]
    assert result.resumed and result.received == len(DATA) - 50_000
    assert sink.getvalue() == DATA


def test_server_without_rest_restarts_from_the_first_byte(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO(b"x" * 50_000)
    sink.seek(0, io.SEEK_END)
    with ftp_server(served, without={"REST"}) as srv:
        result = get(srv, "big.img", sink, offset=50_000)

    assert not result.resumed
    assert sink.getvalue() == DATA


def test_refused_connection_is_connect(served: Path) -> None:
    with FtpFileServer(served) as srv:
        port = srv.port
    with pytest.raises(TransportError) as info:
        ftp_get(
            "127.0.0.1", port, user=USER, password=PASSWORD, path="", name="x",
            sink=io.BytesIO(), max_bytes=10, connect_timeout=2.0,
        )  # fmt: skip

    assert info.value.kind == "connect"


@pytest.mark.parametrize("name", ["a\r\nDELE b", "a\nb", "a\x00b"])
def test_control_characters_are_refused_before_connecting(name: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        ftp_get(
            "127.0.0.1", 9, user=USER, password=PASSWORD, path="/", name=name,
            sink=io.BytesIO(), max_bytes=10,
        )  # fmt: skip


class _FullDisk(io.BytesIO):
    def write(self, data: Any) -> int:
        raise OSError(28, "No space left on device")


def test_an_error_of_the_sink_itself_is_not_taken_for_the_network(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    with FtpFileServer(served) as srv, pytest.raises(OSError) as info:
        get(srv, "big.img", _FullDisk())
    assert not isinstance(info.value, TransportError)
    assert info.value.errno == 28
