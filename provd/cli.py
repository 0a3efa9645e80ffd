"""The `provd` and `provctl` commands.

`provd run` is the daemon (systemd starts it); `provd check-config` validates
settings and the item catalog. `provctl` talks to a running provd through the
control socket: human output by default, `--json` for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from provd import __version__

DEFAULT_CONFIG = Path("/etc/provd/provd.toml")
DEFAULT_SOCKET = Path("/run/provd/control.sock")


# --------------------------------------------------------------------------- provd


def _provd_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provd", description="Phone-side WPI provisioning daemon."
    )
    parser.add_argument("--version", action="version", version=f"provd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run the daemon in the foreground (as systemd does)"),
        ("check-config", "validate the settings and the item catalog, then exit"),
    ):
        command = sub.add_parser(name, help=text, description=text)
        command.add_argument(
            "--config",
            type=Path,
            default=DEFAULT_CONFIG,
            help=f"settings file (default {DEFAULT_CONFIG}); drop-ins in FILE.d/*.toml",
        )
        command.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one setting, e.g. --set contact-me.port=18085 (repeatable)",
        )
    return parser


def provd_main(argv: Sequence[str] | None = None) -> int:
    args = _provd_parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config, args.set)
    from provd.service.daemon import main  # the daemon's imports only when it runs
    from provd.service.settings import SettingsError

    try:
        return main(args.config, args.set)
    except SettingsError as exc:
        print(f"provd: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG: systemd shows it as a configuration problem
    except KeyboardInterrupt:
        return 130


def _check_config(config: Path, overrides: list[str]) -> int:
    from provd.service.settings import check_settings, default_dropin_dir, load_settings
    from provd.store.checkconfig import check_catalog

    problems = check_settings(config, default_dropin_dir(config), overrides, missing_ok=True)
    if not any(p.startswith("error:") for p in problems):  # warnings do not stop the check
        settings = load_settings(config, default_dropin_dir(config), overrides, missing_ok=True)
        paths = [settings.paths.catalog]
        if settings.paths.catalog_dropins.is_dir():
            paths.append(settings.paths.catalog_dropins)
        problems += [f"error: {problem}" for problem in check_catalog(paths)]
    for problem in problems:
        print(problem)
    errors = [p for p in problems if p.startswith("error:")]
    if errors:
        print(f"{len(errors)} error(s) found", file=sys.stderr)
        return 1
    print("settings and item catalog OK" + (" (with warnings)" if problems else ""))
    return 0


# --------------------------------------------------------------------------- provctl


def _provctl_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="provctl", description="Control a running provd.")
    parser.add_argument("--version", action="version", version=f"provctl {__version__}")
    parser.add_argument(
        "--socket", type=Path, default=DEFAULT_SOCKET, help=f"control socket ({DEFAULT_SOCKET})"
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="mode, state, last and next contact, last error, pending")
    get = sub.add_parser("get", help="show items (all readable items without names)")
    get.add_argument("items", nargs="*", metavar="NAME[INDEX]")
    set_ = sub.add_parser("set", help="change items locally (reported to the server)")
    set_.add_argument("assignments", nargs="+", metavar="NAME[INDEX]=VALUE")
    busy = sub.add_parser("busy", help="tell provd a call started (on) or ended (off)")
    busy.add_argument("state", choices=["on", "off"])
    contact = sub.add_parser("contact", help="contact the server now")
    contact.add_argument("--reason", default="solicited")
    sub.add_parser("reset-pin", help="forget the pinned server key (trust on next first use)")
    reset = sub.add_parser("factory-reset", help="wipe items and secure material, then reboot")
    reset.add_argument("--yes", action="store_true", help="really do it")
    return parser


def _request(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "status":
        return {"cmd": "status"}
    if args.command == "get":
        return {"cmd": "get", "items": args.items}
    if args.command == "set":
        items: dict[str, str] = {}
        for text in args.assignments:
            name, sep, value = text.partition("=")
            if not sep:
                raise SystemExit(f"provctl: {text!r} is not NAME=VALUE")
            items[name] = value
        return {"cmd": "set", "items": items}
    if args.command == "busy":
        return {"cmd": "busy", "on": args.state == "on"}
    if args.command == "contact":
        return {"cmd": "contact", "reason": args.reason}
    if args.command == "reset-pin":
        return {"cmd": "reset-pin"}
    if args.command == "factory-reset":
        if not args.yes:
            raise SystemExit("provctl: factory-reset wipes the phone's settings: add --yes")
        return {"cmd": "factory-reset", "confirm": True}
    raise SystemExit(f"provctl: unknown command {args.command}")


def _human(command: str, answer: dict[str, Any]) -> str:
    if not answer.get("ok") and "error" in answer:
        return f"error: {answer['error']}"
    if command == "status":
        lines = [str(answer.get("status", ""))]
        for key in ("server", "last_error", "trust_pin", "local_changes_pending"):
            if answer.get(key) not in (None, "", 0):
                lines.append(f"  {key.replace('_', ' ')}: {answer[key]}")
        lines += [f"  warning: {w}" for w in answer.get("warnings", [])]
        return "\n".join(lines)
    if command == "get":
        lines = [f"{name} = {value}" for name, value in answer.get("items", {}).items()]
        lines += [f"{name}: {status}" for name, status in answer.get("errors", {}).items()]
        return "\n".join(lines)
    if command == "set":
        lines = [f"{answer.get('changed', 0)} item(s) changed"]
        lines += [f"{name}: {status}" for name, status in answer.get("rejected", {}).items()]
        return "\n".join(lines)
    return "ok" if answer.get("ok") else json.dumps(answer)


def provctl_main(argv: Sequence[str] | None = None) -> int:
    from provd.service.control import request

    args = _provctl_parser().parse_args(argv)
    command = _request(args)
    try:
        answer = request(args.socket, command)
    except PermissionError:
        print(
            f"provctl: permission denied on {args.socket} (members of group provd only)",
            file=sys.stderr,
        )
        return 77  # EX_NOPERM
    except OSError as exc:
        print(f"provctl: provd is not running? {args.socket}: {exc}", file=sys.stderr)
        return 69  # EX_UNAVAILABLE
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
    else:
        print(_human(args.command, answer))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(provd_main())
