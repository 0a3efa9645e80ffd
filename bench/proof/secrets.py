"""Secrets: the PIN, TAN, passwords and key material under a real journald, found 0 times.

Every other suite scans the texts its own scenarios left (the daemon's stderr log with its
journal fields written out, notifications, `provctl status`, the phone's documents,
files) with `report.scan`. This suite adds the strongest evidence: the five scenarios in
which the daemon handles a secret run with provd logging natively to a REAL
systemd-journald (python-systemd's `JournalHandler`, as under systemd: `INVOCATION_ID`
set, journald's socket present), at debug level. Then the journal is read back two ways,
all fields of all entries (`journalctl --directory=... -o json --all`) and the raw journal
files byte by byte (compression off, see `secrets_journal`), and searched with the rest of
what the scenario left (`phone_texts`) for every secret the scenario used:

1. the server writes admin-pwd, user-pwd and file-pwd, and reads them back;
2. a password changed locally (`provctl set`) and reported to the server;
3. a PIN bootstrap into Secure Mode, a wrong PIN typed first, then the right one: the PINs,
   their password parts (the PKCS#12 password) and TANs, the key, the archive sent;
4. a no-PIN bootstrap: the key and the client certificate archive sent;
5. a file deployment from an FTP server with a user and password: the FTP password.

journald needs a private /run and /var/log: the suite re-runs itself as a child under
`unshare --mount` (`secrets_child`), as tests/journald.py does. Where it cannot (not root,
no unshare, no journald), the scenarios still run, captured from stderr, and the figure
"run under a real journald" says why not. A control shows the search can find things: the
nonce of every interaction (not a secret) is found in the journal's fields and raw files.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import signal
import string
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.proof.common import ROOT, Report, Scan, contains_secret, main
from bench.proof.secrets_journal import Journal, plant, private_journald, read_journal
from bench.proof.secrets_scenarios import SCENARIOS, Context, Outcome, Spec
from provd.service.journal import REDACTED
from tests.journald import why_not_runnable

SEED = 6
PR_SET_PDEATHSIG = 1
#: provd entries a scenario's journal must hold at least (start, interactions, stop...):
#: fewer means the capture did not work, and a search of it proves nothing.
ENTRY_FLOOR = 10
#: Seconds the namespaced child may take (the runner allows the suite 150 s at short scale).
CHILD_LIMIT = 140
#: A long field, which journald would compress by default: found verbatim in the raw files,
#: it shows that every field is searched as written.
PLANTED = 4096
J_FIELDS = "journal (json)"
J_OUTPUT = "journalctl output"
J_FILES = "journal files"
JOURNAL_PLACES = (J_FIELDS, J_OUTPUT)


@dataclass
class Result:
    """One scenario: its outcome, its scan and (under journald) its journal."""

    title: str
    outcome: Outcome
    scan: Scan
    journal: Journal | None
    markers_found: int
    planted_found: bool


def run(report: Report) -> None:
    """Run the scenarios under a private journald (as a namespaced child), or say why not."""
    report.note(f"seed {SEED}: every password, PIN and INVOCATION_ID derives from it")
    reason = why_not_runnable()
    if reason is not None:
        report.figure("run under a real journald", f"no ({reason})", "yes", False, cause=reason)
        measure(report, journald=False, seed=SEED)
        return
    in_namespace(report)


def in_namespace(report: Report) -> None:
    """`secrets_child` under `unshare --mount`; its figures and scans join `report`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM", "WATCHDOG_USEC"):
        env.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="provd-secrets-") as tmp:
        out = Path(tmp) / "child.json"
        command = ["unshare", "--mount", "--propagation", "private", sys.executable]
        command += ["-m", "bench.proof.secrets_child", "--scale", report.scale]
        command += ["--seed", str(SEED), "--json", str(out)]
        child = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            preexec_fn=terminate_with_parent,  # noqa: PLW1509 - the suite has no threads yet
        )
        try:
            code = child.wait(timeout=CHILD_LIMIT)
        except subprocess.TimeoutExpired:
            child.terminate()  # the child stops its daemons and journald on SIGTERM
            try:
                code = child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
        if not out.exists():
            raise RuntimeError(f"the namespaced child exited {code} without a report")
        made = Report.from_json(json.loads(out.read_text(encoding="utf-8")))
    report.figures += made.figures
    report.scans += made.scans
    report.notes += made.notes
    if made.error:
        raise RuntimeError(f"the namespaced child failed:\n{made.error}")


def terminate_with_parent() -> None:
    """A `preexec_fn`: SIGTERM when the suite dies (the runner's time limit), so the child
    stops its daemons, lab servers and journald on the way out."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def capture(journald: bool, var_log: Path, notify: Path) -> Iterator[None]:
    if not journald:
        yield
        return
    with private_journald(var_log, notify):
        yield


def measure(report: Report, *, journald: bool, seed: int) -> None:
    """Play every scenario (each under its own journald when `journald`), scan, count."""
    rng = random.Random(seed)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="provd-secrets-") as tmp:
        for number, spec in enumerate(SCENARIOS, start=1):
            workdir = Path(tmp) / spec.slug
            var_log = workdir / "var-log"
            # As systemd sets it for every unit it starts: provd then logs to the journal.
            env = {"INVOCATION_ID": uuid.UUID(int=rng.getrandbits(128)).hex} if journald else {}
            ctx = Context(workdir, random.Random(rng.getrandbits(64)), env)
            marker = "".join(rng.choice(string.ascii_letters) for _ in range(PLANTED))
            with capture(journald, var_log, Path(tmp) / "journald-notify.sock"):
                outcome = play(spec, ctx)
                if journald:
                    plant(marker)
            journal = read_journal(var_log / "journal") if journald else None
            texts: dict[str, bytes] = {}
            if journal is not None:
                texts = {J_FIELDS: journal.fields, J_OUTPUT: journal.json_text}
                texts[J_FILES] = journal.files
            texts.update(outcome.texts)
            scan = report.scan(f"{number}. {spec.title}", outcome.secrets, texts)
            where = (
                [journal.fields, journal.files] if journal else [texts.get("the daemon's log", b"")]
            )
            markers = sum(
                all(contains_secret(text, value.encode()) for text in where)
                for value in outcome.markers.values()
            )
            planted = journal is not None and all(
                marker.encode() in text for text in (journal.fields, journal.files)
            )
            results.append(Result(spec.title, outcome, scan, journal, markers, planted))
    figures(report, results, journald=journald)


def play(spec: Spec, ctx: Context) -> Outcome:
    """The scenario's outcome; one that broke before it could say is a failed outcome."""
    try:
        return spec.play(ctx)
    except Exception as exc:  # the figure "reached their end state" reports it
        return Outcome(failure=f"{type(exc).__name__} before the scenario could report")


def _found(results: list[Result], places: tuple[str, ...] | None) -> int:
    """Secrets found in `places` (None: in every place not of the journal)."""
    journal = (*JOURNAL_PLACES, J_FILES)
    count = 0
    for result in results:
        for found in result.scan.found:
            place = found.rpartition(" in ")[2]
            if (place in places) if places is not None else (place not in journal):
                count += 1
    return count


def figures(report: Report, results: list[Result], *, journald: bool) -> None:
    n = len(results)
    want = len(SCENARIOS)
    if journald:
        report.figure("run under a real journald", "yes (systemd-journald, native)", "yes", True)
    how = "under journald" if journald else "with stderr capture (no journald)"
    report.figure(f"scenarios run {how}", n, f"{want}", n == want)
    reached = [r for r in results if r.outcome.reached]
    report.figure(
        "scenarios that reached their end state", f"{len(reached)} of {n}", "all", len(reached) == n
    )
    for r in results:
        if not r.outcome.reached:
            report.note(f"{r.title}: did not reach its end state: {r.outcome.failure}")
    if journald:
        counts = [len(r.journal.provd_entries()) if r.journal else 0 for r in results]
        report.figure(
            "provd entries captured in the journal",
            sum(counts),
            f"≥ {ENTRY_FLOOR} in each scenario",
            all(c >= ENTRY_FLOOR for c in counts),
        )
        debug = [
            sum(e.get("PRIORITY") == "7" for e in r.journal.provd_entries()) if r.journal else 0
            for r in results
        ]
        report.figure(
            "debug entries (PRIORITY=7) among them",
            sum(debug),
            "≥ 1 in each scenario",
            all(d >= 1 for d in debug),
        )
        redacted = [
            sum(REDACTED in json.dumps(e) for e in r.journal.provd_entries()) if r.journal else 0
            for r in results
        ]
        report.note(
            "provd entries that logged about a secret, its value shown as [redacted], by"
            f" scenario: {', '.join(map(str, redacted))}"
        )
        stderr = sum(r.outcome.stderr_log_lines for r in results)
        report.figure("provd log lines on stderr instead of the journal", stderr, "0", stderr == 0)
    looked = sum(r.scan.secrets for r in results)
    report.figure("secrets looked for", looked, f"≥ {4 * want}", looked >= 4 * want)
    if journald:
        fields = _found(results, JOURNAL_PLACES)
        report.figure(
            "secrets found in journal fields (journalctl -o json --all)", fields, "0", fields == 0
        )
        raw = _found(results, (J_FILES,))
        report.figure("secrets found in the raw journal files", raw, "0", raw == 0)
    other = _found(results, None)
    log = "stderr" if journald else "the daemon's stderr log"
    report.figure(
        f"secrets found in the other texts ({log}, notifications, provctl, documents, files)",
        other,
        "0",
        other == 0,
    )
    markers = sum(len(r.outcome.markers) for r in results)
    found = sum(r.markers_found for r in results)
    where = "journal fields and raw files" if journald else "daemon's stderr log"
    report.figure(
        f"control: interaction nonces found in the {where}",
        f"{found} of {markers}",
        "all (≥ 1 per scenario)",
        all(0 < len(r.outcome.markers) == r.markers_found for r in results),
    )
    if journald:
        planted = sum(r.planted_found for r in results)
        report.figure(
            f"control: a {PLANTED:,}-byte marker sent to journald found verbatim in its fields"
            " and raw files",
            f"{planted} of {n} scenarios",
            "all",
            planted == n,
        )
    report.note(
        "searched as well: the item store in the bootstrap scenarios (3, 4), not in 1, 2, 5,"
        " where it holds the server's passwords by design (spec §8.1); the phone's documents"
        " with the one TAN answer the server asked for (spec §7.3 step 4) masked."
    )
    searched = sum(r.scan.bytes_searched for r in results)
    report.note(
        f"{n} scenarios, {looked} secrets, {searched:,} bytes searched; a secret shorter than"
        " 8 bytes (a TAN) counts only as a whole token. Key material is searched as PEM"
        " lines, PKCS#8 DER and the private scalar; long item values as start, middle and"
        " end pieces of 40 characters."
    )
    if journald:
        files = sum(r.journal.file_count for r in results if r.journal)
        report.note(
            f"one systemd-journald per scenario (Compress=no, so the raw files hold every"
            f" field as written), {files} journal files; journalctl's JSON decoded field by"
            " field (binary fields to their bytes) before the search."
        )


if __name__ == "__main__":
    main(run, __doc__, "secrets")
