"""The daemon's figures of issue 4 ("Done when"), measured on the real `provd run` process.

1. Start-up: time from exec to `READY=1` on a real notify socket, divided by the import
   floor (the same interpreter running
   `import lxml.etree, OpenSSL.SSL, pyudev, systemd.daemon` and exiting); medians over
   several runs on an existing store, as at a boot (target ≤ 1.5).
2. Idle RSS of the daemon after its start-up interaction (VmRSS, target ≤ 30 MB).
3. RSS growth over 10,000 interactions with the lab server (target ≤ 2 MB): solicited
   interactions (ReadItems, CleanUp over loopback TLS) driven back to back through the
   control socket, bounded in time; when fewer fit, the count and the growth per 1,000.
4. Contact-me requests answered per second by the daemon on loopback (target ≥ 2,000):
   client processes send `ContactMe=true` POSTs, one connection each, all must get 204.

The daemon runs from a byte-compiled copy of the package (`compiled_copy`), as the Debian
package installs it (dh_python3 byte-compiles at install), so that it is compared with a
floor whose Debian packages are byte-compiled too; `--source` runs the source tree instead.

The measurements are functions returning numbers (`measure_start`, `measure_memory`,
`measure_contact_me`), which bench/proof/performance.py (issue 8) calls.

Usage: bench_daemon.py [--runs N] [--interactions N] [--seconds S] [--requests N]
                       [--clients C] [--quick] [--source]
"""

from __future__ import annotations

import argparse
import compileall
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provd.lab.scenario import Scenario  # noqa: E402
from provd.lab.server import LabServer  # noqa: E402
from provd.lab.transcript import Record  # noqa: E402
from provd.service.control import request  # noqa: E402

FLOOR_IMPORTS = "import lxml.etree, OpenSSL.SSL, pyudev, systemd.daemon"
MAC = "00:01:E3:25:EA:13"
CONTACT_PATH = "/contact_dls.html/ContactDLS"
CONTACT_ME = (
    f"POST {CONTACT_PATH} HTTP/1.1\r\nHost: phone\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\n"
    "Connection: close\r\n\r\nContactMe=true"
).encode()
#: The lab's answers: start-up reads everything; every other interaction reads three items.
SCENARIO = {
    "interaction": [
        {"reason": "start-up", "step": [{"action": "ReadAllItems"}, {"action": "CleanUp"}]},
        {
            "step": [
                {"action": "ReadItems", "items": ["mac-addr", "e164", "software-version"]},
                {"action": "CleanUp"},
            ]
        },
    ]
}


class Daemon:
    """One `provd run` process with its own directories and notify socket."""

    def __init__(
        self,
        workdir: Path,
        server_url: str,
        overrides: list[str],
        *,
        pythonpath: Path = ROOT,
        log: Path | None = None,
        catalog_dropins: Path | None = None,
        settings_extra: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.workdir = workdir
        self.pythonpath = pythonpath
        self.log = log
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "provd.toml"
        self.sockets = Path(tempfile.mkdtemp(prefix="pdb-"))
        self.control = self.sockets / "run" / "control.sock"
        settings: dict[str, dict[str, Any]] = {
            "server": {"url": server_url},
            "paths": {
                "state-dir": str(workdir / "state"),
                "runtime-dir": str(self.sockets / "run"),
                "catalog": str(ROOT / "config" / "items.toml"),
                "catalog-dropins": str(catalog_dropins or ROOT / "config" / "items.d"),
                "apply-dir": str(workdir / "apply.d"),
            },
            "contact-me": {"listen": "127.0.0.1", "port": 0},
            "device": {
                "mac-addr": MAC,
                "ip-address": "127.0.0.1",
                "device-type": "OpenStage 60",
                "software-version": "V3 R5.1.0",
                "description-file": "",
            },
        }
        for group, table in (settings_extra or {}).items():
            settings.setdefault(group, {}).update(table)
        lines = []
        for group, table in settings.items():
            lines.append(f"[{group}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.overrides = overrides
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the daemon; seconds from exec to READY=1."""
        notify_path = self.sockets / "notify.sock"
        notify_path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(30)
            env = {
                **os.environ,
                "PYTHONPATH": str(self.pythonpath),
                "NOTIFY_SOCKET": str(notify_path),
            }
            args = [sys.executable, "-m", "provd", "run", "--config", str(self.config)]
            for override in self.overrides:
                args += ["--set", override]
            stderr = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
            started = time.perf_counter()
            # cwd: the package comes from `pythonpath` (`-m` would put the cwd first).
            self.process = subprocess.Popen(
                args, env=env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
            if self.log is not None:
                stderr.close()  # type: ignore[union-attr]
            while b"READY=1" not in notify.recv(65536).split(b"\n"):
                pass
            return time.perf_counter() - started

    def ctl(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return request(self.control, {"cmd": cmd, **fields}, timeout=30)

    def wait_idle(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.ctl("status")
            if status["last_contact"] and not status["running"] and not status["pending"]:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"daemon not idle: {status}")
            time.sleep(0.02)

    def rss_kib(self) -> int:
        assert self.process is not None
        return rss_kib(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.sockets, ignore_errors=True)


def vmrss_kib(status: str) -> int:
    """The VmRSS line of a /proc/<pid>/status text, in KiB."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def rss_kib(pid: int) -> int:
    """The resident set of process `pid` (VmRSS), KiB."""
    return vmrss_kib(Path(f"/proc/{pid}/status").read_text(encoding="ascii"))


def import_floor() -> float:
    """Seconds for the interpreter to run the floor's imports and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR_IMPORTS], check=True)
    return time.perf_counter() - started


def floor_rss_kib() -> int:
    """VmRSS of the interpreter once the floor's imports are done (KiB)."""
    code = f"{FLOOR_IMPORTS}\nprint(open('/proc/self/status').read())"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return vmrss_kib(out.stdout)


def imported_rss_kib(pythonpath: Path) -> int:
    """VmRSS with every module the daemon uses imported, nothing run (KiB)."""
    modules = (
        "provd.service.daemon, provd.service.exchange, provd.service.interaction,"
        " provd.transport.https, provd.transport.credentials, provd.wpi.session,"
        " provd.service.deploy, provd.wpi.summary"
    )
    code = f"import {modules}\nprint(open('/proc/self/status').read())"
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env,
        cwd=tempfile.gettempdir(),
    )  # fmt: skip
    return vmrss_kib(out.stdout)


def compiled_copy(dest: Path) -> Path:
    """A copy of the provd package under `dest`, byte-compiled as dh_python3 does at install.

    Returns the directory to put on PYTHONPATH. (This tree is never written to: the
    developers' environment sets PYTHONDONTWRITEBYTECODE, so provd would otherwise be
    compiled from source at every start while the floor's Debian packages are not.)
    """
    shutil.copytree(ROOT / "provd", dest / "provd", ignore=shutil.ignore_patterns("__pycache__"))
    if not compileall.compile_dir(dest / "provd", quiet=1):
        raise RuntimeError("byte-compiling the provd copy failed")
    return dest


def measure_start(
    base: Path,
    lab: LabServer,
    runs: int,
    pythonpath: Path = ROOT,
    first_documents: list[float] | None = None,
) -> tuple[list[float], list[float]]:
    """Seconds exec to READY=1 on an existing store, and the import floor's, `runs` each,
    interleaved so that load on the machine weighs on both alike. `first_documents`, if
    given, gets the seconds from exec to the start-up's first document at the lab."""
    daemon = Daemon(base / "start", lab.url, [], pythonpath=pythonpath)
    readies: list[float] = []
    floors: list[float] = []
    try:
        daemon.start()  # creates the store: a first boot, not counted
        daemon.wait_idle()
        daemon.stop()
        for _ in range(runs):
            floors.append(import_floor())
            seen, started = len(lab.transcript), time.time()  # the lab's clock
            readies.append(daemon.start())
            daemon.wait_idle()
            daemon.stop()
            if first_documents is not None:
                first = next(r for r in lab.transcript[seen:] if r.from_phone)
                first_documents.append(first.time - started)
    finally:
        daemon.close()
    return readies, floors


def bench_start(base: Path, lab: LabServer, runs: int, pythonpath: Path) -> None:
    readies, floors = measure_start(base, lab, runs, pythonpath)
    ready, floor = statistics.median(readies), statistics.median(floors)
    print(f"interpreter: {sys.executable}")
    print(f"exec to READY=1: median {ready * 1000:.0f} ms over {runs} runs (existing store)")
    print(f"import floor ({FLOOR_IMPORTS}): median {floor * 1000:.0f} ms")
    print(f"start-up ratio READY / floor: {ready / floor:.2f} (target <= 1.5)")


class Interactions:
    """Counts the interactions the lab ends (its CleanUp answers), for waiting on them."""

    def __init__(self) -> None:
        self.done = 0
        self._changed = threading.Condition()

    def record(self, record: Record) -> None:
        if not record.from_phone and record.action == "CleanUp":
            with self._changed:
                self.done += 1
                self._changed.notify_all()

    def wait_past(self, seen: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.done > seen, timeout)


@dataclass(frozen=True)
class Memory:
    """RSS of one daemon: idle after start-up, and across a run of interactions (KiB)."""

    idle_kib: int
    warm_up: int  # interactions before the baseline
    interactions: int  # counted after the baseline
    seconds: float
    baseline_kib: int | None
    end_kib: int

    @property
    def growth_mb(self) -> float:
        return (self.end_kib - (self.baseline_kib or self.end_kib)) / 1024

    @property
    def per_10000_mb(self) -> float:
        return self.growth_mb / self.interactions * 10_000 if self.interactions else float("nan")


def measure_memory(
    base: Path,
    lab: LabServer,
    ended: Interactions,
    interactions: int,
    seconds: float,
    pythonpath: Path = ROOT,
    log: Path | None = None,
) -> Memory:
    """Idle RSS after the start-up interaction, then solicited interactions back to back."""
    daemon = Daemon(base / "memory", lab.url, [], pythonpath=pythonpath, log=log)
    try:
        daemon.start()
        daemon.wait_idle()
        time.sleep(1.0)
        idle = daemon.rss_kib()
        warm_up = min(200, interactions // 10)
        offset = ended.done  # the lab also ended the earlier daemons' interactions

        def done() -> int:
            return ended.done - offset

        baseline: int | None = None
        deadline = time.monotonic() + seconds
        measured_from, first = time.monotonic(), 0
        while done() < interactions + warm_up and time.monotonic() < deadline:
            if baseline is None and done() >= warm_up:
                daemon.wait_idle()
                baseline = daemon.rss_kib()
                measured_from, first = time.monotonic(), done()
            seen = ended.done
            daemon.ctl("contact")  # one solicited interaction pending at all times
            ended.wait_past(seen, timeout=30)
        daemon.wait_idle()
        end = daemon.rss_kib()
        count = done() - first if baseline is not None else 0
        return Memory(idle, first, count, time.monotonic() - measured_from, baseline, end)
    finally:
        daemon.close()


def bench_memory(
    base: Path, lab: LabServer, ended: Interactions, interactions: int, seconds: float,
    pythonpath: Path,
) -> None:  # fmt: skip
    m = measure_memory(base, lab, ended, interactions, seconds, pythonpath)
    print(f"idle RSS after start-up: {m.idle_kib / 1024:.1f} MB (target <= 30 MB)")
    if m.baseline_kib is None:
        print("RSS growth: not measured (no interaction completed after the warm-up)")
        return
    print(
        f"interactions after a warm-up of {m.warm_up}: {m.interactions} in {m.seconds:.0f} s "
        f"({m.interactions / m.seconds:.0f}/s), RSS {m.baseline_kib / 1024:.1f} -> "
        f"{m.end_kib / 1024:.1f} MB"
    )
    print(
        f"RSS growth: {m.growth_mb:+.2f} MB over {m.interactions} interactions, "
        f"{m.per_10000_mb:+.2f} MB per 10,000 (target <= 2 MB over 10,000)"
    )


def contact_client(port: int, count: int) -> int:
    """Send `count` contact-me requests, one connection each; how many got 204."""
    ok = 0
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(CONTACT_ME)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        ok += answer.startswith(b"HTTP/1.1 204 ")
    return ok


def measure_contact_me(
    base: Path, lab: LabServer, requests: int, clients: int, pythonpath: Path = ROOT
) -> tuple[int, float]:
    """Contact-me requests answered 204 by the daemon, and the seconds they took."""
    daemon = Daemon(base / "contact", lab.url, [], pythonpath=pythonpath)
    try:
        daemon.start()
        daemon.wait_idle()
        port = int(daemon.ctl("status")["contact_me_port"])
        shares = [requests // clients] * clients
        shares[0] += requests - sum(shares)
        with multiprocessing.get_context("fork").Pool(clients) as pool:
            started = time.perf_counter()
            answered = sum(pool.starmap(contact_client, [(port, n) for n in shares]))
            elapsed = time.perf_counter() - started
        return answered, elapsed
    finally:
        daemon.close()


def bench_contact_me(
    base: Path, lab: LabServer, requests: int, clients: int, pythonpath: Path
) -> None:
    answered, elapsed = measure_contact_me(base, lab, requests, clients, pythonpath)
    print(
        f"contact-me: {answered} of {requests} answered 204 in {elapsed:.2f} s "
        f"from {clients} client processes"
    )
    print(f"contact-me answered per second: {answered / elapsed:,.0f} (target >= 2,000)")
    if answered != requests:
        print("  (not every request got 204)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="start-up runs (median)")
    parser.add_argument("--interactions", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=180.0, help="bound of the RSS run")
    parser.add_argument("--requests", type=int, default=5_000, help="contact-me requests")
    parser.add_argument("--clients", type=int, default=2, help="contact-me client processes")
    parser.add_argument("--quick", action="store_true", help="a short run of everything")
    parser.add_argument("--source", action="store_true", help="run the source tree as it is")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.interactions, args.seconds, args.requests = 3, 500, 30.0, 1000

    base = Path(tempfile.mkdtemp(prefix="provd-bench-"))
    try:
        pythonpath = ROOT if args.source else compiled_copy(base / "site")
        ended = Interactions()
        with LabServer(Scenario.from_dict(SCENARIO), on_record=ended.record) as lab:
            bench_start(base, lab, args.runs, pythonpath)
            bench_contact_me(base, lab, args.requests, args.clients, pythonpath)
            bench_memory(base, lab, ended, args.interactions, args.seconds, pythonpath)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
