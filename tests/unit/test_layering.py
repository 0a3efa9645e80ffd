"""The dependency rule of STYLE.md, read from the source with `ast` (nothing is imported).

- `provd/wpi/` is pure: no sockets, files, threads, clock, randomness or logging, and no other
  provd package. Callers pass those in.
- The adapters (`store`, `transport`, `ui`, `hw`) may use `provd.wpi` but not each other nor
  `provd.service`: only `service/` wires them together.
- `provd/lab/` is test infrastructure: it may use `wpi`, `store` and `transport`, never `service`.

Relative imports count. Every finding is reported as `path:line`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What `provd/wpi/` must not touch. A dotted name is forbidden when it equals a key or lies
# below one ("os" covers `os.path` and `from os import urandom`). The check covers imports and
# references through imported names (`datetime.now`, also when passed around uncalled);
# `builtins.*` entries are calls of the builtin.
WPI_FORBIDDEN: dict[str, str] = {
    # sockets and the network
    "socket": "sockets",
    "ssl": "sockets (TLS)",
    "OpenSSL": "sockets (TLS)",
    "http": "network (HTTP)",
    "urllib.request": "network (HTTP)",
    "ftplib": "network (FTP)",
    "selectors": "sockets (event loop)",
    "asyncio": "sockets (event loop)",
    # threads and processes
    "threading": "threads",
    "_thread": "threads",
    "multiprocessing": "processes",
    "concurrent": "threads",
    "subprocess": "processes",
    "signal": "processes (signals)",
    # files
    "os": "files and the environment",
    "pathlib": "files",
    "io": "files",
    "shutil": "files",
    "tempfile": "files",
    "glob": "files",
    "fcntl": "files",
    "mmap": "files",
    "sqlite3": "files (database)",
    "builtins.open": "files",
    "builtins.print": "files (stdout)",
    "builtins.input": "files (stdin)",
    # the clock (pure date arithmetic on values passed in is fine)
    "time": "the clock",
    "datetime.datetime.now": "the clock",
    "datetime.datetime.utcnow": "the clock",
    "datetime.datetime.today": "the clock",
    "datetime.date.today": "the clock",
    # randomness
    "random": "randomness",
    "secrets": "randomness",
    "uuid.uuid1": "randomness and the clock",
    "uuid.uuid4": "randomness",
    # logging and the system
    "logging": "logging",
    "syslog": "logging",
    "systemd": "logging (journal)",
    "pyudev": "devices (udev)",
    # dynamic imports would hide everything above
    "importlib": "dynamic imports",
    "builtins.__import__": "dynamic imports",
}

# Which other provd packages a layer may import (itself always allowed). Layers not listed
# (`service`, `cli`, the package root) do the wiring and may import anything.
LAYER_MAY_IMPORT: dict[str, frozenset[str]] = {
    "wpi": frozenset(),
    "store": frozenset({"wpi"}),
    "transport": frozenset({"wpi"}),
    "ui": frozenset({"wpi"}),
    "hw": frozenset({"wpi"}),
    "lab": frozenset({"wpi", "store", "transport"}),
}
ADAPTERS = ("store", "transport", "ui", "hw")

_BUILTIN_CALLS = {key.removeprefix("builtins.") for key in WPI_FORBIDDEN if "builtins." in key}


@dataclass(frozen=True, slots=True)
class Violation:
    """One forbidden dependency, at `path:line`."""

    path: str
    line: int
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name} ({self.why})"


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "provd" else None


def _why_forbidden(dotted: str, layer: str) -> str | None:
    if layer == "wpi":
        for key, why in WPI_FORBIDDEN.items():
            if dotted == key or dotted.startswith(key + "."):
                return why
    allowed = LAYER_MAY_IMPORT.get(layer)
    parts = dotted.split(".")
    if allowed is not None and parts[0] == "provd" and len(parts) > 1:
        target = parts[1]
        # `from provd import __version__` names the root package, not another layer.
        if target != layer and target not in allowed and not target.startswith("__"):
            return f"provd.{layer} may not depend on provd.{target}"
    return None


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an import-from names, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: max(len(package) - (node.level - 1), 0)]
    if node.module:
        base += node.module.split(".")
    return ".".join(base)


def _dotted(node: ast.expr) -> tuple[str, list[str]] | None:
    """`a.b.c` as ("a", ["b", "c"]); None for anything not rooted in a plain name."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.insert(0, node.attr)
        node = node.value
    return (node.id, attrs) if isinstance(node, ast.Name) else None


def _bound_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


def _is_main_guard(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(test := node.test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(main := test.comparators[0], ast.Constant)
        and main.value == "__main__"
    )


def check_source(
    source: str, module: str, *, is_package: bool = False, path: str = "<string>"
) -> list[Violation]:
    """Every forbidden dependency of `source`, the text of the provd module named `module`."""
    layer = _layer_of(module)
    if layer is None:
        return []
    tree = ast.parse(source, filename=path)
    found: dict[tuple[int, str], Violation] = {}

    def report(line: int, dotted: str) -> None:
        why = _why_forbidden(dotted, layer)
        if why is not None:
            found.setdefault((line, dotted), Violation(path, line, dotted, why))

    # A module's `if __name__ == "__main__":` block runs only as a script (a generator run by
    # hand, say), never on import, so what it does is not the module's dependency.
    script = {id(n) for top in tree.body if _is_main_guard(top) for n in ast.walk(top)}
    nodes = [node for node in ast.walk(tree) if id(node) not in script]

    imported: dict[str, str] = {}  # local name -> dotted name it stands for
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                report(node.lineno, alias.name)
                if alias.asname:
                    imported[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    imported[head] = head
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            for alias in node.names:
                full = base if alias.name == "*" else f"{base}.{alias.name}"
                report(node.lineno, full)
                imported[alias.asname or alias.name] = full
    bound = _bound_names(tree)
    # Only whole chains: `a.b.c` is one reference, not three (keys match names below them).
    inner = {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}
    for node in nodes:
        if isinstance(node, ast.Attribute) and id(node) not in inner and (chain := _dotted(node)):
            root, attrs = chain
            if root in imported:
                report(node.lineno, ".".join([imported[root], *attrs]))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _BUILTIN_CALLS
            and node.func.id not in bound
            and node.func.id not in imported
        ):
            report(node.lineno, f"builtins.{node.func.id}")
    return sorted(found.values(), key=lambda v: (v.line, v.name))


def provd_modules(root: Path = ROOT) -> Iterator[tuple[Path, str, bool]]:
    """(file, module name, is it a package's __init__) for every module under `provd/`."""
    for path in sorted((root / "provd").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        yield path, ".".join(parts), is_package


def check_tree(layers: set[str], root: Path = ROOT) -> list[Violation]:
    """Every forbidden dependency in the modules of `layers` under `root/provd`."""
    violations: list[Violation] = []
    for path, module, is_package in provd_modules(root):
        if _layer_of(module) in layers:
            source = path.read_text(encoding="utf-8")
            rel = path.relative_to(root).as_posix()
            violations += check_source(source, module, is_package=is_package, path=rel)
    return violations


def _listing(violations: list[Violation]) -> str:
    return "forbidden dependencies:\n" + "\n".join(f"  {v}" for v in violations)


# --------------------------------------------------------------------------- the tree


def test_scan_finds_the_protocol_core_modules() -> None:
    modules = {module for _, module, _ in provd_modules()}
    assert "provd.wpi" in modules
    assert any(m.startswith("provd.wpi.") for m in modules), "no module under provd/wpi/ scanned"


def test_protocol_core_imports_no_io_clock_randomness_logging_or_other_provd_package() -> None:
    violations = check_tree({"wpi"})
    assert not violations, _listing(violations)


def test_adapters_depend_on_the_protocol_core_only() -> None:
    violations = check_tree(set(ADAPTERS))
    assert not violations, _listing(violations)


def test_lab_server_does_not_depend_on_the_daemon() -> None:
    violations = check_tree({"lab"})
    assert not violations, _listing(violations)


# --------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("import socket\n", 1),
        ("import os.path\n", 1),
        ("from os import path\n", 1),
        ("import OpenSSL.SSL as SSL\n", 1),
        ("from urllib.request import urlopen\n", 1),
        ("from urllib import request\n", 1),
        ("import urllib\n\nurllib.request.urlopen('x')\n", 3),
        ("from concurrent.futures import ThreadPoolExecutor\n", 1),
        ("import threading\n", 1),
        ("from time import monotonic\n", 1),
        ("from datetime import datetime\n\nstamp = datetime.now()\n", 3),
        ("import datetime as dt\n\nclock = dt.datetime.utcnow\n", 3),
        ("from datetime import date\n\ntoday = date.today()\n", 3),
        ("import uuid\n\nnonce = uuid.uuid4().hex\n", 3),
        ("from random import Random\n", 1),
        ("import secrets\n", 1),
        ("import logging\n", 1),
        ("from systemd import journal\n", 1),
        ("import importlib\n", 1),
        ("def load(name: str) -> bytes:\n    return open(name, 'rb').read()\n", 2),
        ("def show(text: str) -> None:\n    print(text)\n", 2),
        ("if __name__ != '__main__':\n    print('imported')\n", 2),
        ("from provd.store import catalog\n", 1),
        ("from ..transport import client\n", 1),
        ("from .. import service\n", 1),
    ],
)
def test_checker_reports_forbidden_dependency_of_protocol_core(source: str, line: int) -> None:
    violations = check_source(source, "provd.wpi.fake", path="provd/wpi/fake.py")
    assert [v.line for v in violations] == [line], violations
    assert str(violations[0]).startswith(f"provd/wpi/fake.py:{line}: ")


def test_tree_check_reports_file_and_line_of_each_forbidden_import(tmp_path: Path) -> None:
    core = tmp_path / "provd" / "wpi"
    core.mkdir(parents=True)
    (tmp_path / "provd" / "__init__.py").write_text("")
    (core / "__init__.py").write_text("from .. import store\n")
    (core / "clean.py").write_text("from lxml import etree\n")
    (core / "dirty.py").write_text('"""Doc."""\n\nimport socket\nfrom time import time\n')
    violations = check_tree({"wpi"}, root=tmp_path)
    assert [str(v).split(" ")[0] for v in violations] == [
        "provd/wpi/__init__.py:1:",
        "provd/wpi/dirty.py:3:",
        "provd/wpi/dirty.py:4:",
    ]


def test_checker_resolves_relative_imports_of_a_package_init() -> None:
    violations = check_source("from ..store import x\n", "provd.wpi", is_package=True)
    assert [v.name for v in violations] == ["provd.store.x"]


@pytest.mark.parametrize(
    "source",
    [
        "from lxml import etree\n",
        "import urllib.parse\n",
        "from urllib.parse import quote\n",
        "from xml.sax.saxutils import escape, quoteattr\n",
        "import base64, collections, dataclasses, enum, functools, hashlib, re, string, typing\n",
        "from datetime import datetime\n\nwhen = datetime.fromisoformat('2024-01-01')\n",
        "from . import model\nfrom .model import Item\nfrom provd.wpi.codec import parse_dls\n",
        "from provd import __version__\n",
        "def echo(input: bytes) -> bytes:\n    return input\n",
        "class Book:\n    def open(self) -> None: ...\n\nBook().open()\n",
        "def page() -> str:\n    return 'x'\n\nif __name__ == '__main__':\n    print(page())\n",
    ],
)
def test_checker_accepts_pure_dependencies_of_protocol_core(source: str) -> None:
    assert check_source(source, "provd.wpi.fake") == []


@pytest.mark.parametrize(
    ("source", "module", "reported"),
    [
        ("from provd.transport import tls\n", "provd.store.catalog", True),
        ("from ..service import loop\n", "provd.transport.client", True),
        ("from provd.hw import udev\n", "provd.ui.keypad", True),
        ("import provd.store\n", "provd.hw.udev", True),
        ("from provd.service import daemon\n", "provd.lab.server", True),
        ("from provd.ui import display\n", "provd.lab.server", True),
        ("from provd.wpi.model import Item\n", "provd.store.catalog", False),
        ("from . import flash\nfrom .flash import write\n", "provd.store.catalog", False),
        ("import socket\nimport logging\n", "provd.transport.client", False),
        ("from provd.store import x\nfrom provd.transport import y\n", "provd.lab.server", False),
        ("from provd.store import x\nfrom provd.hw import y\n", "provd.service.loop", False),
    ],
)
def test_checker_keeps_adapters_apart(source: str, module: str, reported: bool) -> None:
    assert bool(check_source(source, module)) is reported
