"""`python -m provd.lab`: run the lab server, or send a contact-me.

python -m provd.lab serve --scenario demo --port 18443 --transcript lab.jsonl
python -m provd.lab serve --scenario secure-pin --secure-port 18444 --pin 1234321
python -m provd.lab contact-me http://127.0.0.1:8085/contact_dls.html/ContactDLS
python -m provd.lab scenarios
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from provd.lab.contactme import ContactMeError, send_contact_me
from provd.lab.scenario import ScenarioError, builtin_names, load_scenario
from provd.lab.server import DEFAULT_PATH, LabServer
from provd.lab.story import arrows_for, record_line
from provd.lab.transcript import Record
from provd.wpi.bootstrap import split_pin

#: spec §1: the Default Mode port [G p.12].
DEFAULT_PORT = 18443
#: spec §1, §7: the Secure Mode port [G p.64].
DEFAULT_SECURE_PORT = 18444


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m provd.lab", description="The provd lab provisioning server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a scenario over HTTPS until interrupted")
    serve.add_argument(
        "--scenario", default="basic", help="a scenario TOML file or a shipped name (basic)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    serve.add_argument(
        "--secure-port",
        type=int,
        help="Secure Mode port, client certificate required (0: any; default "
        f"{DEFAULT_SECURE_PORT} when the scenario bootstraps Secure Mode, else none)",
    )
    serve.add_argument(
        "--pin",
        help="the PIN the phone's user types (password + 3-character TAN; "
        "default: the scenario's [secure] pin)",
    )
    serve.add_argument("--path", default=DEFAULT_PATH, help=f"server path ({DEFAULT_PATH})")
    serve.add_argument("--transcript", type=Path, help="also write the transcript as JSON lines")
    serve.add_argument("--ca-out", type=Path, help="write the lab CA certificate (PEM) here")
    serve.add_argument("--xml", action="store_true", help="print every document too")
    contact = commands.add_parser("contact-me", help="send a contact-me to a phone")
    contact.add_argument("url", help="the phone's contact-me-uri")
    contact.add_argument("--dls-ip-addr", help="ask the phone to call this server instead")
    contact.add_argument("--dls-ip-port", type=int, help="... on this port")
    contact.add_argument("--get", action="store_true", help="send a GET instead of a POST")
    commands.add_parser("scenarios", help="list the shipped scenarios")
    return parser


class _Printer:
    """Prints each transcript record as one line (and its XML on request)."""

    def __init__(self, out: TextIO, *, xml: bool) -> None:
        self.out = out
        self.xml = xml
        self.labels = arrows_for(getattr(out, "encoding", None))

    def __call__(self, record: Record) -> None:
        print(record_line(record, labels=self.labels), file=self.out, flush=True)
        if self.xml and record.body:
            for line in record.text.rstrip("\n").splitlines():
                print(f"    {line}", file=self.out)
            self.out.flush()


def serve(args: argparse.Namespace, out: TextIO, stop: threading.Event) -> int:
    """Run the server until `stop` is set (by SIGINT or SIGTERM)."""
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    if args.pin is not None:
        try:
            split_pin(args.pin)
        except ValueError as exc:
            print(f"lab: --pin: {exc}", file=sys.stderr)
            return 2
    secure_port = args.secure_port
    if secure_port is None and scenario.uses_secure_mode:
        secure_port = DEFAULT_SECURE_PORT
    sink = args.transcript.open("a", encoding="utf-8") if args.transcript else None
    try:
        lab = LabServer(
            scenario,
            host=args.host,
            port=args.port,
            secure_port=secure_port,
            pin=args.pin,
            path=args.path,
            transcript_file=sink,
            on_record=_Printer(out, xml=args.xml),
        )
        try:
            lab.start()
        except OSError as exc:
            ports = f"{args.port}" + (f" and {secure_port}" if secure_port is not None else "")
            print(
                f"lab: cannot listen on {args.host}, ports {ports}: {exc.strerror}", file=sys.stderr
            )
            return 1
        with lab:
            if args.ca_out:
                args.ca_out.write_bytes(lab.ca_pem)
            print(f"lab server: {lab.url}", file=out)
            print(f"scenario: {scenario.name} - {scenario.description}", file=out)
            print(f"CA SHA-256 fingerprint: {lab.ca_fingerprint}", file=out)
            print(f"server key pin (SPKI SHA-256): {lab.server_pin}", file=out, flush=True)
            if lab.secure_listener is not None:
                material = lab.material
                print(f"Secure Mode: {lab.secure_url} (client certificate required)", file=out)
                print(f"phone certificate: {material.client_subject}", file=out)
                # A lab PIN, printed so the person at the demo phone can type it (spec §7.2).
                print(
                    f"PIN to type on the phone: {material.pin} "
                    f"(password {material.password}, TAN {material.tan})",
                    file=out,
                    flush=True,
                )
            stop.wait()
        return 0
    finally:
        if sink is not None:
            sink.close()


def contact_me(args: argparse.Namespace, out: TextIO) -> int:
    """Send one contact-me; exit 0 when the phone answered 204 [G p.15]."""
    try:
        status = send_contact_me(
            args.url,
            dls_ip_addr=args.dls_ip_addr,
            dls_ip_port=args.dls_ip_port,
            method="GET" if args.get else "POST",
        )
    except ContactMeError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    print(f"contact-me answered {status}", file=out)
    return 0 if status == 204 else 1


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The command's entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    stream = out or sys.stdout
    if args.command == "contact-me":
        return contact_me(args, stream)
    if args.command == "scenarios":
        for name in builtin_names():
            print(f"{name}: {load_scenario(name).description}", file=stream)
        return 0
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return serve(args, stream, stop)
