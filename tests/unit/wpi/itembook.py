"""A small in-memory `ItemBook` for the tests (the real one lives in provd.store).

It implements the statuses of spec §3.3 [B] for a handful of catalog entries, and
records every committed transaction so tests can assert that nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from provd.wpi.book import WriteOutcome
from provd.wpi.model import Item, ItemStatus

Key = tuple[str, int | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    """One catalog entry: access `rw`, `ro` or `wo`; `indexed` items need an index."""

    access: str = "rw"
    indexed: bool = False
    max_index: int = 99


#: The items the guide's examples use, with the access the guide gives them.
GUIDE_CATALOG: Mapping[str, Spec] = {
    "device-type": Spec(access="ro"),
    "related-device-type": Spec(access="ro"),
    "mac-addr": Spec(access="ro"),
    "e164": Spec(),
    "user-pwd": Spec(access="wo"),
    "sntp-tz-offset": Spec(),
    "auto-daylight-save": Spec(),
    "sntp-addr": Spec(),
    "daylight-save": Spec(),
    "daylight-save-zone-id": Spec(),
    "ldap-server-address": Spec(indexed=True, max_index=3),
    "Canonical-lookup-international-code": Spec(indexed=True, max_index=9),
    "Canonical-lookup-local-code": Spec(indexed=True, max_index=9),
    "wbm-server-certificate": Spec(access="wo"),
    "goto-secure-mode": Spec(),
    "dls-client-certificate": Spec(access="wo"),
    "dls-server-ca": Spec(indexed=True, max_index=9),
    "dls-secure-port": Spec(),
    "secure-mode-data": Spec(access="wo"),
    "max-pin-retries": Spec(),
    "bootstrapping-tan": Spec(access="ro"),
}


class MemoryBook:
    """An `ItemBook` over a dict; `storage_fails` makes every write fail as a whole."""

    def __init__(
        self,
        catalog: Mapping[str, Spec] = GUIDE_CATALOG,
        values: Mapping[Key, str] | None = None,
        *,
        storage_fails: bool = False,
    ) -> None:
        self.catalog = dict(catalog)
        self.values: dict[Key, str] = dict(values or {})
        for name, index in self.values:
            # A stored value makes its name known (rw), as a catalog would.
            self.catalog.setdefault(name, Spec(indexed=index is not None))
        self.storage_fails = storage_fails
        self.commits: list[tuple[Item, ...]] = []
        self.written: list[Item] = []  # every item handed to write(), valid or not

    def read_all(self) -> Sequence[Item]:
        return [
            Item(name=name, value=value, index=index)
            for (name, index), value in self.values.items()
            if self.catalog.get(name, Spec()).access != "wo"
        ]

    def read(self, requested: Sequence[Item]) -> Sequence[Item]:
        answer: list[Item] = []
        for item in requested:
            spec = self.catalog.get(item.name)
            if spec is None:
                answer.append(
                    Item(name=item.name, index=item.index, status=ItemStatus.UNKNOWN_ITEM)
                )
            elif item.status is not None:
                # The codec marked the request malformed (an index that is not a number):
                # answer what it found, as provd.store's book does.
                answer.append(Item(name=item.name, index=item.index, status=item.status))
            elif spec.access == "wo":
                answer.append(Item(name=item.name, index=item.index, status=ItemStatus.FAILED))
            else:
                value = self.values.get(item.key, "")
                answer.append(Item(name=item.name, value=value, index=item.index))
        return answer

    def _verdict(self, item: Item) -> ItemStatus | None:
        spec = self.catalog.get(item.name)
        if spec is None:
            return ItemStatus.UNKNOWN_ITEM
        if item.status is not None:
            return item.status  # marked by the codec
        if spec.access == "ro":
            return ItemStatus.READ_ONLY
        if spec.indexed != (item.index is not None):
            return ItemStatus.INVALID_INDEX
        if item.index is not None and item.index > spec.max_index:
            return ItemStatus.INVALID_INDEX
        return None

    def write(self, items: Sequence[Item]) -> WriteOutcome:
        self.written.extend(items)
        if self.storage_fails:
            failed = tuple(
                Item(name=item.name, index=item.index, status=ItemStatus.FAILED) for item in items
            )
            return WriteOutcome(rejected=failed, failed=True)
        rejected: list[Item] = []
        valid: list[Item] = []
        for item in items:
            verdict = self._verdict(item)
            if verdict is None:
                valid.append(item)
            else:
                rejected.append(Item(name=item.name, index=item.index, status=verdict))
        changed = tuple(item.key for item in valid if self.values.get(item.key) != item.value)
        for item in valid:
            self.values[item.key] = item.value
        if valid:
            self.commits.append(tuple(valid))
        return WriteOutcome(rejected=tuple(rejected), changed=changed)
