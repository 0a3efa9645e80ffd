"""Deployment and restart through the real daemon: the rig every test here starts from.

`rig` gives a lab PKI shared by the lab server and both file servers (FTP and HTTPS,
`provd.lab.fileserver`, serving one directory), recorders for the apply hooks, the
installer and the reboot command, and a device description. `rig.start(scenario)`
starts a lab server and a phone (the real daemon process, `tests.integration.daemon`)
wired to all of it and waits for its start-up interaction:

- the phone trusts the HTTPS file server through the *system* trust store
  (`SSL_CERT_FILE` names the lab CA): spec §6.1 [B], another host than the
  provisioning server verifies against the system store;
- `hooks.installer-command` is the shipped `libexec/provd-install-step`, with
  `PROVD_INSTALLER` naming a recording installer (docs/privileged-steps.md);
- `device.description-file` is `rig.description` and no `device.software-version`
  setting hides it, so `software-version` comes from the description (spec §6.2).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.lab.pki import LabPKI
from provd.service.device import write_description
from tests.fileservers import serving
from tests.integration.daemon.conftest import labs, phones  # noqa: F401 - fixtures used here
from tests.integration.daemon.harness import LabFactory, PhoneFactory
from tests.integration.deploy.deployment import OLD_VERSION, Rig


@pytest.fixture(scope="session")
def lab_pki() -> LabPKI:
    return LabPKI.create()


@pytest.fixture
def rig(
    tmp_path: Path,
    lab_pki: LabPKI,
    labs: LabFactory,  # noqa: F811 - the fixture imported above
    phones: PhoneFactory,  # noqa: F811
) -> Iterator[Rig]:
    records = tmp_path / "records"
    records.mkdir()
    ca_file = tmp_path / "lab-ca.pem"
    ca_file.write_bytes(lab_pki.ca.cert_pem)
    description = tmp_path / "device.toml"
    write_description(description, {"software-version": OLD_VERSION, "software-type": "SIP"})
    with serving(tmp_path / "served", pki=lab_pki) as servers:
        yield Rig(
            tmp=tmp_path,
            pki=lab_pki,
            servers=servers,
            records=records,
            ca_file=ca_file,
            description=description,
            labs=labs,
            phones=phones,
        )
