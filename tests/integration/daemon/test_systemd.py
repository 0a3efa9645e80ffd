"""systemd's side of the daemon: watchdog, SIGTERM, SIGHUP (issue 4, Build 6)."""

from __future__ import annotations

import itertools
import signal
import time

from provd.lab.server import LabServer
from provd.store.items import ItemStore
from provd.wpi.model import Reason
from tests.integration.daemon.harness import LabFactory, Phone, PhoneFactory, StartedFactory
from tests.integration.daemon.lab import opened
from tests.integration.daemon.watch import Notice


def watchdog_times(phone: Phone) -> list[float]:
    assert phone.notify is not None
    return [n.time for n in phone.notify.notices() if n.has("WATCHDOG=1")]


def test_the_watchdog_is_pinged_from_the_loop_and_stops_when_the_loop_freezes(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    env = {"WATCHDOG_USEC": "400000", "PROVD_DEBUG_COMMANDS": "1"}
    phone = phones(lab, env=env).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    time.sleep(1.0)
    before = watchdog_times(phone)
    # Half of WATCHDOG_USEC: about every 0.2 s, so at least 3 in the last second.
    assert len([t for t in before if t > time.monotonic() - 1.0]) >= 3

    frozen_at = time.monotonic()
    assert phone.ctl("debug-freeze", seconds=2) == {"ok": True}
    thawed_at = time.monotonic()
    assert thawed_at - frozen_at >= 1.9
    assert phone.notify is not None
    phone.notify.wait_for(lambda n: n.has("WATCHDOG=1") and n.time > thawed_at, timeout=2)
    times = watchdog_times(phone)
    during = [t for t in times if frozen_at + 0.3 < t < thawed_at - 0.05]
    assert during == []  # the loop was stuck: no ping, systemd would restart provd
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 1.8


def test_without_notify_socket_the_daemon_runs_the_same(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    phone = phones(lab, env={"NOTIFY_SOCKET": ""}).start(ready=False)
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    assert phone.status()["last_contact"].endswith(" ok")
    assert phone.notify is not None
    assert phone.notify.notices() == []
    assert "cannot notify" not in phone.logtext()
    assert phone.stop() == 0


def test_sigterm_when_idle_says_stopping_and_exits_0(started: StartedFactory) -> None:
    _lab, phone = started("basic")
    assert phone.stop() == 0
    assert phone.notify is not None
    last = phone.notify.notices()[-1]
    assert last.has("STOPPING=1")
    assert not phone.control_socket.exists()  # removed on the way out


def test_no_watchdog_pings_when_watchdog_pid_names_another_process(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    phone = phones(lab, env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    time.sleep(0.5)
    assert watchdog_times(phone) == []


def test_sigterm_during_an_interaction_exits_0_with_the_store_intact(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs(
        {
            "interaction": [
                {
                    "contact": 1,
                    "step": [
                        {"action": "WriteItems", "items": {"sntp-addr": "kept.example.com"}},
                        {"action": "CleanUp", "delay": 20, "note": "the server hangs"},
                    ],
                }
            ]
        }
    )
    phone = phones(lab, settings={"timeouts.response": 60.0}).start()
    phone.wait_log(r"WriteItems → accepted")
    # The phone's reply is out and it waits for the server's answer.
    lab.wait_for(lambda r: r.from_phone and r.action == "WriteItems")
    assert phone.status()["running"] == "start-up"

    mark = phone.notify.mark() if phone.notify else 0
    signalled = time.monotonic()
    phone.send_signal(signal.SIGTERM)
    assert phone.notify is not None
    stopping: Notice = phone.notify.wait_for(lambda n: n.has("STOPPING=1"), after=mark)
    assert stopping.time - signalled < 2.0
    assert phone.process is not None
    code = phone.process.wait(timeout=10)  # issue 4: within 10 s
    assert code == 0
    assert time.monotonic() - signalled < 10.0

    with ItemStore.open(phone.state_dir) as store:
        assert store.recovered_from is None  # the store passed its check at open
        assert store.get("sntp-addr") == "kept.example.com"


def test_sighup_reloads_settings_from_a_dropin(labs: LabFactory, phones: PhoneFactory) -> None:
    lab = labs("basic")
    other = labs("basic", pki=lab.pki)
    phone = phones(lab, settings={"contact-me.contact-gap": 0}).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"

    def contact_me_to_other() -> None:
        mark = phone.mark()
        assert phone.contact_me(dls_ip_addr="127.0.0.1", dls_ip_port=other.port) == 204
        assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"

    contact_me_to_other()
    assert (len(opened(lab, Reason.SOLICITED)), len(opened(other))) == (1, 0)

    phone.dropin("50-redirect.toml", '[contact-me]\nallow-redirect = ["127.0.0.1"]\n')
    reload_settings(phone)
    contact_me_to_other()
    assert (len(opened(lab, Reason.SOLICITED)), len(opened(other, Reason.SOLICITED))) == (1, 1)


def reload_settings(phone: Phone) -> tuple[Notice, Notice]:
    """SIGHUP, then the RELOADING=1 ... READY=1 pair of Type=notify-reload."""
    assert phone.notify is not None
    mark = phone.notify.mark()
    phone.send_signal(signal.SIGHUP)
    reloading = phone.notify.wait_for(lambda n: n.has("RELOADING=1"), after=mark)
    assert (reloading.get("MONOTONIC_USEC") or "").isdigit()
    ready = phone.notify.wait_for(lambda n: n.has("READY=1"), after=mark)
    return reloading, ready


def test_an_invalid_settings_file_on_sighup_keeps_the_running_settings(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs("basic")
    other = labs("basic", pki=lab.pki)
    phone = phones(lab, settings={"contact-me.contact-gap": 0}).start()
    assert phone.wait_interaction(Reason.START_UP) == "completed"
    phone.dropin(
        "50-broken.toml",
        '[contact-me]\nallow-redirect = ["127.0.0.1"]\ncontact-gap = "soon"\n',
    )
    mark = phone.mark()
    reload_settings(phone)
    line = phone.wait_log(r"settings not reloaded", after=mark).string
    assert "contact-gap" in line
    assert "ERROR" in line
    assert phone.running
    # The broken file changed nothing, its valid line included.
    mark = phone.mark()
    assert phone.contact_me(dls_ip_addr="127.0.0.1", dls_ip_port=other.port) == 204
    assert phone.wait_interaction(Reason.SOLICITED, after=mark) == "completed"
    assert opened(other) == []
    assert len(opened(lab, Reason.SOLICITED)) == 1


def test_sighup_applies_a_new_contact_gap(started: StartedFactory) -> None:
    lab: LabServer
    lab, phone = started("basic")
    mark = phone.mark()
    assert phone.contact_me() == 204
    phone.wait_interaction(Reason.SOLICITED, after=mark)
    assert phone.contact_me() == 204  # within the 300 s gap: pending
    assert phone.status()["pending"] == ["solicited"]
    phone.dropin("50-gap.toml", "[contact-me]\ncontact-gap = 0\n")
    reload_settings(phone)
    mark = phone.mark()
    assert phone.contact_me() == 204
    phone.wait_interaction(Reason.SOLICITED, after=mark, timeout=3)
    assert len(opened(lab, Reason.SOLICITED)) == 2


def test_sigterm_ends_the_interaction_in_flight_at_once(
    labs: LabFactory, phones: PhoneFactory
) -> None:
    lab = labs({"interaction": [{"contact": 1, "step": [{"action": "CleanUp", "delay": 20}]}]})
    phone = phones(lab, settings={"timeouts.response": 60.0}).start()
    lab.wait_for(lambda r: r.from_phone and r.reason is Reason.START_UP)
    time.sleep(0.3)  # the worker is now blocked reading the server's answer
    mark = phone.mark()
    phone.send_signal(signal.SIGTERM)
    try:
        # The abandoned interaction comes back to the loop as failed, and provd exits.
        assert phone.wait_interaction(Reason.START_UP, after=mark, timeout=4) == "failed"
        assert phone.process is not None
        assert phone.process.wait(timeout=4) == 0
        assert not phone.matching_log("did not end within", after=mark)
    finally:
        if phone.running:
            phone.kill()
