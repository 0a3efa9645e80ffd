"""HttpsChannel against a real TLS server on loopback: HTTP, cookies, keep-alive, timeouts."""

from __future__ import annotations

import io
import socket
import time

import pytest

from provd import __version__
from provd.transport.errors import TransportError
from provd.transport.https import HttpsChannel
from provd.transport.tls import TrustPolicy

from .pki import Pki
from .tls_server import Reply, Seen, TlsHttpServer, silent_listener

JSESSION = ("Set-Cookie", "JSESSIONID=4F2A; Path=/DeploymentService; Secure")


def channel(
    url: str, *, connect_timeout: float = 2.0, response_timeout: float = 2.0
) -> HttpsChannel:
    return HttpsChannel(
        url,
        trust=TrustPolicy.accept_any(),
        connect_timeout=connect_timeout,
        response_timeout=response_timeout,
    )


def server_with(pki: Pki, reply: Reply) -> TlsHttpServer:
    """A server giving the same `reply` to every request."""
    return TlsHttpServer(pki.server, respond=lambda seen: reply)


def test_post_sends_body_with_content_length_and_returns_the_response(
    server: TlsHttpServer,
) -> None:
    with channel(server.url()) as ch:
        resp = ch.post(b"<WorkpointMessage/>")

    assert (resp.status, resp.body) == (200, b"echo:<WorkpointMessage/>")
    assert resp.header("content-type") == "text/xml"
    (seen,) = server.seen
    assert seen.method == "POST"
    assert seen.path == "/DeploymentService/LoginService"
    assert seen.body == b"<WorkpointMessage/>"
    assert seen.headers["content-length"] == "19"
    assert seen.headers["content-type"] == "text/xml"
    assert seen.headers["user-agent"] == f"provd/{__version__}"
    assert "transfer-encoding" not in seen.headers


def test_empty_post_still_sends_content_length(server: TlsHttpServer) -> None:
    with channel(server.url()) as ch:
        ch.post(b"")

    assert server.seen[0].headers["content-length"] == "0"


def test_chunked_response_is_accepted(pki: Pki) -> None:
    body = b"<DLSMessage><Message nonce='1'><Action>CleanUp</Action></Message></DLSMessage>"
    with TlsHttpServer(pki.server, respond=lambda s: Reply(body=body, chunked=True)) as srv:
        with channel(srv.url()) as ch:
            first = ch.post(b"a")
            second = ch.post(b"b")

        assert first.body == body and second.body == body
        assert first.header("transfer-encoding") == "chunked"
        assert [s.connection for s in srv.seen] == [1, 1]  # kept alive after a chunked body


def test_keep_alive_reuses_one_connection(server: TlsHttpServer) -> None:
    with channel(server.url()) as ch:
        for i in range(3):
            ch.post(b"%d" % i)
        assert ch.connections == 1

    assert [s.connection for s in server.seen] == [1, 1, 1]


def test_cookie_set_by_server_is_sent_on_following_posts_of_the_channel_only(pki: Pki) -> None:
    def respond(seen: Seen) -> Reply:
        return Reply(headers=[JSESSION] if "cookie" not in seen.headers else [])

    with TlsHttpServer(pki.server, respond=respond) as srv:
        with channel(srv.url()) as ch:
            ch.post(b"first")
            ch.post(b"second")
            ch.post(b"third")
        with channel(srv.url()) as fresh:
            fresh.post(b"new interaction")

    cookies = [s.headers.get("cookie") for s in srv.seen]
    assert cookies == [None, "JSESSIONID=4F2A", "JSESSIONID=4F2A", None]


def test_cookie_outside_its_path_is_not_sent(pki: Pki) -> None:
    srv = server_with(pki, Reply(headers=[JSESSION]))
    with srv, channel(srv.url("/other/LoginService")) as ch:
        ch.post(b"1")
        ch.post(b"2")

    assert [s.headers.get("cookie") for s in srv.seen] == [None, None]


@pytest.mark.parametrize("close_notify", [False, True])
def test_server_closing_kept_alive_connection_is_reconnected_with_same_cookie(
    pki: Pki, close_notify: bool
) -> None:
    # The server answers and then closes without "Connection: close", as a server
    # whose keep-alive timer ran out between two messages does; with or without a
    # TLS close_notify.
    def respond(seen: Seen) -> Reply:
        return Reply(body=b"ok", headers=[JSESSION], close_after=True, close_notify=close_notify)

    with TlsHttpServer(pki.server, respond=respond) as srv, channel(srv.url()) as ch:
        first = ch.post(b"first")
        second = ch.post(b"second")
        third = ch.post(b"third")
        assert ch.connections == 3

    assert [r.body for r in (first, second, third)] == [b"ok"] * 3
    assert [s.body for s in srv.seen] == [b"first", b"second", b"third"]
    assert [s.connection for s in srv.seen] == [1, 2, 3]
    assert [s.headers.get("cookie") for s in srv.seen] == [
        None,
        "JSESSIONID=4F2A",
        "JSESSIONID=4F2A",
    ]


def test_connection_close_from_server_opens_a_new_connection(pki: Pki) -> None:
    reply = Reply(body=b"ok", headers=[("Connection", "close")], close_after=True)
    with TlsHttpServer(pki.server, respond=lambda s: reply) as srv, channel(srv.url()) as ch:
        ch.post(b"1")
        ch.post(b"2")

    assert [s.connection for s in srv.seen] == [1, 2]


def test_fresh_connection_closed_before_any_answer_is_an_error_not_a_retry(pki: Pki) -> None:
    with server_with(pki, Reply(hang=True)) as srv:
        srv.released.set()  # "hang" ends at once: the server closes without answering
        with channel(srv.url()) as ch, pytest.raises(TransportError) as err:
            ch.post(b"x")

    assert err.value.kind == "closed"
    assert len(srv.seen) == 1


@pytest.mark.parametrize("status", [404, 500])
def test_error_statuses_come_back_as_responses(pki: Pki, status: int) -> None:
    page = b"<html>error</html>"
    with server_with(pki, Reply(status=status, body=page)) as srv, channel(srv.url()) as ch:
        resp = ch.post(b"x")

    assert (resp.status, resp.body) == (status, page)


@pytest.mark.parametrize("status", [200, 204])
def test_empty_200_and_204_come_back_with_empty_body(pki: Pki, status: int) -> None:
    with server_with(pki, Reply(status=status)) as srv, channel(srv.url()) as ch:
        first = ch.post(b"x")
        second = ch.post(b"y")

    assert (first.status, first.body) == (status, b"")
    assert (second.status, second.body) == (status, b"")


@pytest.mark.parametrize("chunked", [False, True])
def test_response_over_max_body_is_too_large(pki: Pki, chunked: bool) -> None:
    reply = Reply(body=b"x" * 2000, chunked=chunked)
    with server_with(pki, reply) as srv, channel(srv.url()) as ch:
        with pytest.raises(TransportError) as err:
            ch.post(b"x", max_body=1000)
        assert ch.post(b"x", max_body=2000).body == reply.body  # the channel goes on

    assert err.value.kind == "too-large"


def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        ch = channel(f"https://127.0.0.1:{port}/", connect_timeout=0.3)
        with ch, pytest.raises(TransportError) as err:
            ch.post(b"x")

    assert err.value.kind == "connect"


def test_server_that_never_answers_the_handshake_is_a_connect_timeout() -> None:
    with silent_listener() as sock:
        port = sock.getsockname()[1]
        ch = channel(f"https://127.0.0.1:{port}/", connect_timeout=0.3)
        with ch, pytest.raises(TransportError) as err:
            ch.post(b"x")

    assert err.value.kind == "connect"
    assert "timed out" in err.value.message


def test_server_that_never_answers_the_request_is_a_response_timeout(pki: Pki) -> None:
    with server_with(pki, Reply(hang=True)) as srv:
        ch = channel(srv.url(), response_timeout=0.3)
        with ch, pytest.raises(TransportError) as err:
            ch.post(b"x")

        assert err.value.kind == "timeout"
        assert len(srv.seen) == 1  # the request arrived; the answer never did


def test_server_dripping_its_answer_a_byte_at_a_time_is_a_response_timeout(pki: Pki) -> None:
    # Every read gets a byte well within the 0.5 s per-read timeout; the whole answer
    # (40 bytes, 0.1 s apart) would take 4 s. The answer as a whole is bounded (§3.1).
    with server_with(pki, Reply(body=b"x" * 40, drip=0.1)) as srv:
        ch = channel(srv.url(), response_timeout=0.5)
        with ch, pytest.raises(TransportError) as err:
            ch.post(b"x")

        assert err.value.kind == "timeout"
        assert len(srv.seen) == 1


def test_a_kept_alive_connection_gets_a_fresh_window_for_each_answer(pki: Pki) -> None:
    with server_with(pki, Reply(body=b"ok")) as srv:
        ch = channel(srv.url(), response_timeout=0.5)
        with ch:
            assert ch.post(b"1").body == b"ok"
            time.sleep(0.6)  # longer than one window: the next answer still has its own
            assert ch.post(b"2").body == b"ok"
        assert ch.connections == 1


def test_channel_refuses_other_schemes() -> None:
    with pytest.raises(ValueError, match="https"):
        HttpsChannel("http://127.0.0.1/", trust=TrustPolicy.accept_any())


# -- downloads (FileDeployment over HTTPS, spec §6.1) ------------------------------------

FILE = bytes(range(256)) * 40  # 10240 bytes


def serve_file(seen: Seen) -> Reply:
    if seen.path != "/files/logo.png":
        return Reply(status=404, body=b"no such file")
    rng = seen.headers.get("range")
    if rng:
        start = int(rng.removeprefix("bytes=").rstrip("-"))
        return Reply(
            status=206,
            body=FILE[start:],
            headers=[("Content-Range", f"bytes {start}-{len(FILE) - 1}/{len(FILE)}")],
        )
    return Reply(body=FILE)


def test_get_streams_file_into_sink(pki: Pki) -> None:
    sink = io.BytesIO()
    with TlsHttpServer(pki.server, respond=serve_file) as srv, channel(srv.url()) as ch:
        result = ch.get("/files/logo.png", max_bytes=len(FILE), sink=sink)
        again = ch.get(srv.url("/files/logo.png"), max_bytes=len(FILE), sink=io.BytesIO())

    assert (result.status, result.received, result.resumed) == (200, len(FILE), False)
    assert sink.getvalue() == FILE
    assert again.received == len(FILE)
    assert "range" not in srv.seen[0].headers


def test_get_with_offset_asks_for_a_range_and_appends(pki: Pki) -> None:
    sink = io.BytesIO(FILE[:1000])
    sink.seek(0, io.SEEK_END)
    with TlsHttpServer(pki.server, respond=serve_file) as srv, channel(srv.url()) as ch:
        result = ch.get("/files/logo.png", max_bytes=len(FILE), sink=sink, offset=1000)

    assert srv.seen[0].headers["range"] == "bytes=1000-"
    assert (result.status, result.resumed, result.received) == (206, True, len(FILE) - 1000)
    assert sink.getvalue() == FILE


def test_get_with_offset_answered_200_rewrites_the_sink(pki: Pki) -> None:
    sink = io.BytesIO(b"stale bytes")
    sink.seek(0, io.SEEK_END)
    with server_with(pki, Reply(body=FILE)) as srv, channel(srv.url()) as ch:
        result = ch.get("/files/logo.png", max_bytes=len(FILE), sink=sink, offset=11)

    assert (result.status, result.resumed) == (200, False)
    assert sink.getvalue() == FILE


@pytest.mark.parametrize("chunked", [False, True])
def test_get_over_max_bytes_is_too_large(pki: Pki, chunked: bool) -> None:
    srv = server_with(pki, Reply(body=FILE, chunked=chunked))
    with srv, channel(srv.url()) as ch, pytest.raises(TransportError) as err:
        ch.get("/files/logo.png", max_bytes=len(FILE) - 1, sink=io.BytesIO())

    assert err.value.kind == "too-large"


def test_get_of_missing_file_returns_status_and_writes_nothing(pki: Pki) -> None:
    sink = io.BytesIO()
    with TlsHttpServer(pki.server, respond=serve_file) as srv, channel(srv.url()) as ch:
        missing = ch.get("/files/nothing.png", max_bytes=len(FILE), sink=sink)
        found = ch.get("/files/logo.png", max_bytes=len(FILE), sink=io.BytesIO())

    assert (missing.status, missing.received, sink.getvalue()) == (404, 0, b"")
    assert found.status == 200
    assert [s.connection for s in srv.seen] == [1, 1]


def test_get_refuses_a_url_of_another_origin(server: TlsHttpServer) -> None:
    with channel(server.url()) as ch, pytest.raises(ValueError, match="open a channel"):
        ch.get("https://elsewhere.example/f", max_bytes=10, sink=io.BytesIO())


def test_response_cut_short_of_its_content_length_is_an_error(pki: Pki) -> None:
    # A truncated body must not pass for a whole document (issue 8: network faults).
    cut = Reply(body=b"<DLSMessage>", announce=500, close_after=True)
    with (
        TlsHttpServer(pki.server, respond=lambda s: cut) as srv,
        channel(srv.url()) as ch,
        pytest.raises(TransportError) as caught,
    ):
        ch.post(b"a")
    assert caught.value.kind == "closed"
    assert "cut short" in caught.value.message
