"""`python -m provd.service.demo` (`make demo`): one phone interaction, told in the terminal.

The lab server plays the `demo` scenario on loopback; the phone side is
provd's own: a `PhoneSession` driven by `run_interaction`, over an
`HttpsChannel` with trust on first use (`default-trust = pin`, spec §7.4), its
items from the shipped catalog and a fresh item store in a temporary state
directory. The story: start-up, ReadAllItems, WriteItems with one item
rejected, CleanUp. Each message is one line; `--xml` adds the documents.

This module wires the phone's pieces the way the daemon does; issue 4 turns
the demo into a run of the daemon itself.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from provd.lab.scenario import ScenarioError, load_scenario
from provd.lab.server import LabServer
from provd.lab.story import arrows_for
from provd.service.interaction import InteractionResult, run_interaction
from provd.store.book import CatalogBook
from provd.store.catalog import CatalogError, load_catalog
from provd.store.errors import StoreError
from provd.store.items import Change, ItemStore
from provd.transport.https import HttpsChannel
from provd.transport.tls import TrustPolicy
from provd.wpi.basic import BASIC_ITEMS, basic_items, contact_me_uri
from provd.wpi.codec import DocumentError, parse_workpoint
from provd.wpi.events import ActionRequested, DocumentRefused, PhoneAnswer, PhoneEvent, Reply
from provd.wpi.model import Action, Reason, ReplyStatus
from provd.wpi.nonce import new_nonce
from provd.wpi.respond import answer_item_action
from provd.wpi.session import PhoneSession
from provd.wpi.summary import phone_summary, server_summary

#: The catalog shipped in the source tree (`config/items.toml`).
TREE_CATALOG = Path(__file__).resolve().parents[2] / "config" / "items.toml"

#: The demo phone's device description: identity items the phone reports live (spec §3.2).
DEVICE: Mapping[str, str] = {
    "device-type": "OpenStage 60",
    "related-device-type": "OpenStage 60",
    "software-type": "Siemens SIP",
    "related-software-type": "Siemens SIP",
    "software-version": "V3 R5.31.0",
    "related-software-version": "V3 R5.31.0",
    "mac-addr": "00:01:E3:25:EA:13",
    "part-number": "S30817-S7403-A101-015",
    "contact-me-uri": contact_me_uri("127.0.0.1", 8085),
}
#: Items the demo phone has in its store before it starts.
STORED: Mapping[str, str] = {"e164": "49897223290", "basic-e164": "49897223290"}

_ITEM_ACTIONS = (Action.READ_ALL_ITEMS, Action.READ_ITEMS, Action.WRITE_ITEMS)


class StoryObserver:
    """Prints one line per message as `run_interaction` reports it."""

    def __init__(self, out: TextIO, *, xml: bool) -> None:
        self.out = out
        self.xml = xml
        self.phone_label, self.server_label = arrows_for(getattr(out, "encoding", None))
        self.sent_count = 0
        self.received_count = 0
        self.rejected = 0

    def _print(self, line: str, body: bytes) -> None:
        print(line, file=self.out)
        if self.xml and body:
            for text in body.decode("utf-8", errors="replace").rstrip("\n").splitlines():
                print(f"    {text}", file=self.out)
        self.out.flush()

    def sent(self, body: bytes) -> None:
        self.sent_count += 1
        try:
            message = parse_workpoint(body)
        except DocumentError as exc:
            self._print(f"{self.phone_label}  unreadable document ({exc.reason})", body)
            return
        if message.reason is Reason.REPLY_TO and message.action == Action.WRITE_ITEMS.value:
            self.rejected += sum(1 for i in message.items or () if i.status is not None)
        self._print(f"{self.phone_label}  {phone_summary(message)}", body)

    def received(self, status: int, body: bytes, event: PhoneEvent | None) -> None:
        if status == 0:
            self._print(f"{self.server_label}  (no answer: the connection failed)", b"")
            return
        self.received_count += 1
        line = f"{self.server_label}  {server_summary(status, body)}"
        if isinstance(event, DocumentRefused):
            line += f"  -- refused by the phone: {event.reason}"
        self._print(line, body)


def perform(event: ActionRequested, session: PhoneSession, book: CatalogBook) -> PhoneAnswer:
    """The demo phone's actions: the item actions from the book; nothing else is built yet."""
    if event.action in _ITEM_ACTIONS:
        return answer_item_action(event, book, busy=False)
    # Deployment and restart come with issue 6: say so the way the protocol can.
    return Reply(status=ReplyStatus.FAILED, items=())


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    """What the demo saw, for the summary and the exit status."""

    result: InteractionResult
    pinned: str | None
    expected_pin: str
    rejected: int
    server_records: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.result.ok and self.pinned == self.expected_pin

    def summary(self) -> str:
        if not self.ok:
            why = self.result.failure or "the server key was not the lab's"
            return f"demo FAILED: {why}"
        return (
            f"demo ok: {self.result.messages_sent} phone messages, actions "
            f"{', '.join(self.result.actions)}; "
            f"{self.rejected} {'item' if self.rejected == 1 else 'items'} rejected; "
            f"{self.server_records} documents in the server's transcript; "
            f"server key pinned (SPKI SHA-256 {self.pinned[:16] if self.pinned else '?'}...); "
            f"{self.seconds:.2f} s"
        )


def run_demo(
    out: TextIO,
    *,
    xml: bool = False,
    scenario: str = "demo",
    catalog_path: Path = TREE_CATALOG,
    state_dir: Path,
) -> DemoOutcome:
    """Run the demo interaction against a fresh lab server; print the story to `out`."""
    started = time.monotonic()
    catalog = load_catalog(catalog_path)
    with ItemStore.open(state_dir) as store, LabServer(load_scenario(scenario)) as lab:
        store.commit([Change(name, None, value) for name, value in STORED.items()])
        book = CatalogBook(catalog, store, dynamic=DEVICE)
        first = basic_items({name: book.value_of(name) for name in BASIC_ITEMS})
        session = PhoneSession(
            reason=Reason.START_UP, nonce=new_nonce(secrets.token_bytes), items=first
        )
        observer = StoryObserver(out, xml=xml)
        print(f"lab server {lab.url}, scenario {lab.scenario.name!r}", file=out)
        print(f"phone {DEVICE['mac-addr']}, trust on first use (default-trust = pin)\n", file=out)
        # spec §7.4: pin mode with no pin yet accepts the first key and reports it.
        with HttpsChannel(
            lab.url, trust=TrustPolicy.pinned(None), connect_timeout=5, response_timeout=10
        ) as channel:
            result = run_interaction(
                session, channel, lambda event, s: perform(event, s, book), observer
            )
            pinned = channel.peer_spki_sha256
        records = len(lab.transcript)
    return DemoOutcome(
        result=result,
        pinned=pinned if result.ok else None,
        expected_pin=lab.server_pin,
        rejected=observer.rejected,
        server_records=records,
        seconds=time.monotonic() - started,
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the demo; 0 when the interaction completed as the story says."""
    parser = argparse.ArgumentParser(
        prog="python -m provd.service.demo",
        description="A phone interaction against the lab server over loopback TLS.",
    )
    parser.add_argument("--xml", action="store_true", help="print every document too")
    parser.add_argument(
        "--non-interactive",
        action="store_true",
        help="never prompt (for CI; the Secure Mode demo will ask for a PIN)",
    )
    parser.add_argument("--scenario", default="demo", help="scenario file or shipped name")
    parser.add_argument(
        "--catalog", type=Path, default=TREE_CATALOG, help="item catalog (config/items.toml)"
    )
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="provd-demo-") as state:
        try:
            outcome = run_demo(
                stream,
                xml=args.xml,
                scenario=args.scenario,
                catalog_path=args.catalog,
                state_dir=Path(state),
            )
        except BrokenPipeError:
            raise
        except (ScenarioError, CatalogError, StoreError, OSError) as exc:
            print(f"demo FAILED: {exc}", file=stream)
            return 2
    print("", file=stream)
    print(outcome.summary(), file=stream, flush=True)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # the reader went away (`... | head`): nothing left to tell
        sys.stderr.close()
        raise SystemExit(1) from None
