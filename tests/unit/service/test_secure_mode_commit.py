"""The order of Secure Mode's commit on the secure store, and a restart after a cut one.

The proof's power-cut suite (issue 8) found that a power cut between discarding the
pending material and writing the state left the phone switching with nothing to switch
with: a PIN prompt for a no-PIN bootstrap, the committed credentials ignored. The state
now goes to disk before the material is dropped; a leftover is dropped at the next start.
"""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path

import pytest

from provd.service.secure_mode import PENDING_NOPIN, SecureMode
from provd.store.secure import SecureStore
from provd.wpi.bootstrap import Phase
from provd.wpi.model import Item
from tests.bootstrap_material import ca_items, make_bootstrap_pki, pem_bundle

NOW = datetime.datetime.now(datetime.UTC)


class PowerCut(Exception):
    """The power went: nothing after this point of the commit happened."""


class CutStore(SecureStore):
    """A real secure store whose `cut_at`-th change (write or removal) never happens."""

    def __init__(self, directory: Path, cut_at: int) -> None:
        super().__init__(directory)
        self.cut_at = cut_at
        self.changes = 0

    def _change(self) -> None:
        self.changes += 1
        if self.changes == self.cut_at:
            raise PowerCut

    def write(self, name: str, data: bytes) -> None:
        self._change()
        super().write(name, data)

    def delete(self, name: str) -> None:
        self._change()
        super().delete(name)


def nopin_items() -> list[Item]:
    boot = make_bootstrap_pki()
    return [
        Item(name="goto-secure-mode", value="nopin"),
        Item(
            name="dls-client-certificate",
            value=pem_bundle(boot.client, chain=[boot.client_ca]),
        ),
        *(
            Item(name="dls-server-ca", value=pem, index=n)
            for n, pem in enumerate(ca_items(boot.server_ca))
        ),
    ]


def switched(store: SecureStore) -> SecureMode:
    mode = SecureMode(store, wall=lambda: NOW)
    assert mode.special_items(nopin_items()) == {}
    mode.after_interaction(secure=False, ok=True, cleanup_reason=None)
    assert mode.state.phase is Phase.SWITCHING
    return mode


def changes_of_a_commit(directory: Path) -> int:
    store = CutStore(directory, cut_at=0)
    mode = switched(store)
    store.changes = 0
    mode.after_interaction(secure=True, ok=True, cleanup_reason=None)
    return store.changes


@pytest.mark.parametrize("cut_at", range(1, 9))
def test_a_power_cut_at_any_step_of_the_commit_leaves_a_phone_that_can_go_on(
    tmp_path: Path, cut_at: int
) -> None:
    assert changes_of_a_commit(tmp_path / "count") < 9  # every step of it is cut once
    store = CutStore(tmp_path / "secure", cut_at=0)
    mode = switched(store)
    store.changes, store.cut_at = 0, cut_at
    with contextlib.suppress(PowerCut):
        mode.after_interaction(secure=True, ok=True, cleanup_reason=None)

    again = SecureMode(SecureStore(tmp_path / "secure"), wall=lambda: NOW)

    # Either committed, with its credentials, or still switching with the material to
    # switch with: never a PIN prompt for a no-PIN bootstrap (the power-cut finding).
    assert not again.prompt_due
    if again.state.phase is Phase.SECURE:
        assert again.committed is not None
    else:
        assert again.state.phase is Phase.SWITCHING
        assert again._switch_credentials is not None


def test_a_restart_after_a_commit_cut_short_keeps_secure_mode_and_drops_the_leftover(
    tmp_path: Path,
) -> None:
    store = SecureStore(tmp_path / "secure")
    mode = switched(store)
    pending = store.read(PENDING_NOPIN)
    assert pending is not None
    mode.after_interaction(secure=True, ok=True, cleanup_reason=None)
    store.write(PENDING_NOPIN, pending)  # what a power cut before the discard leaves

    again = SecureMode(SecureStore(tmp_path / "secure"), wall=lambda: NOW)

    assert again.state.phase is Phase.SECURE
    assert again.committed is not None
    assert not again.prompt_due
    assert store.read(PENDING_NOPIN) is None
