"""sd_notify over a real AF_UNIX datagram socket bound in tmp_path (or the abstract namespace)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.service.notify import Notifier


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A stand-in service manager: the datagram socket systemd would hold."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield sock, str(path)
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram queued so far (sendto has returned, so they are all there)."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096, socket.MSG_DONTWAIT).decode())
        except BlockingIOError:
            return messages


def test_each_notification_arrives_as_one_datagram(manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    notifier = Notifier({"NOTIFY_SOCKET": path}, monotonic_usec=lambda: 123456789)
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.status("default mode, idle, last contact 12:03:04 ok, next poll 12:08")
    assert notifier.watchdog()
    assert notifier.reloading()
    assert notifier.stopping()
    notifier.close()
    assert received(sock) == [
        "READY=1",
        "STATUS=default mode, idle, last contact 12:03:04 ok, next poll 12:08",
        "WATCHDOG=1",
        "RELOADING=1\nMONOTONIC_USEC=123456789",
        "STOPPING=1",
    ]


def test_ready_and_stopping_can_carry_a_status(manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("default mode, idle")
    notifier.stopping("stopping: ending interaction")
    assert received(sock) == [
        "READY=1\nSTATUS=default mode, idle",
        "STOPPING=1\nSTATUS=stopping: ending interaction",
    ]


def test_status_stays_one_line(manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    Notifier({"NOTIFY_SOCKET": path}).status("first\nREADY=1")
    assert received(sock) == ["STATUS=first READY=1"]


def test_abstract_socket_address_is_supported() -> None:
    name = f"provd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert received(sock) == ["READY=1"]


def test_each_notifier_follows_the_environment_it_was_given(tmp_path: Path) -> None:
    socks = []
    for name in ("a", "b"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(tmp_path / name))
        socks.append(sock)
    try:
        Notifier({"NOTIFY_SOCKET": str(tmp_path / "a")}).status("to a")
        Notifier({"NOTIFY_SOCKET": str(tmp_path / "b")}).status("to b")
        assert received(socks[0]) == ["STATUS=to a"]
        assert received(socks[1]) == ["STATUS=to b"]
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1234"}])
def test_without_a_notify_socket_everything_is_a_no_op(env: dict[str, str]) -> None:
    notifier = Notifier(env)
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()
    assert not notifier.reloading()


def test_a_vanished_manager_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone"
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    with caplog.at_level(logging.WARNING, logger="provd.service.notify"):
        assert not notifier.watchdog()
        assert not notifier.watchdog()
    assert len(caplog.records) == 1
    assert "cannot notify" in caplog.records[0].getMessage()
    # Once the manager is back, notifications flow again.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert notifier.watchdog()
        assert received(sock) == ["WATCHDOG=1"]


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "4242"}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "4243"}, None),  # another process's
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(
    env: dict[str, str], interval: float | None
) -> None:
    assert Notifier(env, pid=4242).watchdog_interval() == interval


def test_watchdog_pid_defaults_to_this_process() -> None:
    env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(env).watchdog_interval() == 0.5
