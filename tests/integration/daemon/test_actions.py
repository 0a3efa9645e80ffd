"""Every server action of spec §3.3 and every ending of §2.3, against the real daemon."""

from __future__ import annotations

import json
import time
from typing import Any

from provd.lab.server import LabServer
from provd.wpi.model import Fragment, Reason, ReplyStatus
from tests.integration.daemon.harness import Phone, StartedFactory, wait_until
from tests.integration.daemon.lab import (
    item_statuses,
    item_values,
    opened,
    phone_records,
    server_records,
)


def by_contact(*scripts: list[dict[str, Any]]) -> dict[str, Any]:
    """A scenario whose n-th interaction (from 1) plays the n-th list of steps."""
    return {
        "interaction": [
            {"contact": n, "step": steps} for n, steps in enumerate(scripts, start=1) if steps
        ]
    }


CLEAN_UP: list[dict[str, Any]] = [{"action": "CleanUp"}]


def solicit(phone: Phone, lab: LabServer) -> int:
    """Open a solicited interaction (`provctl contact`), wait for its end; its number."""
    count = len(opened(lab, Reason.SOLICITED))
    mark = phone.mark()
    assert phone.ctl("contact")["ok"]
    phone.wait_interaction(Reason.SOLICITED, after=mark)
    numbers = opened(lab, Reason.SOLICITED)
    assert len(numbers) == count + 1
    return numbers[-1]


def test_read_items_answers_unknown_names_unknown_item(started: StartedFactory) -> None:
    lab, phone = started(
        by_contact(
            CLEAN_UP,
            [
                {"action": "ReadItems", "items": ["mac-addr", "no-such-item", "user-pwd"]},
                {"action": "CleanUp"},
            ],
        )
    )
    number = solicit(phone, lab)
    reply = phone_records(lab, number)[1]
    assert (reply.reason, reply.action, reply.status) == (
        Reason.REPLY_TO,
        "ReadItems",
        ReplyStatus.ACCEPTED,
    )
    assert [i.name for i in reply.items] == ["mac-addr", "no-such-item", "user-pwd"]
    assert item_statuses(reply.items) == {
        "no-such-item": "unknown item",
        "user-pwd": "failed",  # write-only: never read back [B]
    }
    assert item_values(reply.items)["mac-addr"] == "00:01:E3:25:EA:13"


def test_write_items_commits_the_valid_items_and_names_the_rejected(
    started: StartedFactory,
) -> None:
    write = {
        "action": "WriteItems",
        "items": [
            {"name": "sntp-addr", "value": "time.example.com"},
            {"name": "ldap-server-address", "index": 1, "value": "ldap.example.com"},
            {"name": "socketed-headset-mode", "value": "true"},  # not in the catalog
            {"name": "key-modules", "value": "3"},  # read only (inventory)
            {"name": "sntp-tz-offset", "value": "99999"},  # out of range
        ],
    }
    lab, phone = started(by_contact(CLEAN_UP, [write, {"action": "CleanUp"}]))
    number = solicit(phone, lab)
    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("WriteItems", ReplyStatus.ACCEPTED)
    # [G p.78-83] an (empty) ItemList with one empty item per rejected item.
    assert b"<ItemList" in reply.body
    assert item_values(reply.items) == {}
    assert item_statuses(reply.items) == {
        "socketed-headset-mode": "unknown item",
        "key-modules": "read only",
        "sntp-tz-offset": "invalid data",
    }
    assert phone.get("sntp-addr", "ldap-server-address[1]") == {
        "sntp-addr": "time.example.com",
        "ldap-server-address[1]": "ldap.example.com",
    }
    assert "99999" not in json.dumps(phone.ctl("get", items=["sntp-tz-offset"]))


def test_write_items_while_busy_is_answered_busy_and_send_solicited_waits_for_idle(
    started: StartedFactory,
) -> None:
    lab, phone = started(
        by_contact(
            CLEAN_UP,
            [
                {"action": "WriteItems", "items": {"sntp-addr": "busy.example.com"}},
                {"action": "CleanUp", "send-solicited": True},
            ],
            [
                {"action": "WriteItems", "items": {"sntp-addr": "idle.example.com"}},
                {"action": "CleanUp"},
            ],
        )
    )
    before = phone.get("sntp-addr")
    assert phone.ctl("busy", on=True) == {"ok": True, "busy": True}
    assert "busy (in a call)" in phone.status()["status"]
    number = solicit(phone, lab)
    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("WriteItems", ReplyStatus.BUSY)
    assert b"ItemList" not in reply.body  # [G p.46, p.76]
    assert phone.get("sntp-addr") == before
    status = phone.status()
    assert status["send_solicited"] is True
    # Still in the call: the indication waits (no interaction opens).
    time.sleep(0.5)
    assert opened(lab) == [1, 2]

    mark = phone.mark()
    assert phone.ctl("busy", on=False)["ok"]
    phone.wait_interaction(Reason.SOLICITED, after=mark)
    assert phone.get("sntp-addr") == {"sntp-addr": "idle.example.com"}
    time.sleep(0.5)
    assert opened(lab) == [1, 2, 3]  # exactly one solicited interaction for the indication
    assert phone.status()["send_solicited"] is False


def test_a_big_reply_goes_in_fragments_the_server_asks_for(started: StartedFactory) -> None:
    lab, phone = started("basic", settings={"protocol.max-message": 2000})
    records = phone_records(lab, 1)
    read_all = [r for r in records if r.action == "ReadAllItems"]
    assert len(read_all) >= 2
    assert [r.fragment for r in read_all] == [Fragment.NEXT] * (len(read_all) - 1) + [
        Fragment.FINAL
    ]
    assert all(len(r.body) < 2000 for r in read_all)
    asked = [r.action for r in server_records(lab, 1)]
    assert asked.count("GetNextFragment") == len(read_all) - 1
    whole = read_all[-1].all_items
    assert sum(len(r.items) for r in read_all) == len(whole)
    assert item_values(whole)["mac-addr"] == "00:01:E3:25:EA:13"
    # The WriteItems after the fragments was handled normally.
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}


def test_an_unknown_action_is_answered_failed(started: StartedFactory) -> None:
    lab, phone = started(by_contact(CLEAN_UP, [{"action": "SelfDestruct"}, {"action": "CleanUp"}]))
    number = solicit(phone, lab)
    reply = phone_records(lab, number)[1]
    assert (reply.reason, reply.action, reply.status) == (
        Reason.REPLY_TO,
        "SelfDestruct",
        ReplyStatus.FAILED,
    )


def reboot_request(phone: Phone) -> dict[str, Any]:
    path = phone.requests_dir / "reboot"
    wait_until(path.exists)
    request: dict[str, Any] = json.loads(path.read_text())
    return request


def test_restart_asks_for_a_reboot_without_answering(started: StartedFactory) -> None:
    lab, phone = started(by_contact(CLEAN_UP, [{"action": "Restart"}]))
    number = solicit(phone, lab)
    assert len(phone_records(lab, number)) == 1  # [G p.50] no answer to Restart
    request = reboot_request(phone)
    assert request["what"] == "reboot"


def test_factory_reset_with_the_password_wipes_items_and_pin_and_reboots(
    started: StartedFactory,
) -> None:
    reset = {
        "action": "Restart",
        "items": {"restart-type": "FactoryReset", "restart-password": "124816"},
    }
    lab, phone = started(
        by_contact(
            [{"action": "WriteItems", "items": {"sntp-addr": "ntp.example.com"}}, *CLEAN_UP],
            [reset],
        )
    )
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}
    assert phone.status()["trust_pin"] == lab.server_pin
    solicit(phone, lab)
    request = reboot_request(phone)
    assert request["what"] == "factory-reset-reboot"
    assert phone.get("sntp-addr").get("sntp-addr", "") == ""  # back to its default
    assert phone.status()["trust_pin"] is None


def test_factory_reset_with_a_wrong_password_fails_and_changes_nothing(
    started: StartedFactory,
) -> None:
    reset = {
        "action": "Restart",
        "items": {"restart-type": "FactoryReset", "restart-password": "000000"},
    }
    lab, phone = started(
        by_contact(
            [{"action": "WriteItems", "items": {"sntp-addr": "ntp.example.com"}}, *CLEAN_UP],
            [reset, {"action": "CleanUp"}],
        )
    )
    number = solicit(phone, lab)
    reply = phone_records(lab, number)[1]
    assert (reply.action, reply.status) == ("Restart", ReplyStatus.FAILED)
    assert item_statuses(reply.items) == {"restart-password": "invalid data"}
    assert phone.get("sntp-addr") == {"sntp-addr": "ntp.example.com"}
    assert phone.status()["trust_pin"] == lab.server_pin
    time.sleep(0.2)
    assert not (phone.requests_dir / "reboot").exists()


def test_empty_200_and_204_end_well_and_http_500_fails(started: StartedFactory) -> None:
    lab, phone = started(
        by_contact(CLEAN_UP, [{"empty": True}], [{"status": 204}], [{"status": 500}])
    )
    results = []
    for _ in range(3):
        mark = phone.mark()
        assert phone.ctl("contact")["ok"]
        results.append(phone.wait_interaction(Reason.SOLICITED, after=mark))
    assert results == ["completed", "completed", "failed"]
    assert opened(lab) == [1, 2, 3, 4]
    status = phone.status()
    assert status["last_contact"].endswith(" failed")
    assert "500" in (status["last_error"] or "")
    # A failed solicited interaction is not retried (spec §3.1).
    time.sleep(0.5)
    assert opened(lab) == [1, 2, 3, 4]
    assert status["pending"] == []


def test_malformed_documents_end_with_a_phone_clean_up_and_touch_nothing(
    started: StartedFactory,
) -> None:
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
        '<DLSMessage xmlns="http://www.siemens.com/DLS"><Message nonce="{nonce}">'
        '<Action>WriteItems</Action><ItemList><Item name="sntp-addr">&lol2;</Item></ItemList>'
        "</Message></DLSMessage>"
    )
    lab, phone = started(
        by_contact(
            CLEAN_UP,
            [{"raw": "this is not XML <at all"}],
            [{"raw": laughs}],
            [
                {
                    "action": "WriteItems",
                    "items": {"sntp-addr": "evil.example.com"},
                    "nonce": "00000000000000000000000000000000",
                }
            ],
        )
    )
    before = phone.get("sntp-addr")
    reasons = []
    for _ in range(3):
        number = solicit(phone, lab)
        records = phone_records(lab, number)
        assert [r.reason for r in records] == [Reason.SOLICITED, Reason.CLEAN_UP]
        reasons.append(item_values(records[1].items).get("cleanup-reason"))
    # spec §3.4 [G p.83]
    assert reasons == ["invalid document", "invalid document", "invalid nonce"]
    assert phone.get("sntp-addr") == before


def test_send_solicited_while_idle_opens_one_solicited_interaction_at_once(
    started: StartedFactory,
) -> None:
    lab, phone = started(by_contact([{"action": "CleanUp", "send-solicited": True}], CLEAN_UP))
    assert phone.wait_interaction(Reason.SOLICITED) == "completed"
    time.sleep(0.5)
    assert [i.reason for i in lab.conductor.interactions] == [Reason.START_UP, Reason.SOLICITED]
    assert phone.status()["send_solicited"] is False


def test_the_phone_reconnects_with_its_cookie_when_the_server_closes(
    started: StartedFactory,
) -> None:
    lab, _phone = started(
        by_contact(
            [
                {"action": "ReadItems", "items": ["mac-addr"], "close": True},
                {"action": "ReadItems", "items": ["e164"], "close": True},
                {"action": "CleanUp"},
            ]
        )
    )
    records = phone_records(lab, 1)
    assert [r.reason for r in records] == [Reason.START_UP, Reason.REPLY_TO, Reason.REPLY_TO]
    # spec §1 [B]: a new connection, the same interaction, the same cookie.
    assert [r.cookie for r in records] == [False, True, True]
    assert not any("no cookie" in r.note for r in records)


def test_a_server_that_does_not_answer_in_time_fails_the_interaction(
    started: StartedFactory,
) -> None:
    _lab, phone = started(
        by_contact(CLEAN_UP, [{"action": "CleanUp", "delay": 3}]),
        settings={"timeouts.response": 0.5},
    )
    mark = phone.mark()
    phone.ctl("contact")
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "failed"
    assert "did not answer in time" in (phone.status()["last_error"] or "")
