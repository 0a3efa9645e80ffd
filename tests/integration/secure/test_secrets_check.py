"""The secrets check can fail: a planted value is found in the log and in the item store."""

from __future__ import annotations

from tests.integration.secure.conftest import RigFactory
from tests.integration.secure.flows import CLEAN_UP, bootstrap_scenario, nopin_write, wait_mode
from tests.integration.secure.secrets_check import (
    Secrets,
    key_in_secure_store,
    leaks_after_stop,
    leaks_while_running,
)

PLANTED = "Pl4nted-N0t-A-Secret-Really"
#: sntp-addr is no secret: a server write of it is logged and stored as any other item.
WRITE_PLANTED = {"action": "WriteItems", "items": {"sntp-addr": PLANTED}}


def test_the_check_finds_a_value_that_is_in_the_log_and_the_item_store(rig: RigFactory) -> None:
    r = rig(bootstrap_scenario(nopin_write(), secure_steps=(WRITE_PLANTED, CLEAN_UP)))
    phone = r.phone
    assert wait_mode(phone, "secure mode") == "secure mode"
    assert key_in_secure_store(phone, r.lab.material)  # the key is found where it is
    assert phone.get("sntp-addr") == {"sntp-addr": PLANTED}
    planted = Secrets()
    planted.add("planted", PLANTED)
    assert leaks_while_running(phone, planted) == []  # status does not show items
    phone.stop()
    leaks = leaks_after_stop(phone, planted)
    assert "planted in the daemon's log" in leaks
    assert any(leak.startswith("planted in ") and "items" in leak for leak in leaks), leaks
