"""The order of Secure Mode's commit on the secure store, and a restart after a cut one.

The proof's power-cut suite (issue 8) found that a power cut between discarding the
pending material and writing the state left the phone switching with nothing to switch
with: a PIN prompt for a no-PIN bootstrap, the committed credentials ignored. The state
now goes to disk before the material is dropped; a leftover is dropped at the next start.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from provd.service.secure_mode import PENDING_NOPIN, SecureMode
from provd.store.secure import SecureStore
from provd.wpi.bootstrap import Phase
from provd.wpi.model import Item
from tests.bootstrap_material import ca_items, make_bootstrap_pki, pem_bundle

NOW = datetime.datetime.now(datetime.UTC)


class RecordingStore(SecureStore):
    """A real secure store that also remembers the order of its writes and removals."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.operations: list[str] = []

    def write(self, name: str, data: bytes) -> None:
        super().write(name, data)
        self.operations.append(f"write {name}")

    def delete(self, name: str) -> None:
        super().delete(name)
        self.operations.append(f"delete {name}")


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


def test_the_committed_state_is_written_before_the_pending_material_is_dropped(
    tmp_path: Path,
) -> None:
    store = RecordingStore(tmp_path / "secure")
    mode = switched(store)
    store.operations.clear()

    mode.after_interaction(secure=True, ok=True, cleanup_reason=None)

    assert mode.state.phase is Phase.SECURE
    ops = store.operations
    assert ops.index("write bootstrap-state.json") < ops.index(f"delete {PENDING_NOPIN}")


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
