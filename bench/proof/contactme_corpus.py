"""The malformed contact-me requests of suite 5: bytes as an attacker would send them.

Each `Case` is either *refused* — it carries ``ContactMe=true`` but breaks a rule the
listener must enforce (spec §4.1 [B]: 404, 405, 413; RFC 9112: a request without
``Host``, a bad ``Content-Length``, a bad chunk, a version it cannot speak), so the
answer must be a 4xx (501 for a transfer coding h11 does not know, RFC 9112 §6.1) or a
close — or *inert*: odd but asking for nothing (no ``ContactMe=true``), so any answer
but a 5xx will do. No case may start an interaction. The corpus is fixed (seeded junk).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.proof.contactme_traffic import FORM, PATH, seeded_junk

HOST = b"Host: phone\r\n"
TRUE = b"ContactMe=true"


@dataclass(frozen=True)
class Case:
    """One malformed request: its bytes, whether it must be refused, how it is sent."""

    name: str
    data: bytes
    refuse: bool = True
    half_close: bool = True  # False: the connection stays open (the daemon's timeout ends it)


def _post(body: bytes, head: bytes = HOST + FORM, length: bytes | None = None) -> bytes:
    size = str(len(body)).encode() if length is None else length
    return (
        b"POST " + PATH + b" HTTP/1.1\r\n" + head + b"Content-Length: " + size + b"\r\n\r\n" + body
    )


def _get(target: bytes, head: bytes = HOST, version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + head + b"\r\n"


def _chunked(chunks: bytes) -> bytes:
    head = b"POST " + PATH + b" HTTP/1.1\r\n" + HOST + FORM
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks


QUERY = PATH + b"?ContactMe=true"


def corpus() -> list[Case]:
    """Every malformed request, in a fixed order."""
    cases: list[Case] = []
    add = cases.append
    # Methods (spec §4.1 [B]: other methods → 405; h11 refuses what is not a token).
    for method in (b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"HEAD", b"post", b"GETS"):
        add(
            Case(
                f"method {method.decode()}",
                method + b" " + QUERY + b" HTTP/1.1\r\n" + HOST + b"\r\n",
            )
        )
    add(Case("method CONNECT", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n" + HOST + b"\r\n"))
    add(Case("method with NUL", b"G\x00ET " + QUERY + b" HTTP/1.1\r\n" + HOST + b"\r\n"))
    add(Case("method of 10 kB", b"X" * 10_000 + b" " + QUERY + b" HTTP/1.1\r\n" + HOST + b"\r\n"))
    # Paths (→ 404).
    for path in (
        b"/",
        b"/contact_dls.html",
        PATH + b"/",
        PATH.upper(),
        b"/contact_dls.html/ContactDLS/../ContactDLS",
        b"/contact_dls.html%2FContactDLS",
        b"*",
        b"//[",
        b"/" + b"a" * 9000,
    ):
        add(Case(f"path {path[:40]!r}", _get(path + b"?ContactMe=true")))
    add(Case("path with NUL", _get(PATH + b"\x00?ContactMe=true")))
    add(Case("path with a tab", _get(PATH + b"\t?ContactMe=true")))
    # Heads: too big, broken lines, no Host (RFC 9112 §3.2: 400).
    add(Case("header of 9 kB", _get(QUERY, HOST + b"X: " + b"a" * 9000 + b"\r\n")))
    add(Case("header of 1 MB", _get(QUERY, HOST + b"X: " + b"a" * 1_000_000 + b"\r\n")))
    add(Case("10,000 headers", _get(QUERY, HOST + b"X: a\r\n" * 10_000)))
    add(Case("header line without colon", _get(QUERY, HOST + b"Bad Header\r\n")))
    add(Case("space before colon", _get(QUERY, b"Host : phone\r\n")))
    add(Case("no Host", _get(QUERY, b"")))
    add(Case("two Hosts", _get(QUERY, HOST + b"Host: evil\r\n")))
    add(Case("header name not ASCII", _get(QUERY, HOST + b"X\xff\xfe: a\r\n")))
    # Content-Length (h11: digits only; spec: over 4 KiB → 413).
    for length in (b"-1", b"abc", b"1e3", b"+14", b"0x0e", b"14, 15", b"9" * 5000):
        add(Case(f"Content-Length {length[:12]!r}", _post(TRUE, length=length)))
    add(Case("Content-Length 99999999999999999999", _post(TRUE, length=b"99999999999999999999")))
    add(Case("Content-Length 4097", _post(TRUE + b"&p=" + b"x" * 4080)))
    add(Case("two Content-Lengths", _post(TRUE, head=HOST + FORM + b"Content-Length: 3\r\n")))
    add(Case("Content-Length longer than the body", _post(TRUE, length=b"400")))
    add(
        Case(
            "Content-Length longer than the body, kept open",
            _post(TRUE, length=b"400"),
            half_close=False,
        )
    )
    # Chunked nonsense.
    add(Case("chunk size zz", _chunked(b"zz\r\n" + TRUE + b"\r\n0\r\n\r\n")))
    add(Case("chunk size -5", _chunked(b"-5\r\n" + TRUE + b"\r\n0\r\n\r\n")))
    add(Case("chunk size 2^72", _chunked(b"ffffffffffffffffff\r\n" + TRUE + b"\r\n")))
    add(Case("chunks over 4 KiB", _chunked((b"800\r\n" + b"x" * 2048 + b"\r\n") * 3)))
    add(Case("chunk without its end", _chunked(b"e\r\n" + TRUE)))
    add(Case("chunk without its end, kept open", _chunked(b"e\r\n" + TRUE), half_close=False))
    add(Case("chunk data longer than its size", _chunked(b"2\r\n" + TRUE + b"\r\n0\r\n\r\n")))
    add(
        Case(
            "Transfer-Encoding gzip, chunked",
            b"POST "
            + PATH
            + b" HTTP/1.1\r\n"
            + HOST
            + FORM
            + b"Transfer-Encoding: gzip, chunked\r\n\r\ne\r\n"
            + TRUE
            + b"\r\n0\r\n\r\n",
        )
    )
    add(
        Case(
            "Content-Length and chunked (smuggling)",
            _post(TRUE, head=HOST + FORM + b"Transfer-Encoding: chunked\r\n"),
        )
    )
    # Bodies the form rules refuse (spec §4.1 [B]: 400).
    add(Case("body not form-encoded", _post(TRUE, head=HOST + b"Content-Type: text/xml\r\n")))
    add(Case("body multipart", _post(TRUE, head=HOST + b"Content-Type: multipart/form-data\r\n")))
    add(Case("body with %ff", _post(TRUE + b"&x=%ff")))
    add(Case("body with raw \\xff", _post(TRUE + b"&x=\xff\xfe")))
    add(Case("query with %C3%28", _get(QUERY + b"&x=%C3%28")))
    add(Case("query not ASCII", _get(QUERY + b"&x=\xe9")))
    add(Case("100 fields", _post(TRUE + b"&f=1" * 100)))
    add(Case("field bomb in the query", _get(QUERY + b"&a" * 500)))
    # Junk that is not HTTP at all.
    add(Case("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64))))
    add(Case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
    add(Case("SSH banner", b"SSH-2.0-OpenSSH_9.2\r\n"))
    add(Case("NUL bytes", b"\x00" * 4096))
    add(Case("empty lines", b"\r\n" * 100))
    add(Case("1 kB of random bytes", seeded_junk(5, 1024)))
    add(Case("64 kB of random bytes", seeded_junk(6, 65536)))
    add(Case("nothing, then close", b""))
    add(Case("nothing, kept open", b"", half_close=False))
    # Requests cut short.
    add(Case("request line only", b"GET " + QUERY + b" HTTP/1.1\r\n"))
    add(Case("head without its blank line", b"GET " + QUERY + b" HTTP/1.1\r\n" + HOST))
    add(Case("head cut, kept open", b"GET " + QUERY + b" HTTP/1.1\r\nHo", half_close=False))
    add(Case("body cut short", _post(TRUE)[:-4]))
    # Versions: HTTP/0.9 has no version; h11 speaks 1.x only.
    add(Case("HTTP/0.9 request", b"GET " + QUERY + b"\r\n"))
    add(Case("HTTP/0.9 request, kept open", b"GET " + QUERY + b"\r\n", half_close=False))
    add(Case("version HTTP/x", _get(QUERY, version=b"HTTP/x")))
    add(Case("version HTTP/1.1.1", _get(QUERY, version=b"HTTP/1.1.1")))
    # Inert: odd but asking for nothing; the request behind the first one of a connection
    # is never read (the answer closes the connection), so it cannot smuggle a contact-me.
    inert = b"ContactMe=false"
    add(Case("pipelined: a 404, then a contact-me", _get(b"/") + _get(QUERY), refuse=False))
    add(Case("pipelined: false, then a contact-me", _post(inert) + _get(QUERY), refuse=False))
    add(Case("pipelined: false, then junk", _post(inert) + seeded_junk(7, 2048), refuse=False))
    add(Case("body longer than its length", _post(inert, length=b"15") + TRUE, refuse=False))
    add(Case("bare LF line ends", _post(inert).replace(b"\r\n", b"\n"), refuse=False))
    add(Case("folded header", _post(inert, head=HOST + FORM + b"X: a\r\n b\r\n"), refuse=False))
    add(
        Case(
            "header value not ASCII", _post(inert, head=HOST + FORM + b"X: \xff\r\n"), refuse=False
        )
    )
    add(
        Case(
            "version HTTP/2.0", _get(PATH + b"?ContactMe=false", version=b"HTTP/2.0"), refuse=False
        )
    )
    add(Case("ContactMe=%ZZtrue", _post(b"ContactMe=%ZZtrue"), refuse=False))
    add(Case("ContactMe= true", _post(b"ContactMe=+true"), refuse=False))
    add(Case("contactme=true", _post(b"contactme=true"), refuse=False))
    add(Case("form of separators", _post(b"&&&===;;;%%%"), refuse=False))
    return cases
