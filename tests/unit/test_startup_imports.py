"""What `provd run` loads before READY=1 (issue 8: start to READY against the import floor).

The TLS stack, the XML parser, http.client and pyudev are needed by the first interaction
or by inventory rules, not to be ready; importing them before READY=1 doubled the
start-up time. This keeps a later import from bringing them back unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys

DEFERRED = ("lxml", "OpenSSL", "cryptography", "pyudev", "http.client", "urllib.request")
START_UP_MODULES = ("provd.cli", "provd.service.daemon", "provd.service.settings")


def test_the_start_up_modules_load_no_tls_xml_http_or_udev_library() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {START_UP_MODULES!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {DEFERRED!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
