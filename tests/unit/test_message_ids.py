"""Every journal MESSAGE_ID provd can log is explained in systemd/provd.catalog, and only those.

Read from the source with `ast` (nothing is imported but `MessageId`): the ids are the 32-hex
string literals under provd/ (the service's `MessageId` enum and the adapters' `MSG_*`
constants, which may not import the service), the fields an id's log calls set are the
keywords of its `log_event()` calls and the keys of its `extra={"MESSAGE_ID": ...}` dicts.
A catalog entry may cite (`@FIELD@`) only a field that every log call of its id sets:
`journalctl -x` prints a missing field's bare name.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provd.service.journal import MessageId
from provd.store.items import MSG_STORE_RECOVERED

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "systemd" / "provd.catalog"
SOURCES = ROOT / "provd"

_HEX_ID = re.compile(r"[0-9a-f]{32}")
_ENTRY = re.compile(r"(?m)^-- ([0-9a-f]{32})\n")
_CITED = re.compile(r"@([A-Z0-9_]+)@")
# Fields every log_event() call sets, whatever its keywords.
_ALWAYS = frozenset({"MESSAGE_ID", "PROVD_EVENT", "MESSAGE"})


@dataclass
class LogCall:
    """One log call with a MESSAGE_ID: where it is and the journal fields it sets."""

    where: str
    fields: frozenset[str]


@dataclass
class Source:
    """What the code says about MESSAGE_IDs."""

    #: id → where its literal is (path:line); an id spelled in two places is listed twice.
    literals: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: id → its log calls.
    calls: dict[str, list[LogCall]] = field(default_factory=lambda: defaultdict(list))
    #: log calls whose MESSAGE_ID the scan could not resolve to a literal.
    unresolved: list[str] = field(default_factory=list)


def _python_files() -> Iterator[Path]:
    yield from sorted(SOURCES.rglob("*.py"))


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "<32 hex>"` constants."""
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and _HEX_ID.fullmatch(node.value.value)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _enum_ids(expr: ast.expr) -> list[str]:
    """`MessageId.X` (or `a if c else b` of them) → their values."""
    if isinstance(expr, ast.IfExp):
        return _enum_ids(expr.body) + _enum_ids(expr.orelse)
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id == "MessageId"
        and expr.attr in MessageId.__members__
    ):
        return [MessageId[expr.attr].value]
    return []


def scan(files: Iterator[Path] | None = None, root: Path = ROOT) -> Source:
    """Every MESSAGE_ID literal and log call in `files` (default: every .py under provd/)."""
    source = Source()
    imported: dict[str, str] = {}  # MSG_* names of all modules (tests import them across)
    trees = []
    for path in files if files is not None else _python_files():
        tree = ast.parse(path.read_text(), str(path))
        trees.append((path.relative_to(root), tree))
        imported.update(_constants(tree))
    for rel, tree in trees:
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _HEX_ID.fullmatch(node.value)
            ):
                source.literals[node.value].append(where)
            elif isinstance(node, ast.Call) and _called(node) == "log_event":
                ids = _enum_ids(node.args[1]) if len(node.args) > 1 else []
                if not ids:
                    source.unresolved.append(where)
                fields = {_field(k.arg) for k in node.keywords if k.arg not in _NOT_FIELDS}
                if any(k.arg == "items" for k in node.keywords):
                    fields.add("PROVD_ITEMS")
                for id_ in ids:
                    source.calls[id_].append(LogCall(where, frozenset(fields | _ALWAYS)))
            elif isinstance(node, ast.Dict):
                keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
                if "MESSAGE_ID" not in keys:
                    continue
                value = node.values[keys.index("MESSAGE_ID")]
                if ast.unparse(value) == "message_id.value":
                    continue  # log_event() itself: its callers are counted above
                id_ = None
                if isinstance(value, ast.Name):
                    id_ = imported.get(value.id)
                elif isinstance(value, ast.Constant) and isinstance(value.value, str):
                    id_ = value.value
                if id_ is None:
                    source.unresolved.append(where)
                    continue
                fields = {str(k) for k in keys} | {"MESSAGE"}
                source.calls[id_].append(LogCall(where, frozenset(fields)))
    return source


_NOT_FIELDS = {"level", "exc_info", "items", None}


def _called(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _field(name: str | None) -> str:
    upper = (name or "").upper()
    return upper if upper.startswith("PROVD_") else f"PROVD_{upper}"


def parse_catalog(text: str) -> dict[str, str]:
    """`-- <id>` → entry text. An id listed twice raises."""
    parts = _ENTRY.split(text)
    entries: dict[str, str] = {}
    for id_, body in zip(parts[1::2], parts[2::2], strict=True):
        if id_ in entries:
            raise ValueError(f"catalog lists {id_} twice")
        entries[id_] = body
    return entries


def mismatches(ids: set[str], catalog: dict[str, str]) -> list[str]:
    """What is wrong between the ids provd logs and the catalog's entries, both ways."""
    problems = [f"{id_} is logged but has no catalog entry" for id_ in sorted(ids - set(catalog))]
    problems += [f"catalog entry {id_} is never logged" for id_ in sorted(set(catalog) - ids)]
    return problems


def uncited(source: Source, catalog: dict[str, str]) -> list[str]:
    """Fields an entry cites that some log call of its id does not set."""
    problems = []
    for id_, body in catalog.items():
        for cited in sorted(set(_CITED.findall(body))):
            for call in source.calls.get(id_, []):
                if cited not in call.fields:
                    problems.append(f"{id_} cites @{cited}@, not set by {call.where}")
    return problems


@pytest.fixture(scope="module")
def source() -> Source:
    return scan()


@pytest.fixture(scope="module")
def catalog() -> dict[str, str]:
    return parse_catalog(CATALOG.read_text())


def test_every_id_provd_logs_has_a_catalog_entry_and_every_entry_is_logged(
    source: Source, catalog: dict[str, str]
) -> None:
    ids = set(source.literals) | {member.value for member in MessageId}
    assert mismatches(ids, catalog) == []
    # Every id the code spells is logged somewhere (an unused id is a promise nobody keeps).
    assert sorted(set(source.literals) - set(source.calls)) == []
    assert source.unresolved == []


def test_each_id_is_spelled_once_and_each_enum_member_is_used(source: Source) -> None:
    # One event, one id: an id spelled twice is either one event with one id in two layers
    # (allowed only as listed here) or two events sharing an id by accident.
    shared = {MessageId.STORE_RECOVERED.value}  # service and provd.store.items log it
    twice = {id_: where for id_, where in source.literals.items() if len(where) > 1}
    assert set(twice) <= shared, twice
    for member in MessageId:
        assert source.calls.get(member.value), f"MessageId.{member.name} is never logged"


def test_store_recovered_is_one_id_in_both_layers() -> None:
    assert MessageId.STORE_RECOVERED.value == MSG_STORE_RECOVERED


def test_ids_are_unique_uuid4(source: Source) -> None:
    for id_ in source.literals:
        assert uuid.UUID(id_).version == 4, id_


def test_catalog_cites_only_fields_every_log_call_of_the_entry_sets(
    source: Source, catalog: dict[str, str]
) -> None:
    assert uncited(source, catalog) == []


def test_adapter_log_calls_name_their_event(source: Source) -> None:
    # log_event() adds PROVD_EVENT; the adapters' extra= dicts say it themselves, so
    # `journalctl PROVD_EVENT=...` finds every kind of event.
    missing = [
        call.where
        for calls in source.calls.values()
        for call in calls
        if "PROVD_EVENT" not in call.fields
    ]
    assert missing == []


def test_every_catalog_entry_says_what_happened(catalog: dict[str, str]) -> None:
    for id_, entry in catalog.items():
        headers, _, body = entry.partition("\n\n")
        fields = dict(line.split(": ", 1) for line in headers.splitlines())
        assert set(fields) == {"Subject", "Defined-By", "Support"}, id_
        assert fields["Defined-By"] == "provd", id_
        assert len(body.split()) >= 15, id_  # an explanation, not a placeholder


# --- the checks can fail ------------------------------------------------------------------------


def test_a_logged_id_missing_from_the_catalog_is_found(catalog: dict[str, str]) -> None:
    ids = set(catalog)  # as if all was well, then one entry goes missing
    dropped = MessageId.STARTED
    text = CATALOG.read_text()
    start = text.index(f"-- {dropped.value}\n")
    end = text.find("\n-- ", start + 1)
    shorter = parse_catalog(text[:start] + (text[end + 1 :] if end >= 0 else ""))
    assert mismatches(ids, shorter) == [f"{dropped.value} is logged but has no catalog entry"]
    extra = "0" * 31 + "1"
    longer = dict(catalog, **{extra: "Subject: x\n"})
    assert mismatches(ids, longer) == [f"catalog entry {extra} is never logged"]


def test_a_new_constant_and_its_log_call_are_found(tmp_path: Path) -> None:
    module = tmp_path / "provd" / "store" / "new.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        'MSG_NEW = "0123456789abcdef4123456789abcdef"\n'
        'log.info("x", extra={"MESSAGE_ID": MSG_NEW, "PROVD_EVENT": "new", "PROVD_A": 1})\n'
        'log_event(log, MessageId.STARTED, "y", server=None)\n'
    )
    found = scan(iter([module]), tmp_path)
    assert set(found.literals) == {"0123456789abcdef4123456789abcdef"}
    assert mismatches(set(found.literals), {}) == [
        "0123456789abcdef4123456789abcdef is logged but has no catalog entry"
    ]
    catalog = {
        "0123456789abcdef4123456789abcdef": "Subject: x\n\n@PROVD_A@ @PROVD_B@\n",
        MessageId.STARTED.value: "Subject: y\n\n@PROVD_SERVER@ @PROVD_REASON@\n",
    }
    assert uncited(found, catalog) == [
        "0123456789abcdef4123456789abcdef cites @PROVD_B@, not set by provd/store/new.py:2",
        f"{MessageId.STARTED.value} cites @PROVD_REASON@, not set by provd/store/new.py:3",
    ]


def test_a_catalog_listing_an_id_twice_is_refused() -> None:
    entry = "-- 0123456789abcdef4123456789abcdef\nSubject: x\n\n"
    with pytest.raises(ValueError, match="twice"):
        parse_catalog(entry + entry)


def test_journalctl_accepts_the_catalog(tmp_path: Path, catalog: dict[str, str]) -> None:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        pytest.skip("journalctl is not installed")
    catalog_dir = tmp_path / "usr" / "lib" / "systemd" / "catalog"
    catalog_dir.mkdir(parents=True)
    shutil.copy(CATALOG, catalog_dir / "provd.catalog")
    subprocess.run([journalctl, f"--root={tmp_path}", "--update-catalog"], check=True)
    listed = subprocess.run(
        [journalctl, f"--root={tmp_path}", "--list-catalog"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    ids = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert ids == set(catalog)
