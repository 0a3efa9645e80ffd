"""Child process of test_power_cut: commits WriteItems-like transactions until killed.

Usage: powercut_child.py STATE_DIR FIRST_GENERATION KEYS_JSON PAD

Opens the item store, writes `R <recovered_from>` once it is open, then for
g = FIRST_GENERATION, FIRST_GENERATION+1, ... writes `B g` (begin), commits every
key of KEYS_JSON (a list of [name, index-or-null]) with the value
`generation-<g>-` + PAD times "x" in one transaction (as a local change, so the
queue and the flag are part of it), and writes `A g` (after). Lines go straight
to fd 1 with os.write, so a line is in the pipe before the next step starts.
The test owns the item layout; this script imports nothing of the tests.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the tree, for `-S` runs

from provd.store.items import Change, ItemStore


def main() -> None:
    state_dir, generation = Path(sys.argv[1]), int(sys.argv[2])
    keys = [
        (str(name), None if index is None else int(index))
        for name, index in json.loads(sys.argv[3])
    ]
    pad = "x" * int(sys.argv[4])
    store = ItemStore.open(state_dir)
    os.write(1, f"R {store.recovered_from}\n".encode())
    while True:
        os.write(1, f"B {generation}\n".encode())
        value = f"generation-{generation}-{pad}"
        store.commit([Change(name, index, value) for name, index in keys], local=True)
        os.write(1, f"A {generation}\n".encode())
        generation += 1


if __name__ == "__main__":
    main()
