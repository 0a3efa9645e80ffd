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

Usage: bench_daemon.py [--runs N] [--interactions N] [--seconds S] [--requests N]
                       [--clients C] [--quick]
"""

from __future__ import annotations

import argparse
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

    def __init__(self, workdir: Path, server_url: str, overrides: list[str]) -> None:
        self.workdir = workdir
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
                "catalog-dropins": str(ROOT / "config" / "items.d"),
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
            env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(notify_path)}
            args = [sys.executable, "-m", "provd", "run", "--config", str(self.config)]
            for override in self.overrides:
                args += ["--set", override]
            started = time.perf_counter()
            self.process = subprocess.Popen(
                args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
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
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

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


def import_floor() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR_IMPORTS], check=True)
    return time.perf_counter() - started


def bench_start(base: Path, lab: LabServer, runs: int) -> None:
    daemon = Daemon(base / "start", lab.url, [])
    try:
        daemon.start()  # creates the store: a first boot, not counted
        daemon.wait_idle()
        daemon.stop()
        readies, floors = [], []
        for _ in range(runs):
            floors.append(import_floor())
            readies.append(daemon.start())
            daemon.wait_idle()
            daemon.stop()
    finally:
        daemon.close()
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


def bench_memory(
    base: Path, lab: LabServer, ended: Interactions, interactions: int, seconds: float
) -> None:
    daemon = Daemon(base / "memory", lab.url, [])
    try:
        daemon.start()
        daemon.wait_idle()
        time.sleep(1.0)
        idle = daemon.rss_kib()
        print(f"idle RSS after start-up: {idle / 1024:.1f} MB (target <= 30 MB)")

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
        if baseline is None:
            print("RSS growth: not measured (no interaction completed after the warm-up)")
            return
        count = done() - first
        elapsed = time.monotonic() - measured_from
        growth = (end - baseline) / 1024
        per_1000 = growth / count * 1000 if count else float("nan")
        print(
            f"interactions after a warm-up of {first}: {count} in {elapsed:.0f} s "
            f"({count / elapsed:.0f}/s), RSS {baseline / 1024:.1f} -> {end / 1024:.1f} MB"
        )
        print(
            f"RSS growth: {growth:+.2f} MB over {count} interactions, {per_1000:+.3f} MB per "
            f"1,000, {per_1000 * 10:+.2f} MB per 10,000 (target <= 2 MB over 10,000)"
        )
    finally:
        daemon.close()


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


def bench_contact_me(base: Path, lab: LabServer, requests: int, clients: int) -> None:
    daemon = Daemon(base / "contact", lab.url, [])
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
        print(
            f"contact-me: {answered} of {requests} answered 204 in {elapsed:.2f} s "
            f"from {clients} client processes"
        )
        print(f"contact-me answered per second: {answered / elapsed:,.0f} (target >= 2,000)")
        if answered != requests:
            print("  (not every request got 204)")
    finally:
        daemon.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="start-up runs (median)")
    parser.add_argument("--interactions", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=180.0, help="bound of the RSS run")
    parser.add_argument("--requests", type=int, default=5_000, help="contact-me requests")
    parser.add_argument("--clients", type=int, default=2, help="contact-me client processes")
    parser.add_argument("--quick", action="store_true", help="a short run of everything")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.interactions, args.seconds, args.requests = 3, 500, 30.0, 1000

    base = Path(tempfile.mkdtemp(prefix="provd-bench-"))
    try:
        ended = Interactions()
        with LabServer(Scenario.from_dict(SCENARIO), on_record=ended.record) as lab:
            bench_start(base, lab, args.runs)
            bench_contact_me(base, lab, args.requests, args.clients)
            bench_memory(base, lab, ended, args.interactions, args.seconds)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
