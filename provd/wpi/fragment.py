"""Splitting the phone's item lists into fragments (spec §5 [G p.69-70]).

A reply whose document would exceed `max-message` bytes is split into
fragments, each under the limit. All items of one name (all its indices) stay
in one fragment [B]; a single item larger than the limit goes alone in its
fragment. A group of one name that cannot fit in one fragment even alone is
split at item boundaries, starting on a fresh fragment, because refusing to
answer at all would serve the server worse.
"""

from __future__ import annotations

from collections.abc import Sequence

from provd.wpi.codec import envelope_size, item_size
from provd.wpi.model import Item, WorkpointMessage

#: [G p.69] messages are limited to 50 kB.
DEFAULT_MAX_MESSAGE = 50_000


def group_by_name(items: Sequence[Item]) -> list[list[Item]]:
    """Items grouped by name, groups in order of first appearance."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.name, []).append(item)
    return list(groups.values())


def split_items(
    template: WorkpointMessage, items: Sequence[Item], max_message: int = DEFAULT_MAX_MESSAGE
) -> list[tuple[Item, ...]]:
    """Item lists, one per fragment, so that each `template` document carrying
    one of them stays within `max_message` bytes (when any single item allows)."""
    budget = max_message - envelope_size(template)
    fragments: list[list[Item]] = []
    current: list[Item] = []
    used = 0
    for group in group_by_name(items):
        sizes = [item_size(item) for item in group]
        size = sum(sizes)
        if size <= budget:
            if used + size > budget and current:
                fragments.append(current)
                current, used = [], 0
            current.extend(group)
            used += size
            continue
        # The group cannot fit in one fragment: it starts a fresh one and is
        # split at item boundaries.
        if current:
            fragments.append(current)
            current, used = [], 0
        for item, item_bytes in zip(group, sizes, strict=True):
            if used + item_bytes > budget and current:
                fragments.append(current)
                current, used = [], 0
            current.append(item)
            used += item_bytes
    if current or not fragments:
        fragments.append(current)
    return [tuple(fragment) for fragment in fragments]
