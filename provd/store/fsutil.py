"""Atomic, durable file operations on flash.

The pattern every durable write in provd follows (STYLE: "writes to flash are
atomic and durable"): write a temporary file in the *same* directory, fsync
it, rename it over the target, then fsync the directory so the rename itself
survives a power cut. After a crash a reader sees the old file or the new
one, never a mix; a leftover temporary file is recognisable by
`is_temporary` and can be removed by whoever owns the directory.

These helpers raise `OSError`; the modules that use them translate it into
their own error type at their border (`StoreError` in `provd.store`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: Temporary files are dotfiles ending in this suffix, so they never collide with a
#: target name that is a single non-dot component.
TEMP_SUFFIX = ".tmp"


def fsync_directory(directory: Path) -> None:
    """Make renames, creations and removals in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_temporary(name: str) -> bool:
    """Whether `name` is a temporary file left by `atomic_write` (e.g. after a crash)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically and durably, the new file having `mode`.

    The temporary file is created with `mode` already set (never briefly more
    open than asked), written completely, fsynced, renamed over `path`, and the
    directory is fsynced. On any failure the temporary file is removed and the
    old `path` is untouched.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask and not applied
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(directory)


def remove_durably(path: Path) -> bool:
    """Remove `path` and make the removal durable; False if it did not exist."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_directory(path.parent)
    return True
