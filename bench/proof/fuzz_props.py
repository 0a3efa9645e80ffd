"""The property-based half of suite 2 (hypothesis): structured server documents.

Property: for any interaction — a phone set-up (opening reason, nonce check, busy, storage
failing, `max-message`) and a sequence of server documents built from the grammar's parts
(declaration, root, namespace, nonce, Action, ItemList, Items with names, indices and
values, plus the parts servers get wrong: case, duplicates, unknown elements, comments,
CDATA, character references, nesting) — the session answers or refuses, never raises, and
every answer is a phone document provd's own server side accepts (bench/proof/fuzz_harness).

Usage: python -m bench.proof.fuzz_props --examples N --seed S --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from bench.proof.fuzz_atheris import Findings
from bench.proof.fuzz_harness import NONCE, Control, WrongAnswer, encode, run_interaction
from provd.wpi.model import Action

#: Text XML can carry (no control characters, no surrogates, nothing past U+D7FF).
_SAFE_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xD7FF), max_size=24)
#: Any text at all: control characters, U+FFFE, the astral planes.
_ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
_NAMES = st.sampled_from(
    (
        "e164",
        "device-type",
        "user-pwd",
        "ldap-server-address",
        "Canonical-lookup-local-code",
        "send-solicited",
        "cleanup-reason",
        "restart-type",
        "restart-password",
        "goto-secure-mode",
        "fill-03",
        "no-such-item",
    )
)
_ACTIONS = st.sampled_from([a.value for a in Action])
_VALUES = st.one_of(st.sampled_from(("", "true", "FactoryReset", "124816")), _SAFE_TEXT)

#: The one part of a document that is wrong, if any: half the documents are sound, so
#: the session gets to act on them; the other half break one rule each.
_FLAWS = ("none",) * 13 + (
    "declaration",
    "root",
    "namespace",
    "nonce",
    "no nonce",
    "actions",
    "action text",
    "item lists",
    "unknown element",
    "item name",
    "item index",
    "item text",
    "item depth",
)


def _text_form(draw: st.DrawFn, text: str, flawed: bool) -> str:
    """Character data as a server might send it: escaped, wrapped, CDATA, references."""
    form = draw(st.sampled_from(("plain", "space", "cdata", "charref", "comment")))
    if flawed:
        return draw(st.sampled_from(("<![CDATA[", "&undefined;", "&#0;", "&#xFFFE;", "<x>", "&")))
    escaped = escape(text)
    if form == "space":
        return f"\n      {escaped}\n    "
    if form == "cdata" and "]]>" not in text:
        return f"<![CDATA[{text}]]>"
    if form == "charref":
        return "".join(f"&#{ord(c)};" if c.isalnum() else escape(c) for c in text)
    if form == "comment":
        return f"<!-- x -->{escaped}<!---->"
    return escaped


@st.composite
def items(draw: st.DrawFn, flaw: str = "none") -> str:
    """One Item element; `flaw` names the part to get wrong."""
    if flaw == "item name":
        name = draw(st.one_of(st.none(), st.just(""), st.just("  "), _ANY_TEXT))
    else:
        name = draw(st.one_of(_NAMES, _NAMES, _SAFE_TEXT.filter(str.strip)))
    attrs = "" if name is None else f"name={quoteattr(name)}"
    if flaw == "item index":
        index: str | None = draw(st.sampled_from(("x", "99" * 15, "", "-1", "1_0", "\u0663")))
    else:
        index = draw(st.one_of(st.none(), st.none(), st.integers(0, 12).map(str)))
    if index is not None:
        attrs += f" index={quoteattr(index)}"
    value = draw(_ANY_TEXT if flaw == "item text" else _VALUES)
    depth = draw(st.integers(1, 6)) if flaw == "item depth" else 0
    body = "<n>" * depth + _text_form(draw, value, False) + "</n>" * depth
    return f"<Item {attrs}>{body}</Item>"


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A server document: sound, or wrong in one part."""
    flaw = draw(st.sampled_from(_FLAWS))
    declaration = '<?xml version="1.0" encoding="utf-8"?>\n'
    if flaw == "declaration":
        declaration = draw(
            st.sampled_from(
                (
                    "",
                    "\ufeff",
                    "<?xml version='1.0'?>",
                    '<?xml version="1.0" encoding="ISO-8859-1"?>',
                    '<?xml version="1.1" encoding="UTF-8"?>',
                    '<?xml version="1.0" encoding="UTF-16"?>',
                )
            )
        )
    root = "DLSMessage"
    if flaw == "root":
        root = draw(st.sampled_from(("DlsMessage", "dlsmessage", "WorkpointMessage", "d:X")))
    namespace = 'xmlns="http://www.siemens.com/DLS"'
    if flaw == "namespace":
        namespace = draw(st.sampled_from(("", 'xmlns="urn:other"', 'xmlns:d="urn:d"')))
    nonce: str | None = NONCE
    if flaw == "nonce":
        nonce = draw(st.one_of(st.sampled_from((NONCE.lower(), f" {NONCE} ", "")), _ANY_TEXT))
    elif flaw == "no nonce":
        nonce = None
    message_attrs = "" if nonce is None else f"nonce={quoteattr(nonce)}"
    actions = [draw(_ACTIONS)]
    if flaw == "actions":
        actions = draw(st.lists(_ACTIONS, min_size=0, max_size=3).filter(lambda a: len(a) != 1))
    elif flaw == "action text":
        actions = [draw(st.one_of(st.sampled_from(("Reboot", "readallitems", " ")), _ANY_TEXT))]
    parts = [f"<Action>{_text_form(draw, action, False)}</Action>" for action in actions]
    lists = draw(st.sampled_from((0, 2, 3))) if flaw == "item lists" else 1
    item_flaw = flaw if flaw.startswith("item ") else "none"
    for _ in range(lists):
        listed = draw(st.lists(items(), max_size=10))
        if item_flaw != "none":
            listed.insert(draw(st.integers(0, len(listed))), draw(items(item_flaw)))
        parts.append("<ItemList>" + "".join(listed) + "</ItemList>")
    if flaw == "unknown element":
        unknown = draw(st.sampled_from(("<Unknown a='1'>t</Unknown>", "<Message/>", "<x><y/></x>")))
        parts.insert(draw(st.integers(0, len(parts))), unknown)
    inner = "".join(parts)
    text = f"{declaration}<{root} {namespace}><Message {message_attrs}>{inner}</Message></{root}>"
    return text.encode("utf-8", "surrogatepass")


_INTERACTIONS = st.tuples(
    st.integers(0, 255).map(Control.from_byte),
    st.lists(st.one_of(documents(), documents(), st.just(b"")), min_size=1, max_size=5),
)


def run(examples: int, rng_seed: int, findings_dir: Path) -> dict[str, Any]:
    """Run `examples` interactions; return the counts (and the findings, in findings_dir)."""
    findings = Findings(findings_dir)
    counts: Counter[str] = Counter()

    @seed(rng_seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_INTERACTIONS)
    def interaction(case: tuple[Control, list[bytes]]) -> None:
        control, bodies = case
        counts["examples"] += 1
        try:
            counts.update(run_interaction(control, bodies))
        except WrongAnswer as wrong:
            counts["wrong answers"] += 1
            findings.record("wrong answer", wrong, encode(control, bodies))
        except Exception as error:  # every escape is a finding to count
            counts["unhandled"] += 1
            findings.record("unhandled", error, encode(control, bodies))

    started = time.monotonic()
    interaction()
    return {"seconds": time.monotonic() - started, "seed": rng_seed, **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--examples", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run(args.examples, args.seed, args.out.parent / f"props-{args.seed}")
    args.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
