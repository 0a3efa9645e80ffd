"""Fixtures for the end-to-end Secure Mode tests: the real daemon against the lab.

`rig(scenario, ...)` starts a `LabServer` (Default Mode and Secure Mode ports on
127.0.0.1) and prepares a `Phone` (the real `provd run` process, from the daemon
harness) pointed at its default port, with the `socket` UI driver so the test types
the PIN through the control socket as a phone's GUI would. After each test that
did not fail, the secrets check of `secrets_check` runs on every phone (issue 5: after every
scenario); a leak fails the test at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from provd.lab.scenario import Scenario
from provd.lab.server import LabServer
from tests.integration.daemon.harness import Phone, remove_tree, short_tempdir
from tests.integration.secure.secrets_check import (
    MATERIAL_ITEMS,
    Secrets,
    leaks_after_stop,
    leaks_while_running,
)

#: Settings of every phone here: debug logging makes the secrets check strict.
PHONE_SETTINGS: dict[str, Any] = {
    "log.level": "debug",
    "ui.driver": "socket",
    "ui.timeout": 60.0,
}


@dataclass
class Rig:
    """One lab and one phone, and what must not leak."""

    lab: LabServer
    phone: Phone
    secrets: Secrets


class RigFactory(Protocol):
    def __call__(
        self,
        scenario: Scenario | Mapping[str, Any] | str,
        *,
        settings: Mapping[str, Any] | None = None,
        start: bool = True,
    ) -> Rig: ...


@pytest.fixture
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RigFactory]:
    made: list[Rig] = []
    sockdirs: list[Path] = []
    failed_before = request.session.testsfailed

    def make(
        scenario: Scenario | Mapping[str, Any] | str,
        *,
        settings: Mapping[str, Any] | None = None,
        start: bool = True,
    ) -> Rig:
        if isinstance(scenario, Mapping):
            scenario = Scenario.from_dict(scenario)
        lab = LabServer(scenario).start()
        workdir = tmp_path / f"phone{len(made)}"
        workdir.mkdir()
        sockdir = short_tempdir()
        sockdirs.append(sockdir)
        phone = Phone(
            workdir,
            sockdir,
            server_url=lab.url,
            settings={**PHONE_SETTINGS, **(settings or {})},
        )
        secrets = Secrets()
        secrets.add_material(lab.material)
        made.append(Rig(lab, phone, secrets))
        if start:
            phone.start()
        return made[-1]

    yield make

    # The call's report is counted before teardown: a failed test is not checked (its
    # own failure says more); an expected failure (xfail) is, a leak is a leak.
    passed = request.session.testsfailed == failed_before
    leaks: list[str] = []
    try:
        for one in reversed(made):
            leaks += _check_and_close(one, check=passed)
    finally:
        for one in made:
            one.phone.close()
            one.lab.stop()
        for sockdir in sockdirs:
            remove_tree(sockdir)
    assert not leaks, "secrets outside the secure store:\n" + "\n".join(leaks)


def _check_and_close(one: Rig, *, check: bool) -> list[str]:
    """Stop the phone and the lab; with `check`, the secrets check of issue 5."""
    leaks: list[str] = []
    if check and one.phone.running:
        leaks += leaks_while_running(one.phone, one.secrets)
    one.phone.close()
    print(f"===== daemon log ({one.phone.workdir.name}) =====\n{one.phone.logtext()}")
    one.lab.stop()
    if check:
        for name in MATERIAL_ITEMS:
            sent = [
                item.value
                for record in one.lab.transcript
                if not record.from_phone
                for item in record.items
                if item.name == name
            ]
            one.secrets.add_item_values(name, sent)
        leaks += leaks_after_stop(one.phone, one.secrets)
    return leaks
