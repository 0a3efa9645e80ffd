"""Fixtures for the daemon's integration tests: lab servers and phones, torn down in order.

`labs(scenario, ...)` starts a `LabServer` on 127.0.0.1 (port 0 unless given);
`phones(lab_or_url, settings=..., overrides=..., env=...)` prepares a `Phone` (the real
daemon process) in its own directories; `.start()` runs it. Phones stop before labs. A
failed test shows each phone's log and notifications (they are printed at teardown, and
pytest shows captured output of failed tests).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from provd.lab.pki import LabPKI
from provd.lab.scenario import Scenario
from provd.lab.server import LabServer
from tests.integration.daemon.harness import (
    LabFactory,
    Phone,
    PhoneFactory,
    StartedFactory,
    remove_tree,
    short_tempdir,
)


@pytest.fixture
def labs() -> Iterator[LabFactory]:
    started: list[LabServer] = []

    def make(
        scenario: Scenario | str | Mapping[str, Any] = "basic",
        *,
        port: int = 0,
        pki: LabPKI | None = None,
    ) -> LabServer:
        if isinstance(scenario, Mapping):
            scenario = Scenario.from_dict(scenario)
        lab = LabServer(scenario, port=port, pki=pki)
        started.append(lab)
        return lab.start()

    yield make
    for lab in reversed(started):
        lab.stop()


@pytest.fixture
def phones(labs: LabFactory, tmp_path: Path) -> Iterator[PhoneFactory]:
    made: list[Phone] = []
    sockdirs: list[Path] = []

    def make(
        server: LabServer | str,
        *,
        settings: Mapping[str, Any] | None = None,
        overrides: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Phone:
        url = server.url if isinstance(server, LabServer) else server
        workdir = tmp_path / f"phone{len(made)}"
        workdir.mkdir()
        sockdir = short_tempdir()
        sockdirs.append(sockdir)
        phone = Phone(
            workdir, sockdir, server_url=url, settings=settings, overrides=overrides, env=env
        )
        made.append(phone)
        return phone

    yield make
    for phone in reversed(made):
        phone.close()
        print(f"===== daemon log ({phone.workdir.name}) =====\n{phone.logtext()}")
        if phone.notify is not None:
            print("===== notifications =====")
            for notice in phone.notify.notices()[-40:]:
                print(f"{notice.time:.3f} {' | '.join(notice.lines)}")
    for sockdir in sockdirs:
        remove_tree(sockdir)


@pytest.fixture
def started(labs: LabFactory, phones: PhoneFactory) -> StartedFactory:
    """A lab with `scenario` and a phone that has finished its start-up interaction."""

    def make(
        scenario: Scenario | str | Mapping[str, Any] = "basic",
        *,
        settings: Mapping[str, Any] | None = None,
        overrides: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> tuple[LabServer, Phone]:
        lab = labs(scenario)
        phone = phones(lab, settings=settings, overrides=overrides, env=env).start()
        assert phone.wait_interaction("start-up") == "completed", phone.logtext()
        return lab, phone

    return make
