"""Hostile documents: fuzzing the server-document parser and the phone session.

Three parts, every figure counted by this run:

1. atheris (libFuzzer, coverage-guided over provd's instrumented Python) in two worker
   processes, one per CPU: one mutates raw bytes, one mutates what documents mean
   (bench/proof/fuzz_corpus.py). Each input is a whole interaction: every server document
   through `parse_dls`, then all of them through a `PhoneSession` that answers its actions
   from an in-memory ItemBook (bench/proof/fuzz_harness.py says what "unhandled" means).
2. hypothesis, property-based: structured documents, sound or wrong in one part each,
   through the same harness in two processes.
3. The attacks: XXE, entity expansion, deep nesting, oversize, each refused by the codec
   and by the session, timed and weighed in fresh processes (bench/proof/fuzz_attacks.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.proof.common import ROOT, Report, main
from bench.proof.fuzz_attacks import CASES, small_forms
from bench.proof.fuzz_corpus import write_corpus, write_dictionary
from bench.proof.fuzz_harness import run_input

#: Seeds of the two atheris workers and of the two hypothesis processes.
ATHERIS_SEEDS = {"bytes": 20240801, "structured": 20240802}
HYPOTHESIS_SEEDS = (8001, 8002)
#: (atheris runs per worker, hypothesis examples per process, runs per attack case)
SCALE = {
    "full": ({"bytes": 650_000, "structured": 350_000}, 4_000, 5),
    "short": ({"bytes": 28_000, "structured": 12_000}, 1_000, 3),
}
#: Seconds each atheris worker may run at most (then it stops short of its runs: a miss).
TIME_BOX = {"full": 320, "short": 40}
MAX_LEN = 4096
#: Below this share of their CPUs the workers were starved by other processes (see `run`).
CPU_SHARE_FLOOR = 0.9
ATTACK_MS = 50.0
ATTACK_MB = 5.0


@dataclass
class Worker:
    """What one atheris worker did, read from libFuzzer's final statistics."""

    mode: str
    seed: int
    runs: int = 0
    exec_per_s: int = 0
    cov: int = 0
    ft: int = 0
    corpus: str = ""
    peak_rss_mb: int = 0
    seconds: float = 0.0
    crashes: list[str] | None = None
    findings: list[dict[str, Any]] | None = None
    exit_code: int = 0


def _env() -> dict[str, str]:
    path = "/usr/bin:" + os.environ.get("PATH", "")
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "PATH": path}


def _children_cpu() -> float:
    """CPU seconds (user + system) used by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_atheris(work: Path, runs: dict[str, int], time_box: int) -> list[Worker]:
    seeds = work / "seeds"
    write_corpus(seeds, small_forms())
    dictionary = work / "tokens.dict"
    write_dictionary(dictionary)
    processes: list[tuple[Worker, subprocess.Popen[bytes], Path, Path]] = []
    for mode, count in runs.items():
        corpus = work / f"corpus-{mode}"
        corpus.mkdir()
        for seed_file in seeds.iterdir():
            (corpus / seed_file.name).write_bytes(seed_file.read_bytes())
        artifacts = work / f"artifacts-{mode}"
        artifacts.mkdir()
        log = work / f"atheris-{mode}.log"
        worker = Worker(mode=mode, seed=ATHERIS_SEEDS[mode])
        command = [
            sys.executable,
            "-m",
            "bench.proof.fuzz_atheris",
            "--mode",
            mode,
            "--findings",
            str(work / f"findings-{mode}"),
            f"-runs={count}",
            f"-seed={worker.seed}",
            f"-max_len={MAX_LEN}",
            f"-max_total_time={time_box}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            f"-dict={dictionary}",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT
            )
        processes.append((worker, process, log, artifacts))
    workers = []
    for worker, process, log, artifacts in processes:
        try:
            worker.exit_code = process.wait(timeout=time_box + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            worker.exit_code = process.wait()
        _read_log(worker, log.read_text(encoding="utf-8", errors="replace"))
        worker.crashes = sorted(path.name for path in artifacts.iterdir())
        findings = work / f"findings-{worker.mode}" / "findings.json"
        worker.findings = json.loads(findings.read_text()) if findings.exists() else []
        workers.append(worker)
    return workers


def _read_log(worker: Worker, text: str) -> None:
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", text, re.M))
    worker.runs = int(stats.get("number_of_executed_units", 0))
    worker.exec_per_s = int(stats.get("average_exec_per_sec", 0))
    worker.peak_rss_mb = int(stats.get("peak_rss_mb", 0))
    progress = re.findall(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\S+)", text, re.M)
    if progress:
        _, cov, ft, corpus = progress[-1]
        worker.cov, worker.ft, worker.corpus = int(cov), int(ft), corpus
    done = re.search(r"^Done \d+ runs in (\d+) second", text, re.M)
    worker.seconds = float(done.group(1)) if done else 0.0


def _replay(work: Path) -> Counter[str]:
    """The events the final corpora drive the session to (what the fuzzing reached)."""
    events: Counter[str] = Counter()
    for corpus in sorted(work.glob("corpus-*")):
        for path in corpus.iterdir():
            events["corpus inputs"] += 1
            try:
                events.update(set(run_input(path.read_bytes())))
            except Exception:  # WrongAnswer too: counted by the workers
                events["escaped"] += 1
    return events


def _run_hypothesis(work: Path, examples: int) -> list[dict[str, Any]]:
    processes = []
    for number in HYPOTHESIS_SEEDS:
        out = work / f"props-{number}.json"
        command = [
            sys.executable,
            "-m",
            "bench.proof.fuzz_props",
            f"--examples={examples}",
            f"--seed={number}",
            f"--out={out}",
        ]
        processes.append((subprocess.Popen(command, cwd=ROOT, env=_env()), out, number))
    results = []
    for process, out, number in processes:
        process.wait(timeout=600)
        result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"seed": number}
        findings = work / f"props-{number}" / "findings.json"
        result["findings"] = json.loads(findings.read_text()) if findings.exists() else []
        results.append(result)
    return results


def _attack_once(case: str, via: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.proof.fuzz_attacks", case, via]
    done = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, timeout=120, check=False
    )
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        error = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        return {"case": case, "via": via, "refused": False, "reason": f"child failed: {error}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _run_attacks(runs: int) -> dict[str, list[dict[str, Any]]]:
    jobs = [(case, via) for case in CASES for via in ("codec", "session") for _ in range(runs)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: _attack_once(*job), jobs))
    by_case: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    for result in results:
        by_case[result["case"]].append(result)
    return by_case


def _literal(hex_input: str) -> str:
    """The whole input as a Python bytes literal (inputs are at most MAX_LEN bytes)."""
    return repr(bytes.fromhex(hex_input))


def _report_findings(report: Report, findings: list[dict[str, Any]], source: str) -> None:
    for finding in findings:
        report.note(
            f"{source} FOUND {finding['kind']} x{finding['count']}: {finding['type']} at"
            f" {finding['where']}: {finding['message'][:160]}. Reproduce in Python from the"
            " repository root (the input is a control byte, then documents split on"
            " b'\\x00NEXT\\x00'): from bench.proof.fuzz_harness import run_input;"
            f" run_input({_literal(finding['input'])})"
        )


def run(report: Report) -> None:
    scale = "short" if report.short else "full"
    runs, examples, attack_runs = SCALE[scale]
    if importlib.util.find_spec("atheris") is None:
        report.note("atheris is not installed in this Python: `make venv` installs it.")
    with tempfile.TemporaryDirectory(prefix="provd-fuzz-") as tmp:
        work = Path(tmp)
        cpu_before = _children_cpu()
        started = time.monotonic()
        workers = _run_atheris(work, runs, TIME_BOX[scale])
        wall = time.monotonic() - started
        cpu_share = (_children_cpu() - cpu_before) / (len(workers) * wall)
        load = os.getloadavg()[0]
        events = _replay(work)
        props = _run_hypothesis(work, examples)
    attacks = _run_attacks(attack_runs)

    # ---------------------------------------------------------------- size of the run
    executed = sum(w.runs for w in workers)
    wanted = sum(runs.values())
    boxed = [w for w in workers if w.runs < runs[w.mode] and w.seconds >= TIME_BOX[scale] - 2]
    cause = ""
    if executed < wanted and boxed and cpu_share < CPU_SHARE_FLOOR:
        # Measured: the workers ran out of their time box while other processes held the
        # CPUs; at the exec/s they had, a run on two free CPUs would reach the target.
        cause = (
            f"the {TIME_BOX[scale]} s time box ended the run: the 2 workers got"
            f" {cpu_share:.0%} of 2 CPUs (load average {load:.1f}, other processes running);"
            f" at {sum(w.exec_per_s for w in workers):,} exec/s on {cpu_share:.0%},"
            f" {wanted:,} inputs take about"
            f" {wanted / max(1, sum(w.exec_per_s for w in workers)) * cpu_share:.0f} s on"
            " two free CPUs"
        )
    report.figure(
        "inputs executed by atheris (2 workers, coverage-guided), each a whole interaction",
        executed,
        f"≥ {wanted:,}",
        executed >= wanted,
        cause,
    )
    interactions = sum(int(p.get("examples", 0)) for p in props)
    report.figure(
        "structured interactions executed by hypothesis (property-based, 2 processes)",
        interactions,
        f"≥ {2 * examples:,}",
        interactions >= 2 * examples,
    )

    # ---------------------------------------------------------------- correctness
    findings = [f for w in workers for f in (w.findings or [])]
    findings += [f for p in props for f in p["findings"]]
    unhandled = sum(f["count"] for f in findings if f["kind"] == "unhandled")
    wrong = sum(f["count"] for f in findings if f["kind"] == "wrong answer")
    report.figure(
        "unhandled exceptions from parse_dls or the PhoneSession (atheris + hypothesis)",
        unhandled,
        "0",
        unhandled == 0,
    )
    report.figure(
        "wrong answers (an answer provd's own parser refuses, a refusal without clean-up,"
        " an interaction that does not end)",
        wrong,
        "0",
        wrong == 0,
    )
    crashes = [f"{w.mode}: {name}" for w in workers for name in (w.crashes or [])]
    crashes += [f"{w.mode}: exit {w.exit_code}" for w in workers if w.exit_code and not w.crashes]
    report.figure(
        "crashes found by atheris (native crash, hang > 10 s, memory > 2 GB, worker died)",
        len(crashes),
        "0",
        not crashes,
    )

    # ---------------------------------------------------------------- the attacks
    for case, (attack, what) in CASES.items():
        results = attacks[case]
        refused = all(r["refused"] for r in results) and bool(results)
        report.figure(
            f"{attack}, {what}: refused by parse_dls and by the session (clean-up answer)",
            "yes" if refused else "NO",
            "yes",
            refused,
        )
        worst_ms = max(
            statistics.median(r.get("ms", float("inf")) for r in results if r["via"] == via)
            for via in ("codec", "session")
        )
        worst_mb = (
            max(
                statistics.median(r.get("extra_bytes", 1e12) for r in results if r["via"] == via)
                for via in ("codec", "session")
            )
            / 1e6
        )
        report.figure(
            f"{attack}, {what}: time / extra memory to refuse (median of {attack_runs},"
            " the slower of codec and session)",
            f"{worst_ms:.2f} ms / {worst_mb:.2f} MB",
            f"< {ATTACK_MS:.0f} ms / < {ATTACK_MB:.0f} MB",
            worst_ms < ATTACK_MS and worst_mb < ATTACK_MB,
        )

    # ---------------------------------------------------------------- notes
    report.note(
        "Unhandled means: out of parse_dls, any exception but DocumentError (a"
        " RemoteProtocolError with a non-empty reason); out of PhoneSession.receive, send or"
        " close, any exception at all: receive documents that it never raises for what the"
        " server sent (a refused document is a DocumentRefused event carrying the phone's"
        " clean-up, an unknown action an UnknownAction answered reply-to failed), and its one"
        " documented exception, LocalProtocolError, is for calls its state table forbids,"
        " which the harness never makes (bench/proof/fuzz_harness.py)."
    )
    for w in workers:
        report.note(
            f"atheris worker '{w.mode}' (seed {w.seed}): {w.runs:,} inputs in {w.seconds:.0f} s,"
            f" {w.exec_per_s:,} exec/s, coverage cov {w.cov} (edges of provd's instrumented"
            f" Python) ft {w.ft} (features), corpus {w.corpus}, peak RSS {w.peak_rss_mb} MB."
        )
    report.note(
        f"The two atheris workers got {cpu_share:.0%} of 2 CPUs over {wall:.0f} s (CPU time of"
        f" the workers / (2 x wall time); load average {load:.1f} at the end); each stops at"
        f" its runs or after {TIME_BOX[scale]} s."
    )
    report.note(
        f"atheris 3.0.0 over provd.wpi (codec, session, respond, fragment, nonce, states,"
        f" events, model) instrumented by atheris.instrument_imports; lxml's C is not"
        f" instrumented. Seed corpus ({len(list(small_forms())) + 0} attack forms plus"
        " emit_dls of a valid message for every Action, the guide's server documents of"
        " tests/data/golden with the fuzz nonce, and whole interactions: a read in"
        " fragments, write then CleanUp, deployments, restarts). An input is a control"
        " byte (opening reason, nonce check strict or warn, busy, storage failing,"
        f" max-message 50,000/2,000/400/1) and documents; -max_len={MAX_LEN},"
        " -dict of XML and protocol tokens. The 'structured' worker's custom mutator"
        " reads a document with plain lxml, changes its action, nonce or items, emits it"
        " with emit_dls, and bends its XML (declaration, root, namespace, comments, CDATA,"
        " character references, duplicates, DTDs, XInclude, nesting) or the sequence."
    )
    reached = ", ".join(f"{name} {count:,}" for name, count in sorted(events.items()))
    report.note(f"What the final corpora reach when replayed (inputs with each event): {reached}.")
    for p in props:
        seconds = float(p.get("seconds", 0.0)) or 1.0
        shown = {k: v for k, v in p.items() if k not in ("findings", "seconds", "seed")}
        report.note(
            f"hypothesis 6.67, seed {p.get('seed')}: {shown}"
            f" ({int(p.get('examples', 0)) / seconds:,.0f} interactions/s); half the documents"
            " are sound, half break one rule (declaration, root, namespace, nonce, Action,"
            " ItemList, Item name/index/text/depth, an unknown element)."
        )
    report.note(
        "Attacks: each case runs in a fresh process (python -m bench.proof.fuzz_attacks"
        " CASE codec|session), median of the runs. Time: time.perf_counter around the one"
        " parse_dls or PhoneSession.receive call. Memory: lxml allocates in C, so the"
        " kernel's peak RSS (VmHWM, /proc/self/status) is reset through /proc/self/clear_refs"
        " after the hostile body is built, and the extra is the peak after the call minus"
        " the peak before; a valid document goes first so lxml's one-time set-up is not"
        " counted. XXE: the local file holds a canary that must not come back, the URL is a"
        " listening socket on 127.0.0.1 that must see no connection. Reasons given: "
        + "; ".join(
            sorted(
                {
                    f"{case}: {r.get('reason', '?')}"
                    for case, rs in attacks.items()
                    for r in rs
                    if r.get("via") == "codec"
                }
            )
        )
    )
    _report_findings(report, findings, "fuzzing")


if __name__ == "__main__":
    main(run, __doc__, "fuzz")
