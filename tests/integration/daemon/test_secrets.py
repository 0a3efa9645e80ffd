"""Secrets never leave the phone: not in a log (even at debug level), not in a document."""

from __future__ import annotations

from provd.wpi.model import Reason
from tests.integration.daemon.harness import StartedFactory
from tests.integration.daemon.lab import first_message, item_values, opened, phone_records

SERVER_SECRETS = {
    "user-pwd": "Us3r-Secret-71",
    "admin-pwd": "Adm1n-Secret-42",
    "file-pwd": "F1le-Secret-93",
}
LOCAL_SECRET = "L0cal-Secret-55"

#: The server writes three passwords, then reads everything back every way it can.
WRITES_SECRETS = {
    "interaction": [
        {
            "reason": "start-up",
            "step": [
                {"action": "WriteItems", "items": SERVER_SECRETS},
                {"action": "ReadAllItems"},
                {"action": "ReadItems", "items": list(SERVER_SECRETS)},
                {"action": "CleanUp"},
            ],
        },
        {"step": [{"action": "CleanUp"}]},
    ]
}


def test_passwords_reach_no_log_and_no_phone_document(started: StartedFactory) -> None:
    lab, phone = started(WRITES_SECRETS, settings={"log.level": "debug"})
    write_reply = phone_records(lab, 1)[1]
    assert (write_reply.action, write_reply.items) == ("WriteItems", ())  # all three taken
    mark = phone.mark()
    assert phone.ctl("set", items={"user-pwd": LOCAL_SECRET})["ok"]
    assert phone.wait_interaction(Reason.LOCAL_CHANGES, after=mark) == "completed"
    # The report names the changed password, without its value [B].
    [number] = opened(lab, Reason.LOCAL_CHANGES)
    report = first_message(lab, number)
    assert [(i.name, i.value) for i in report.items if i.name == "user-pwd"] == [("user-pwd", "")]
    assert item_values(report.items)["configuration-attached-number"] == "1"

    assert phone.wait_log(r"WriteItems → accepted")  # the write happened and was logged
    assert phone.matching_log(r"DEBUG")  # debug lines too
    phone.stop()
    log = phone.logtext()
    sent_by_phone = b"".join(r.body for r in lab.transcript if r.from_phone)
    for secret in [*SERVER_SECRETS.values(), LOCAL_SECRET]:
        assert secret not in log
        assert secret.encode() not in sent_by_phone
