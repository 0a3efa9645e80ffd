"""ftp_get against a real FTP server (pyftpdlib) on 127.0.0.1: passive, binary, SIZE, REST.

`FtpServer` is also used by the deployment integration test.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

from provd.transport.errors import TransportError
from provd.transport.ftp import FtpRefused, ftp_get, remote_path

USER = "dls"
PASSWORD = "dlsftp5"


@dataclass
class Behaviour:
    """How the server misbehaves for one file name."""

    cut_after: int | None = None  # the data connection fails after this many bytes (426)
    cuts: int = 1_000_000  # ... this many times, then the file is served whole
    short_after: int | None = None  # the file ends early but the server says 226
    size_says: int | None = None  # what SIZE answers instead of the real size


class _CutFile(io.RawIOBase):
    """A file that stops after `limit` bytes: with an error, or as if it ended."""

    def __init__(self, inner: Any, limit: int, *, fail: bool) -> None:
        self._inner = inner
        self._left = limit
        self._fail = fail
        self.name = inner.name

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            if self._fail:
                raise OSError("disk pulled")
            return b""
        data: bytes = self._inner.read(min(size if size >= 0 else self._left, self._left))
        self._left -= len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._inner.seek(offset, whence))

    def close(self) -> None:
        self._inner.close()
        super().close()


class FtpServer:
    """A pyftpdlib server on 127.0.0.1 in a thread, serving `root` to `dls`/`dlsftp5`.

    `behaviours[name]` makes it misbehave for one file; `without_size` drops SIZE,
    `without_rest` drops REST. `retrs` counts RETR commands by file name, `commands`
    records every command.
    """

    def __init__(self, root: Path, *, without_size: bool = False, without_rest: bool = False):
        self.root = root
        self.behaviours: dict[str, Behaviour] = {}
        self.retrs: dict[str, int] = {}
        self.rests: list[int] = []
        self.commands: list[tuple[str, str]] = []  # PASS without its argument
        owner = self

        class Fs(AbstractedFS):  # type: ignore[misc]
            def open(self, filename: str, mode: str) -> Any:
                inner = super().open(filename, mode)
                name = Path(filename).name
                owner.retrs[name] = owner.retrs.get(name, 0) + 1
                b = owner.behaviours.get(name)
                if b is None:
                    return inner
                if b.cut_after is not None and b.cuts > 0:
                    b.cuts -= 1
                    return _CutFile(inner, b.cut_after, fail=True)
                if b.short_after is not None:
                    return _CutFile(inner, b.short_after, fail=False)
                return inner

            def getsize(self, path: str) -> int:
                b = owner.behaviours.get(Path(path).name)
                if b is not None and b.size_says is not None:
                    return b.size_says
                return int(super().getsize(path))

        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(root), perm="elr")
        proto = dict(FTPHandler.proto_cmds)
        if without_size:
            del proto["SIZE"]
        if without_rest:
            del proto["REST"]

        class Handler(FTPHandler):  # type: ignore[misc]
            def pre_process_command(self, line: str, cmd: str, arg: str) -> Any:
                owner.commands.append((cmd, "" if cmd == "PASS" else arg))
                return super().pre_process_command(line, cmd, arg)

            def ftp_REST(self, line: str) -> Any:
                owner.rests.append(int(line))
                return super().ftp_REST(line)

        Handler.authorizer = authorizer
        Handler.abstracted_fs = Fs
        Handler.proto_cmds = proto
        Handler.timeout = 10
        Handler.auth_failed_timeout = 0.01  # pyftpdlib waits 3 s after a bad password
        self._server = FTPServer(("127.0.0.1", 0), Handler)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.address[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        self._server.close_all()

    def __enter__(self) -> FtpServer:
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    (root / "media").mkdir(parents=True)
    return root


def get(srv: FtpServer, name: str, sink: io.BytesIO, **kw: Any) -> Any:
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
    with FtpServer(served) as srv:
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
    with FtpServer(served) as srv, pytest.raises(FtpRefused) as info:
        get(srv, "nothing.wav", sink)

    assert (info.value.kind, info.value.code) == ("not-found", "550")
    assert sink.getvalue() == b""


def test_wrong_password_is_denied_and_the_password_is_not_in_the_error(
    served: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FtpServer(served) as srv, pytest.raises(FtpRefused) as info:
        get(srv, "x.wav", io.BytesIO(), password="s3cr3t-Pw")

    assert info.value.kind == "denied"
    assert "s3cr3t-Pw" not in str(info.value)
    assert all("s3cr3t-Pw" not in r.getMessage() for r in caplog.records)


def test_data_connection_failing_mid_file_is_closed(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpServer(served) as srv:
        srv.behaviours["big.img"] = Behaviour(cut_after=70_000)
        with pytest.raises(TransportError) as info:
            get(srv, "big.img", sink)

    assert info.value.kind == "closed"
    assert len(sink.getvalue()) < len(DATA)


def test_cut_without_size_support_is_still_closed_by_the_426(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    with FtpServer(served, without_size=True) as srv:
        srv.behaviours["big.img"] = Behaviour(cut_after=70_000)
        with pytest.raises(TransportError) as info:
            get(srv, "big.img", io.BytesIO())

    assert info.value.kind == "closed"


def test_file_ending_before_the_announced_size_with_226_is_closed(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    with FtpServer(served) as srv:
        srv.behaviours["big.img"] = Behaviour(short_after=1000)
        with pytest.raises(TransportError) as info:
            get(srv, "big.img", io.BytesIO())

    assert info.value.kind == "closed"
    assert "1000 of 153600" in info.value.message


def test_file_announced_larger_than_allowed_is_refused_before_retr(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpServer(served) as srv:
        with pytest.raises(TransportError) as info:
            get(srv, "big.img", sink, max_bytes=1000)
        retrs = srv.retrs.get("big.img", 0)

    assert info.value.kind == "too-large"
    assert retrs == 0
    assert sink.getvalue() == b""


def test_more_bytes_than_announced_is_refused_as_a_protocol_error(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpServer(served) as srv:
        srv.behaviours["big.img"] = Behaviour(size_says=5000)
        with pytest.raises(FtpRefused) as info:
            get(srv, "big.img", sink)

    assert info.value.kind == "protocol"
    assert len(sink.getvalue()) <= 5000


def test_without_size_the_cap_still_stops_the_transfer(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO()
    with FtpServer(served, without_size=True) as srv, pytest.raises(TransportError) as info:
        get(srv, "big.img", sink, max_bytes=100_000)

    assert info.value.kind == "too-large"
    assert len(sink.getvalue()) <= 100_000


def test_resume_asks_for_the_rest_with_rest_and_appends(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO(DATA[:50_000])
    sink.seek(0, io.SEEK_END)
    with FtpServer(served) as srv:
        result = get(srv, "big.img", sink, offset=50_000)
        rests = list(srv.rests)

    assert rests == [50_000]
    assert result.resumed and result.received == len(DATA) - 50_000
    assert sink.getvalue() == DATA


def test_server_without_rest_restarts_from_the_first_byte(served: Path) -> None:
    (served / "media" / "big.img").write_bytes(DATA)
    sink = io.BytesIO(b"x" * 50_000)
    sink.seek(0, io.SEEK_END)
    with FtpServer(served, without_rest=True) as srv:
        result = get(srv, "big.img", sink, offset=50_000)

    assert not result.resumed
    assert sink.getvalue() == DATA


def test_refused_connection_is_connect(served: Path) -> None:
    with FtpServer(served) as srv:
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
    with FtpServer(served) as srv, pytest.raises(OSError) as info:
        get(srv, "big.img", _FullDisk())
    assert not isinstance(info.value, TransportError)
    assert info.value.errno == 28
