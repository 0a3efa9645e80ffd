"""Start-up at daemon start (spec §3.1, §3.2), as systemd and the server see it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from provd.lab.server import LabServer
from provd.wpi.basic import BASIC_ITEMS
from provd.wpi.model import Reason, ReplyStatus
from tests.integration.daemon.harness import MAC, SOFTWARE_VERSION, LabFactory, PhoneFactory
from tests.integration.daemon.lab import (
    first_message,
    item_statuses,
    item_values,
    opened,
    phone_records,
)

#: spec §3.2, in this order [G p.33, p.43; F].
SPEC_BASIC_ORDER = [
    "device-type",
    "related-device-type",
    "software-type",
    "related-software-type",
    "software-version",
    "related-software-version",
    "contact-me-uri",
    "mac-addr",
    "configuration-changed-flag",
    "part-number",
    "e164",
    "basic-e164",
    "mobility-enabled",
    "sip-mobility-state",
]


def test_ready_comes_once_the_contact_me_listener_is_bound(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    phone = phones(lab).start(ready=False)
    phone.wait_ready()
    # The listener was bound before READY=1 (its port is logged before it): a server may
    # send a contact-me the moment systemd reports the service started.
    port = int(phone.wait_log(r"contact-me listener on 127\.0\.0\.1 port (\d+)").group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert phone.contact_me(method="GET") == 204
    # ... and the control socket answers at once too.
    assert phone.status()["contact_me_port"] == port


def test_status_lines_tell_the_mode_and_the_last_contact(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    phone = phones(lab).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    assert phone.notify is not None
    ready = phone.notify.wait_for(lambda n: n.has("READY=1"))
    assert (ready.get("STATUS") or "").startswith("default mode, ")
    # After the start-up: "default mode, idle, last contact 12:03:04 ok" (issue 4).
    done = phone.notify.wait_for(
        lambda n: bool(re.search(r"last contact \d\d:\d\d:\d\d ok", n.get("STATUS") or ""))
    )
    status = done.get("STATUS") or ""
    assert status.startswith("default mode, idle, last contact ")
    assert "\n" not in status
    assert phone.status()["status"] == status


def test_start_up_sends_the_basic_items_in_spec_order(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    phone = phones(lab).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    assert tuple(SPEC_BASIC_ORDER) == BASIC_ITEMS
    assert opened(lab) == [1]
    first = first_message(lab, 1)
    assert first.reason is Reason.START_UP
    names = [item.name for item in first.items]
    assert names[: len(SPEC_BASIC_ORDER)] == SPEC_BASIC_ORDER
    values = item_values(first.items)
    assert values["mac-addr"] == MAC
    assert values["software-version"] == SOFTWARE_VERSION
    assert values["contact-me-uri"] == (
        f"http://127.0.0.1:{phone.contact_me_port}/contact_dls.html/ContactDLS"
    )
    # [G p.33] what the phone cannot deliver is sent empty with status failed.
    assert item_statuses(first.items).get("part-number") == "failed"
    # spec §2.3 [F]: the mac-addr item within the first 1500 bytes.
    assert b'name="mac-addr"' in first.body[:1500]


def test_start_up_runs_the_servers_read_all_and_write(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab: LabServer = labs("basic")
    phone = phones(lab).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    records = phone_records(lab, 1)
    assert [(r.reason, r.action, r.status) for r in records] == [
        (Reason.START_UP, None, None),
        (Reason.REPLY_TO, "ReadAllItems", ReplyStatus.ACCEPTED),
        (Reason.REPLY_TO, "WriteItems", ReplyStatus.ACCEPTED),
    ]
    read_all = item_values(records[1].items)
    assert read_all["mac-addr"] == MAC
    # [G p.30] no write-only secret and no certificate in ReadAllItems.
    assert not {"user-pwd", "admin-pwd", "file-pwd", "dls-client-certificate"} & set(read_all)
    # The server's WriteItems is in the store.
    assert phone.get("sntp-addr", "e164") == {"sntp-addr": "ntp.example.com", "e164": "49897223290"}
    # spec §7.4: the first server that completes an interaction is pinned.
    assert phone.status()["trust_pin"] == lab.server_pin


def test_an_integrators_catalog_drop_in_adds_a_basic_item(
    labs: LabFactory, phones: PhoneFactory, tmp_path: Path
) -> None:
    # config/items.toml: the first message carries the items with a `basic` position,
    # in that order; a drop-in may add one (here after the spec's fourteen).
    dropins = tmp_path / "items.d"
    dropins.mkdir()
    (dropins / "50-basic.toml").write_text('[item."sntp-addr"]\nbasic = 15\n', encoding="utf-8")
    lab = labs("basic")
    phone = phones(lab, settings={"paths.catalog-dropins": dropins}).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    names = [item.name for item in first_message(lab, 1).items]
    assert names == [*SPEC_BASIC_ORDER, "sntp-addr"]
