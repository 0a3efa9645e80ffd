"""The lab provisioning server: real HTTPS on loopback, the server side of WPI.

    with LabServer(load_scenario("demo")) as lab:
        lab.url            # https://127.0.0.1:PORT/DeploymentService/LoginService
        lab.ca_pem         # trust anchor for `default-trust = ca`
        lab.server_pin     # what a trust-on-first-use pin records
        lab.wait_for(lambda r: r.action == "CleanUp")
        lab.transcript     # every document, in order
        lab.secure_url     # the Secure Mode port (spec §7): client certificate required
        lab.material       # the bootstrap material (provd.lab.secure)

Test infrastructure built on the standard library (`http.server`, `ssl`); the
phone side uses pyOpenSSL. Each connection is served in its own thread; the
TLS handshake happens in that thread, so a stalled client blocks nobody. The
protocol side is `provd.lab.conductor.Conductor`.

Two `Listener`s: `default` (Default Mode, spec §1) and `secure` (Secure Mode,
spec §7.4: a client certificate issued by the lab's client CA is required; the
subject of the one verified is recorded). Both present the server certificate
of the lab CA, which is the `dls-server-ca` the bootstrap material names.
`restart_secure(pki)` puts another server certificate on the secure port (a
server the phone must refuse). Files for deployments (spec §6) are served by
`provd.lab.fileserver` beside it; here GET answers 404.
"""

from __future__ import annotations

import http.cookies
import logging
import ssl
import tempfile
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from provd.lab import contactme
from provd.lab.conductor import Answer, Conductor, new_cookie
from provd.lab.pki import LabPKI
from provd.lab.scenario import Scenario, ScenarioError, load_scenario
from provd.lab.secure import BootstrapMaterial, TanCheck
from provd.lab.tlsserver import TlsHttpServer, client_subject
from provd.lab.transcript import Record, Transcript

logger = logging.getLogger(__name__)

#: spec §1 [B]: the default server path, as real servers use it [F].
DEFAULT_PATH = "/DeploymentService/LoginService"
COOKIE_NAME = "JSESSIONID"
#: Far above any phone message (50 kB fragments, spec §5), far below harm.
MAX_REQUEST_BODY = 4 * 1024 * 1024
IDLE_TIMEOUT = 30.0


class _Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 with keep-alive, POSTs to the WPI path."""

    protocol_version = "HTTP/1.1"
    server_version = "provd-lab"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: Listener

    def do_POST(self) -> None:
        listener = self.server
        if self.path.split("?", 1)[0] != listener.lab.path:
            self._reply(Answer(status=404))
            return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            # spec §1: the phone always sends Content-Length.
            self._reply(Answer(status=411, close=True))
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(Answer(status=411, close=True))
            return
        if not 0 <= length <= MAX_REQUEST_BODY:
            self._reply(Answer(status=413, close=True))
            return
        body = self.rfile.read(length)
        answer = listener.lab.conductor.handle(
            body, self._cookie(), channel=listener.channel, client=client_subject(self.connection)
        )
        if answer.delay:
            listener.lab.sleep(answer.delay)
        self._reply(answer)

    def do_GET(self) -> None:
        # Only the XML channel lives here; files: provd.lab.fileserver.
        self._reply(Answer(status=404))

    def _cookie(self) -> str | None:
        jar = http.cookies.SimpleCookie()
        for header in self.headers.get_all("Cookie") or ():
            try:
                jar.load(header)
            except http.cookies.CookieError:
                continue
        morsel = jar.get(COOKIE_NAME)
        return morsel.value if morsel is not None else None

    def _reply(self, answer: Answer) -> None:
        self.send_response(answer.status)
        if answer.body:
            self.send_header("Content-Type", "text/xml; charset=utf-8")
        if answer.status != 204:
            self.send_header("Content-Length", str(len(answer.body)))
        if answer.set_cookie is not None:
            # [G p.13, p.28; F] the original sets JSESSIONID, path /DeploymentService, Secure.
            self.send_header(
                "Set-Cookie",
                f"{COOKIE_NAME}={answer.set_cookie}; Path={self.server.lab.cookie_path}; Secure",
            )
        if answer.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if answer.body:
            self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("lab %s: %s", self.client_address[0], format % args)


class Listener(TlsHttpServer):
    """One HTTPS port of the lab server: `default` or `secure` (spec §1, §7).

    `connections` counts the TCP connections accepted (a handshake that fails
    counts too: "no connection to the default port" means none at all);
    `client_subjects` are the client certificates verified, one per connection.
    """

    def __init__(
        self, lab: LabServer, channel: str, host: str, port: int, context: ssl.SSLContext
    ) -> None:
        self.lab = lab
        self.channel = channel
        super().__init__((host, port), _Handler, context, name=channel, nodelay=True)


def server_context(
    cert_path: Path, key_path: Path, *, client_cas: bytes | None = None
) -> ssl.SSLContext:
    """A TLS server context; with `client_cas` (PEM) a client certificate issued by
    one of them is required, as on the Secure Mode port (spec §7.4)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # spec §7.4
    context.load_cert_chain(cert_path, key_path)
    if client_cas is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_cas.decode("ascii"))
    return context


class LabServer:
    """A provisioning server on loopback, playing `scenario` (see `provd.lab.scenario`).

    `scenario` may be a `Scenario`, a TOML path or the name of a shipped
    scenario. `port` is the Default Mode port, `secure_port` the Secure Mode one
    (0: any free port; None: no secure listener). `pin` overrides the scenario's
    `[secure] pin`, for which the bootstrap material is made. `transcript_file`,
    when given, receives every record as a JSON line. `clock`, `sleep` and
    `cookie_source` are parameters so tests can pass their own.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path = "basic",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        secure_port: int | None = 0,
        pin: str | None = None,
        path: str = DEFAULT_PATH,
        pki: LabPKI | None = None,
        transcript_file: TextIO | None = None,
        on_record: Callable[[Record], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        cookie_source: Callable[[], str] = new_cookie,
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        if secure_port is None and any(n == "secure-port" for n, _ in self.scenario.placeholders):
            raise ScenarioError(
                f"scenario {self.scenario.name}: {{secure-port}} needs the secure listener"
            )
        self.host = host
        self.path = path
        #: [F] the cookie's path is the application's: /DeploymentService.
        self.cookie_path = "/" + path.strip("/").split("/", 1)[0]
        self.pki = pki or LabPKI.create()
        options = self.scenario.secure
        #: spec §7: the client CA, the phone's credential, the PKCS#12 archives.
        self.material = BootstrapMaterial.create(
            self.pki, pin=pin if pin is not None else options.pin, client_name=options.client_name
        )
        self.sleep = sleep
        self.transcript_log = Transcript(clock=clock, sink=transcript_file, listener=on_record)
        self.conductor = Conductor(
            self.scenario,
            self.transcript_log,
            cookie_source=cookie_source,
            material=self.material,
            secure_port=lambda: self._secure_port,
        )
        self._requested_port = port
        self._secure_port = secure_port
        self._files: tempfile.TemporaryDirectory[str] | None = None
        self.listener: Listener | None = None
        self.secure_listener: Listener | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> LabServer:
        """Make the TLS contexts, bind both ports, and serve in background threads."""
        if self.listener is not None:
            return self
        self._files = tempfile.TemporaryDirectory(prefix="provd-lab-")
        try:
            context = self._context(self.pki, secure=False)
            self.listener = Listener(self, "default", self.host, self._requested_port, context)
            if self._secure_port is not None:
                self._start_secure(self.pki, self._secure_port)
        except (OSError, ssl.SSLError):
            self.stop()
            raise
        self.listener.start()
        logger.info("lab server at %s (scenario %s)", self.url, self.scenario.name)
        return self

    def _context(self, pki: LabPKI, *, secure: bool) -> ssl.SSLContext:
        assert self._files is not None
        directory = Path(self._files.name) / f"{'secure' if secure else 'default'}-{id(pki):x}"
        _, cert_path, key_path = pki.write(directory)
        return server_context(
            cert_path, key_path, client_cas=self.material.client_ca_pem if secure else None
        )

    def _start_secure(self, pki: LabPKI, port: int) -> None:
        context = self._context(pki, secure=True)
        self.secure_listener = Listener(self, "secure", self.host, port, context)
        self._secure_port = self.secure_listener.port
        self.secure_listener.start()
        logger.info("lab Secure Mode port %d (client certificate required)", self._secure_port)

    def restart_secure(self, pki: LabPKI | None = None) -> None:
        """Serve the secure port again, on the same port, with the server certificate of
        `pki` (default: the lab's own). With a `LabPKI.create()` the server certificate
        no longer chains to the `dls-server-ca` the phone received: it must refuse it."""
        if self.secure_listener is None:
            raise RuntimeError("the lab server has no secure listener running")
        port = self.secure_listener.port
        self.secure_listener.stop()
        self.secure_listener = None
        self._start_secure(pki or self.pki, port)

    def stop(self) -> None:
        """Stop serving and close every connection; idempotent."""
        for listener in (self.listener, self.secure_listener):
            if listener is not None:
                listener.stop()
        self.listener = None
        self.secure_listener = None
        if self._files is not None:
            self._files.cleanup()
            self._files = None

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ what tests read

    @property
    def port(self) -> int:
        if self.listener is None:
            raise RuntimeError("the lab server is not running")
        return self.listener.port

    @property
    def url(self) -> str:
        """The server URL a phone is configured with (spec §1 [B])."""
        return self._url(self.port)

    @property
    def secure_port(self) -> int:
        """The Secure Mode port: what `{secure-port}` (`dls-secure-port`) tells the phone."""
        if self.secure_listener is None:
            raise RuntimeError("the lab server has no secure listener running")
        return self.secure_listener.port

    @property
    def secure_url(self) -> str:
        """The URL the phone uses once in Secure Mode (spec §7.3 step 4)."""
        return self._url(self.secure_port)

    def _url(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{port}{self.path}"

    @property
    def ca_pem(self) -> bytes:
        """The lab CA: the server certificate's issuer, and the `dls-server-ca`."""
        return self.pki.ca.cert_pem

    @property
    def ca_fingerprint(self) -> str:
        return self.pki.ca.fingerprint

    @property
    def server_pin(self) -> str:
        """SHA-256 of the server's public key, hex: what `default-trust = pin` stores."""
        return self.pki.server.spki_pin

    @property
    def transcript(self) -> list[Record]:
        """Every record so far, in order."""
        return self.transcript_log.records()

    @property
    def handshake_errors(self) -> list[str]:
        """TLS handshakes that failed on the default port (a phone refusing our certificate)."""
        return list(self.listener.handshake_errors) if self.listener else []

    @property
    def secure_handshake_errors(self) -> list[str]:
        """TLS handshakes that failed on the secure port (no or a foreign client
        certificate, or a phone refusing a server certificate)."""
        return list(self.secure_listener.handshake_errors) if self.secure_listener else []

    @property
    def client_subjects(self) -> list[str]:
        """Subjects of the client certificates the secure port verified, one per connection."""
        return list(self.secure_listener.client_subjects) if self.secure_listener else []

    @property
    def tan_checks(self) -> list[TanCheck]:
        """The phone's `bootstrapping-tan` answers and whether each matched the PIN's TAN."""
        return self.conductor.tan_checks

    def wait_for(self, predicate: Callable[[Record], bool], timeout: float = 5.0) -> Record:
        """The first record satisfying `predicate`, waiting up to `timeout` seconds."""
        return self.transcript_log.wait_for(predicate, timeout)

    def contact_me(self, phone_url: str, **fields: Any) -> int:
        """Send a contact-me to the phone (see `provd.lab.contactme.send_contact_me`)."""
        return contactme.send_contact_me(phone_url, **fields)
