"""FileStore on real files in tmp dirs: safe names, limits, quota, atomic commit, the index."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.store.files import (
    INDEX_NAME,
    MAX_FAILED_ENTRIES,
    FileRefused,
    FileStore,
    check_name,
)

WHEN = datetime.datetime(2008, 6, 10, 15, 35, 52)


class Clock:
    def __init__(self, now: datetime.datetime = WHEN) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now


def store(root: Path, *, quota: int = 1 << 20, clock: Clock | None = None) -> FileStore:
    return FileStore(
        root,
        limits={"PIC": 300 * 1024},
        quota=quota,
        default_limit=512 * 1024,
        clock=clock or Clock(),
    )


def deploy(files: FileStore, type_: str, name: str, data: bytes) -> None:
    with files.begin(type_, name) as staging:
        staging.file.write(data)
        staging.commit()


def everything_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "files"


# --------------------------------------------------------------------------- names and types


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "../x", "/etc/passwd", "a\x00b", "line\nbreak", ".hidden", "x" * 256],
)
def test_unsafe_name_is_refused_before_anything_is_written(
    root: Path, tmp_path: Path, name: str
) -> None:
    files = store(root)
    before = everything_under(tmp_path)

    with pytest.raises(FileRefused) as info:
        files.begin("RINGTONE", name)

    assert info.value.kind == "bad-name"
    assert everything_under(tmp_path) == before


@pytest.mark.parametrize(
    "name",
    ["Logo for OpenStage 80.png", "ringtone-phone.wav", "Klingelton-ä.wav", "a..b", "é" * 127],
)
def test_ordinary_names_are_accepted(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize("type_", ["XYZ", "../PIC", "pic", "", "APP"])
def test_type_outside_the_whitelist_is_refused(root: Path, type_: str) -> None:
    with pytest.raises(FileRefused) as info:
        store(root).begin(type_, "a.png")
    assert info.value.kind == "bad-type"


def test_more_types_can_be_configured(root: Path) -> None:
    files = FileStore(root, quota=1000, types=("LOGO", "DONGLE"))
    deploy(files, "DONGLE", "key.bin", b"k")
    assert (root / "DONGLE" / "key.bin").read_bytes() == b"k"


# --------------------------------------------------------------------------- atomic commit


def test_file_is_visible_under_its_name_only_after_commit(root: Path) -> None:
    files = store(root)
    with files.begin("RINGTONE", "ring.wav") as staging:
        staging.file.write(b"RIFF....")
        assert not (root / "RINGTONE" / "ring.wav").exists()
        assert files.list() == []
        (temp,) = (root / "RINGTONE").iterdir()
        assert temp.name.startswith(".")
        entry = staging.commit()

    assert (root / "RINGTONE" / "ring.wav").read_bytes() == b"RIFF...."
    assert [p.name for p in (root / "RINGTONE").iterdir()] == ["ring.wav"]
    assert (entry.date, entry.time, entry.status) == ("10:06:2008", "15:35:52", "ok")
    assert oct((root / "RINGTONE" / "ring.wav").stat().st_mode & 0o777) == oct(0o644)


def test_abort_leaves_the_previous_file_untouched_and_removes_the_temporary(root: Path) -> None:
    files = store(root)
    deploy(files, "LOGO", "logo.png", b"old logo")

    with files.begin("LOGO", "logo.png") as staging:
        staging.file.write(b"half a new lo")
        staging.abort()

    assert (root / "LOGO" / "logo.png").read_bytes() == b"old logo"
    assert [p.name for p in (root / "LOGO").iterdir()] == ["logo.png"]


def test_leaving_the_block_without_commit_aborts(root: Path) -> None:
    files = store(root)
    deploy(files, "LOGO", "logo.png", b"old logo")

    with pytest.raises(RuntimeError), files.begin("LOGO", "logo.png") as staging:
        staging.file.write(b"new")
        raise RuntimeError("download cut")

    assert (root / "LOGO" / "logo.png").read_bytes() == b"old logo"
    assert [p.name for p in (root / "LOGO").iterdir()] == ["logo.png"]


def test_commit_replaces_the_previous_file_and_its_date(root: Path) -> None:
    clock = Clock()
    files = store(root, clock=clock)
    deploy(files, "LOGO", "logo.png", b"old")
    clock.now = datetime.datetime(2024, 2, 29, 7, 8, 9)

    deploy(files, "LOGO", "logo.png", b"new")

    assert (root / "LOGO" / "logo.png").read_bytes() == b"new"
    (entry,) = files.list()
    assert (entry.date, entry.time) == ("29:02:2024", "07:08:09")


# --------------------------------------------------------------------------- limits and quota


def test_picture_over_300_kb_announced_is_too_large(root: Path) -> None:
    with pytest.raises(FileRefused) as info:
        store(root).begin("PIC", "p.jpg", announced_size=300 * 1024 + 1)
    assert info.value.kind == "too-large"


def test_staging_allows_the_type_limit_and_commit_refuses_more(root: Path) -> None:
    files = store(root)
    deploy(files, "PIC", "p.jpg", b"old picture")

    with files.begin("PIC", "p.jpg") as staging:
        assert staging.max_bytes == 300 * 1024
        staging.file.write(b"x" * (300 * 1024 + 1))
        with pytest.raises(FileRefused) as info:
            staging.commit()

    assert info.value.kind == "too-large"
    assert (root / "PIC" / "p.jpg").read_bytes() == b"old picture"
    assert [p.name for p in (root / "PIC").iterdir()] == ["p.jpg"]


def test_quota_counts_existing_files_of_every_type(root: Path) -> None:
    files = store(root, quota=1000)
    deploy(files, "LOGO", "a.png", b"x" * 600)

    with files.begin("RINGTONE", "r.wav") as staging:
        assert staging.max_bytes == 400
    with pytest.raises(FileRefused) as info:
        files.begin("RINGTONE", "r.wav", announced_size=401)
    assert info.value.kind == "quota"


def test_the_file_being_replaced_does_not_count_against_the_quota(root: Path) -> None:
    files = store(root, quota=1000)
    deploy(files, "LOGO", "a.png", b"x" * 900)

    with files.begin("LOGO", "a.png", announced_size=1000) as staging:
        assert staging.max_bytes == 1000


def test_full_quota_refuses_any_new_file(root: Path) -> None:
    files = store(root, quota=100)
    deploy(files, "LOGO", "a.png", b"x" * 100)
    with pytest.raises(FileRefused) as info:
        files.begin("LOGO", "b.png")
    assert info.value.kind == "quota"


# --------------------------------------------------------------------------- staying inside root


def test_type_directory_replaced_by_a_symlink_is_not_followed(root: Path, tmp_path: Path) -> None:
    files = store(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "LOGO").symlink_to(outside)

    with pytest.raises(FileRefused) as info:
        files.begin("LOGO", "logo.png")

    assert info.value.kind == "storage"
    assert list(outside.iterdir()) == []


def test_delete_removes_the_file_and_its_entry(root: Path) -> None:
    files = store(root)
    deploy(files, "LOGO", "a.png", b"a")
    deploy(files, "LOGO", "b.png", b"b")

    assert files.delete("LOGO", "a.png") is True
    assert files.delete("LOGO", "a.png") is False

    assert [e.name for e in files.list()] == ["b.png"]
    assert not (root / "LOGO" / "a.png").exists()


def test_delete_with_an_unsafe_name_touches_nothing(root: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    files = store(root)
    with pytest.raises(FileRefused):
        files.delete("LOGO", "../../victim")
    assert victim.read_text() == "keep"


# --------------------------------------------------------------------------- the index


def test_index_survives_a_restart(root: Path) -> None:
    files = store(root)
    deploy(files, "LOGO", "a.png", b"a")
    files.record_failure("RINGTONE", "r.wav")

    again = store(root, clock=Clock(datetime.datetime(2030, 1, 1)))
    listed = [(e.type, e.name, e.date, e.time, e.status, e.present) for e in again.list()]

    assert listed == [
        ("LOGO", "a.png", "10:06:2008", "15:35:52", "ok", True),
        ("RINGTONE", "r.wav", "10:06:2008", "15:35:52", "failed", False),
    ]


def test_failed_redeployment_is_listed_failed_and_keeps_the_file(root: Path) -> None:
    files = store(root)
    deploy(files, "LOGO", "a.png", b"a")

    files.record_failure("LOGO", "a.png")

    (entry,) = files.list()
    assert (entry.status, entry.present) == ("failed", True)
    assert (root / "LOGO" / "a.png").read_bytes() == b"a"


def test_file_renamed_but_not_indexed_before_a_power_cut_is_listed(root: Path) -> None:
    files = store(root)
    (root / "MOH").mkdir()
    (root / "MOH" / "hold.wav").write_bytes(b"music")
    stamp = datetime.datetime(2021, 3, 4, 5, 6, 7).timestamp()
    os.utime(root / "MOH" / "hold.wav", (stamp, stamp))

    (entry,) = files.list()
    assert (entry.type, entry.name, entry.date, entry.time, entry.status) == (
        "MOH",
        "hold.wav",
        "04:03:2021",
        "05:06:07",
        "ok",
    )


def test_a_replacement_renamed_before_a_power_cut_does_not_take_the_old_entry(
    root: Path,
) -> None:
    # The power-cut suite's finding: the previous deployment's entry (here a failed
    # attempt dated 2008) must not describe the new file renamed over it.
    files = store(root)
    deploy(files, "LOGO", "a.png", b"old")
    files.record_failure("LOGO", "a.png")
    # What Staging.commit leaves if the power goes after the rename, before the index:
    # a new file, dated by the store's clock, under the old name.
    new = root / "LOGO" / ".deploy-x.tmp"
    new.write_bytes(b"new")
    stamp = datetime.datetime(2021, 3, 4, 5, 6, 7).timestamp()
    os.utime(new, (stamp, stamp))
    new.replace(root / "LOGO" / "a.png")

    (entry,) = store(root).list()
    assert (entry.date, entry.time, entry.status, entry.present) == (
        "04:03:2021",
        "05:06:07",
        "ok",
        True,
    )


def test_a_deployed_file_is_dated_by_the_store_clock_on_disk_too(root: Path) -> None:
    clock = Clock(datetime.datetime(2019, 1, 2, 3, 4, 5))
    deploy(store(root, clock=clock), "MOH", "hold.wav", b"music")

    (root / INDEX_NAME).unlink()  # as if the index had never been written

    (entry,) = store(root).list()
    assert (entry.date, entry.time) == ("02:01:2019", "03:04:05")


def test_an_index_write_cut_short_is_cleaned_up_when_the_store_opens(root: Path) -> None:
    files = store(root)
    deploy(files, "LOGO", "a.png", b"a")
    leftover = root / f".{INDEX_NAME}.4242.tmp"  # atomic_write's temporary
    leftover.write_text("{half")

    store(root)

    assert not leftover.exists()
    assert (root / INDEX_NAME).exists()


def test_unreadable_index_is_rebuilt_from_the_files(root: Path) -> None:
    files = store(root)
    deploy(files, "LOGO", "a.png", b"a")
    (root / INDEX_NAME).write_text("{not json")

    assert [(e.name, e.status) for e in store(root).list()] == [("a.png", "ok")]


def test_unfinished_downloads_are_removed_when_the_store_opens(root: Path) -> None:
    files = store(root)
    staging = files.begin("LOGO", "a.png")
    staging.file.write(b"half")
    staging.file.flush()  # the daemon dies here

    store(root)

    assert list((root / "LOGO").iterdir()) == []


def test_failed_entries_without_a_file_are_capped(root: Path) -> None:
    files = store(root)
    for n in range(MAX_FAILED_ENTRIES + 5):
        files.record_failure("LOGO", f"f{n:03}.png")

    names = [e.name for e in store(root).list()]
    assert len(names) == MAX_FAILED_ENTRIES
    assert "f000.png" not in names and f"f{MAX_FAILED_ENTRIES + 4:03}.png" in names


def test_wipe_removes_every_file_and_the_index(root: Path) -> None:
    files = store(root)
    deploy(files, "LOGO", "a.png", b"a")
    deploy(files, "MOH", "m.wav", b"m")
    files.record_failure("PIC", "p.jpg")

    files.wipe()

    assert files.list() == []
    assert store(root).list() == []
    assert not (root / INDEX_NAME).exists()
