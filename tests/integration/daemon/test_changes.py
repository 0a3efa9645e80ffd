"""local-changes and inventory-changes (spec §3.5), against the real daemon."""

from __future__ import annotations

import secrets
import time

import pytest

from provd.wpi.model import Reason
from tests.integration.daemon.harness import LabFactory, PhoneFactory, StartedFactory
from tests.integration.daemon.lab import first_message, item_values, opened
from tests.integration.daemon.udev import send_udev_event, udev_events_possible


def test_two_sets_within_the_debounce_give_one_local_changes_report(
    started: StartedFactory,
) -> None:
    lab, phone = started("basic", settings={"changes.debounce": 1.0})
    mark = phone.mark()
    first = phone.ctl("set", items={"sntp-addr": "time1.example.com"})
    assert first == {"ok": True, "changed": 1, "rejected": {}}
    assert phone.ctl("set", items={"ldap-server-address[1]": "ldap.example.com"})["ok"]
    assert phone.status()["local_changes_pending"] == 2
    assert phone.wait_interaction(Reason.LOCAL_CHANGES, after=mark) == "completed"
    time.sleep(0.5)
    [number] = opened(lab, Reason.LOCAL_CHANGES)
    values = item_values(first_message(lab, number).items)
    # [G p.37, p.40] the flags, the count and the changed items.
    assert values["configuration-changed-flag"] == "true"
    assert values["configuration-attached-flag"] == "true"
    assert values["configuration-attached-number"] == "2"
    assert values["sntp-addr"] == "time1.example.com"
    assert values["ldap-server-address[1]"] == "ldap.example.com"
    assert phone.status()["local_changes_pending"] == 0
    # Reported: the next interaction says nothing changed since (spec §3.2 [B]).
    mark = phone.mark()
    phone.ctl("contact")
    phone.wait_interaction(Reason.SOLICITED, after=mark)
    [solicited] = opened(lab, Reason.SOLICITED)
    assert item_values(first_message(lab, solicited).items)["configuration-changed-flag"] == (
        "false"
    )


def test_a_set_is_validated_like_a_server_write(started: StartedFactory) -> None:
    _lab, phone = started("basic")
    answer = phone.ctl("set", items={"sntp-tz-offset": "99999", "no-such-item": "1"})
    assert answer["ok"] is False
    assert answer["rejected"] == {"sntp-tz-offset": "invalid data", "no-such-item": "unknown item"}
    assert phone.ctl("set", items={"mac-addr": "00:00:00:00:00:01"})["ok"] is False
    assert phone.status()["local_changes_pending"] == 0


def test_a_pending_local_change_survives_a_daemon_restart_and_arrives(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    fast_retry = {"retry.m": 0.3, "retry.k": 2000.0, "retry.cap": 1.2}
    phone = phones(lab, settings=fast_retry).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    port, pki = lab.port, lab.pki
    lab.stop()  # the server goes down

    mark = phone.mark()
    assert phone.ctl("set", items={"sntp-addr": "kept.example.com"})["ok"]
    assert phone.wait_interaction(Reason.LOCAL_CHANGES, after=mark) == "failed"
    phone.kill()  # SIGKILL while the change is unreported

    phone.start()
    assert phone.status()["local_changes_pending"] == 1
    assert phone.wait_interaction(Reason.START_UP) == "failed"
    # The server comes back (same address, same key: the pin still holds).
    mark = phone.mark()
    back = labs({"interaction": [{"step": [{"action": "CleanUp"}]}]}, port=port, pki=pki)
    assert phone.wait_interaction(Reason.START_UP, after=mark) == "completed"
    assert phone.wait_interaction(Reason.LOCAL_CHANGES) == "completed"
    assert [i.reason for i in back.conductor.interactions] == [
        Reason.START_UP,
        Reason.LOCAL_CHANGES,
    ]
    assert item_values(first_message(back, 1).items)["configuration-changed-flag"] == "true"
    report = item_values(first_message(back, 2).items)
    assert report["sntp-addr"] == "kept.example.com"
    assert report["configuration-attached-number"] == "1"
    assert phone.status()["local_changes_pending"] == 0


def test_hot_plugged_hardware_is_reported_as_inventory_changes(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    why = udev_events_possible()
    if why:
        pytest.skip(why)
    subsystem = "provdt" + secrets.token_hex(4)  # no other test run hears these events
    rule = {"item": "key-modules", "subsystem": subsystem, "match": {"PROVD_KIND": "key-module"}}
    lab = labs("basic")
    phone = phones(lab, settings={"udev.rules": [rule], "changes.debounce": 0.5}).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    assert "udev monitor unavailable" not in phone.logtext()
    assert phone.get("key-modules") == {"key-modules": "0"}

    mark = phone.mark()
    base = f"/devices/virtual/{subsystem}"
    send_udev_event("add", subsystem, f"{base}/km1", 101, PROVD_KIND="key-module")
    send_udev_event("add", subsystem, f"{base}/km2", 102, PROVD_KIND="key-module")
    send_udev_event("add", subsystem, f"{base}/hs1", 103, PROVD_KIND="headset")  # no rule
    assert phone.wait_interaction(Reason.INVENTORY_CHANGES, after=mark) == "completed"
    time.sleep(0.6)
    [number] = opened(lab, Reason.INVENTORY_CHANGES)  # both within the debounce: one report
    assert item_values(first_message(lab, number).items)["key-modules"] == "2"
    assert phone.get("key-modules") == {"key-modules": "2"}

    mark = phone.mark()
    send_udev_event("remove", subsystem, f"{base}/km1", 104, PROVD_KIND="key-module")
    assert phone.wait_interaction(Reason.INVENTORY_CHANGES, after=mark) == "completed"
    second = opened(lab, Reason.INVENTORY_CHANGES)[-1]
    assert item_values(first_message(lab, second).items)["key-modules"] == "1"


def test_setting_an_item_to_its_default_queues_no_local_change(started: StartedFactory) -> None:
    _lab, phone = started({"interaction": [{"step": [{"action": "CleanUp"}]}]})
    assert phone.get("sntp-addr") == {"sntp-addr": ""}  # unset: its default
    assert phone.ctl("set", items={"sntp-addr": ""}) == {"ok": True, "changed": 0, "rejected": {}}
    assert phone.status()["local_changes_pending"] == 0
