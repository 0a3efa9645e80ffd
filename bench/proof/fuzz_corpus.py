"""Seeds, dictionary and the structure-aware mutator of suite 2's fuzzer.

Seeds: `emit_dls` of a valid message for every `Action` (with the items the guide gives
them), the guide's server documents of tests/data/golden with the fuzz nonce, whole
interactions (a read answered in fragments, a write then `CleanUp`, a deployment, a
restart), and small forms of the four attacks.

The mutator works on what a server document *means*: it reads one document of the input
with a plain lxml parser (never provd's codec, so the mutator does not colour the coverage
of the code under test), changes the message (action, nonce, items, names, indices,
values), emits it again, then sometimes bends the XML around it (declaration, root name,
namespace, comments, CDATA, character references, duplicated or unknown elements, DTDs,
XInclude, nesting), or changes the sequence of documents, or leaves the bytes to libFuzzer.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from bench.proof.fuzz_harness import NONCE, Control, decode, encode
from provd.wpi.codec import emit_dls
from provd.wpi.model import Action, DLSMessage, Item, Reason
from provd.wpi.nonce import NonceCheck
from provd.wpi.xmltext import is_xml_text
from tests.unit.wpi.goldens import GOLDEN_DIR

#: Items the guide gives each action (enough to reach every branch of the session).
ACTION_ITEMS: dict[Action, tuple[Item, ...]] = {
    Action.READ_ALL_ITEMS: (),
    Action.READ_ITEMS: (
        Item(name="e164"),
        Item(name="user-pwd"),
        Item(name="ldap-server-address", index=1),
        Item(name="no-such-item"),
    ),
    Action.WRITE_ITEMS: (
        Item(name="e164", value="49897223290"),
        Item(name="device-type", value="OpenStage 60"),
        Item(name="ldap-server-address", value="ldap.example.com", index=1),
        Item(name="Canonical-lookup-local-code", value="089", index=12),
        Item(name="reg-addr", value="192.0.2.117"),
    ),
    Action.RESTART: (Item(name="restart-type", value="FactoryReset"),),
    Action.FILE_DEPLOYMENT: (
        Item(name="file-server", value="192.0.2.150"),
        Item(name="file-path", value="/media"),
        Item(name="file-name", value="ringtone.wav"),
        Item(name="file-type", value="RINGTONE"),
        Item(name="file-port", value="21"),
    ),
    Action.SOFTWARE_DEPLOYMENT: (Item(name="file-https-base-url", value="https://192.0.2.1/"),),
    Action.CLEAN_UP: (Item(name="send-solicited", value="true"),),
    Action.GET_NEXT_FRAGMENT: (),
}

#: Tokens for libFuzzer's dictionary and for the mutator's insertions.
TOKENS: tuple[str, ...] = (
    "<DLSMessage",
    "</DLSMessage>",
    "<DlsMessage",
    "<Message",
    "</Message>",
    "nonce=",
    "<Action>",
    "</Action>",
    "<ItemList>",
    "</ItemList>",
    "<ItemList/>",
    "<Item",
    "</Item>",
    "name=",
    "index=",
    "status=",
    'xmlns="http://www.siemens.com/DLS"',
    'xmlns:xi="http://www.w3.org/2001/XInclude"',
    '<?xml version="1.0" encoding="utf-8"?>',
    "<!DOCTYPE",
    "<!ENTITY",
    "SYSTEM",
    "PUBLIC",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?",
    "?>",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x110000;",
    "&#xD800;",
    "&#13;",
    "&undefined;",
    "\ufeff",
    *(action.value for action in Action),
    "send-solicited",
    "cleanup-reason",
    "restart-type",
    "restart-password",
    "FactoryReset",
    "124816",
    NONCE,
)

_NAMES = (
    "e164",
    "device-type",
    "user-pwd",
    "mac-addr",
    "ldap-server-address",
    "Canonical-lookup-local-code",
    "goto-secure-mode",
    "dls-server-ca",
    "secure-mode-data",
    "send-solicited",
    "cleanup-reason",
    "restart-type",
    "restart-password",
    "fill-07",
    "no-such-item",
    " e164 ",
    "e164\u00a0",
    "ε164",
    "a" * 300,
)
_INDEXES = ("1", "0", " 3 ", "-1", "1_0", "٣", "99999999999999999999", "", "x", "1.5", "+2")
_VALUES = (
    "",
    "3301",
    "true",
    "FALSE",
    "FactoryReset",
    "124816",
    "  padded  ",
    "multi\nline",
    "<&>\"'",
    "\r\n",
    "\u2028\u0085\ufeff",
    "x" * 2000,
    "é" * 100,
)
_ACTIONS = (*(action.value for action in Action), "readallitems", " CleanUp ", "Reboot", "")
_NONCES = (NONCE, NONCE.lower(), f"  {NONCE}\n", "0" * 32, "", NONCE + "0", NONCE[:-1])


def _pick(rng: random.Random, pool: tuple[str, ...]) -> str:
    return pool[rng.randrange(len(pool))]


def _random_text(rng: random.Random, size: int) -> str:
    """Text that XML can carry (a value the emitter accepts)."""
    text = "".join(
        chr(rng.choice((rng.randrange(32, 127), rng.randrange(160, 0x2FFF)))) for _ in range(size)
    )
    return text if is_xml_text(text) else "fuzz"


# --------------------------------------------------------------------------- seeds


def seed_documents() -> list[bytes]:
    """One valid server document per action, and the guide's server documents."""
    documents = [
        emit_dls(DLSMessage(nonce=NONCE, action=action.value, items=ACTION_ITEMS[action]))
        for action in Action
    ]
    for path in sorted(GOLDEN_DIR.glob("*-server-*.xml")):
        body = path.read_bytes()
        documents.append(re.sub(rb'nonce="[^"]*"', f'nonce="{NONCE}"'.encode(), body))
    return documents


def seed_inputs(attacks: dict[str, bytes]) -> list[bytes]:
    """The seed corpus: single documents, whole interactions, and the attacks."""
    plain = Control(Reason.SOLICITED, NonceCheck.STRICT, False, False, 50_000)
    small = Control(Reason.START_UP, NonceCheck.STRICT, False, False, 400)
    busy = Control(Reason.LOCAL_CHANGES, NonceCheck.WARN, True, True, 2_000)

    def doc(action: Action, *items: Item) -> bytes:
        return emit_dls(
            DLSMessage(nonce=NONCE, action=action.value, items=items or ACTION_ITEMS[action])
        )

    next_fragment = doc(Action.GET_NEXT_FRAGMENT)
    clean_up = doc(Action.CLEAN_UP)
    inputs = [encode(plain, [document]) for document in seed_documents()]
    inputs += [
        encode(small, [doc(Action.READ_ALL_ITEMS), next_fragment, next_fragment, clean_up]),
        encode(plain, [doc(Action.WRITE_ITEMS), doc(Action.READ_ITEMS), clean_up]),
        encode(busy, [doc(Action.WRITE_ITEMS), doc(Action.SOFTWARE_DEPLOYMENT), clean_up]),
        encode(plain, [doc(Action.FILE_DEPLOYMENT), clean_up]),
        encode(
            plain,
            [
                doc(
                    Action.RESTART,
                    Item(name="restart-type", value="FactoryReset"),
                    Item(name="restart-password", value="124816"),
                )
            ],
        ),
        encode(plain, [emit_dls(DLSMessage(nonce=NONCE, action="Reboot")), clean_up]),
        encode(plain, [b"", clean_up]),
    ]
    inputs += [encode(plain, [body]) for body in attacks.values()]
    return inputs


def write_corpus(directory: Path, attacks: dict[str, bytes]) -> int:
    """Write the seed corpus into `directory`; return the number of seeds."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = seed_inputs(attacks)
    for number, data in enumerate(seeds):
        (directory / f"seed-{number:03d}").write_bytes(data)
    return len(seeds)


def write_dictionary(path: Path) -> int:
    """libFuzzer's dictionary: one quoted token a line (hex escapes for non-ASCII)."""
    lines = []
    for token in TOKENS:
        raw = token.encode("utf-8")
        quoted = "".join(
            chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\x{b:02x}" for b in raw
        )
        lines.append(f'"{quoted}"')
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return len(lines)


# --------------------------------------------------------------------------- the mutator

_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True)


def _read(document: bytes) -> DLSMessage | None:
    """What a document means, read leniently by plain lxml (not provd's codec)."""
    try:
        root = etree.fromstring(document, _SAFE)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None:
        return None
    message = next(
        (el for el in root.iter() if str(el.tag).endswith("Message") and el is not root), None
    )
    if message is None:
        return None
    action = next((el for el in message.iter() if str(el.tag).endswith("Action")), None)
    items = []
    for element in message.iter():
        if not str(element.tag).endswith("}Item") and element.tag != "Item":
            continue
        raw = element.get("index")
        index = (
            int(raw)
            if raw is not None and raw.isascii() and raw.isdigit() and len(raw) < 9
            else None
        )
        items.append(
            Item(name=element.get("name") or "x", value=(element.text or "").strip(), index=index)
        )
    text = (action.text or "").strip() if action is not None else ""
    try:
        return DLSMessage(
            nonce=message.get("nonce") or NONCE, action=text or "ReadAllItems", items=tuple(items)
        )
    except ValueError:
        return None


def _mutate_item(rng: random.Random, item: Item) -> Item:
    choice = rng.randrange(4)
    if choice == 0:
        return Item(name=_pick(rng, _NAMES), value=item.value, index=item.index)
    if choice == 1:
        index = rng.choice((None, 0, 1, 3, 12, 10**18, 2**63, 10**30))
        return Item(name=item.name, value=item.value, index=index)
    if choice == 2:
        return Item(name=item.name, value=_pick(rng, _VALUES), index=item.index)
    return Item(name=item.name, value=_random_text(rng, rng.randrange(1, 40)), index=item.index)


def _mutate_message(rng: random.Random, message: DLSMessage) -> DLSMessage:
    items = list(message.items)
    nonce, action = message.nonce, message.action
    for _ in range(rng.randrange(1, 4)):
        choice = rng.randrange(7)
        if choice == 0:
            action = _pick(rng, _ACTIONS) or "ReadAllItems"
        elif choice == 1:
            nonce = _pick(rng, _NONCES) or NONCE
        elif choice == 2 or not items:
            items.insert(rng.randrange(len(items) + 1), _mutate_item(rng, Item(name="e164")))
        elif choice == 3:
            del items[rng.randrange(len(items))]
        elif choice == 4:
            items.extend(items[: rng.randrange(1, 50)] * rng.randrange(1, 20))
        else:
            at = rng.randrange(len(items))
            items[at] = _mutate_item(rng, items[at])
    try:
        return DLSMessage(nonce=nonce, action=action, items=tuple(items))
    except ValueError:
        return message


def _splice(rng: random.Random, text: bytes, insert: bytes) -> bytes:
    tags = [m.start() for m in re.finditer(rb"<", text)] or [0]
    at = tags[rng.randrange(len(tags))] if rng.random() < 0.8 else rng.randrange(len(text) + 1)
    return text[:at] + insert + text[at:]


def _bend(rng: random.Random, text: bytes) -> bytes:
    """One XML-level change around a meaningful document."""
    shapes: tuple[Callable[[bytes], bytes], ...] = (
        lambda t: re.sub(rb"<\?xml[^>]*\?>\s*", b"", t, count=1),
        lambda t: t.replace(
            b'encoding="utf-8"',
            rng.choice(
                (
                    b'encoding="ISO-8859-1"',
                    b'encoding="UTF-16"',
                    b'encoding="utf8"',
                    b'encoding="UTF-7"',
                )
            ),
        ),
        lambda t: t.replace(
            b"DLSMessage",
            rng.choice((b"DlsMessage", b"dlsmessage", b"d:DLSMessage", b"WorkpointMessage")),
        ),
        lambda t: re.sub(
            rb'xmlns="[^"]*"',
            rng.choice((b"", b'xmlns="urn:other"', b'xmlns:d="http://www.siemens.com/DLS"')),
            t,
            count=1,
        ),
        lambda t: _splice(
            rng,
            t,
            rng.choice(
                (b"<!-- c -->", b"<?pi x?>", b"<![CDATA[<x>&]]>", b"<Unknown a='1'>t</Unknown>")
            ),
        ),
        lambda t: _splice(
            rng,
            t,
            rng.choice(
                (b"&#0;", b"&#xD800;", b"&#x10FFFF;", b"&#13;", b"&amp;", b"&undefined;", b"&#65;")
            ),
        ),
        lambda t: _splice(
            rng,
            t,
            rng.choice(
                (
                    b"<Action>CleanUp</Action>",
                    b"<ItemList/>",
                    b"<Message nonce='1'/>",
                    b"<Item name='e164'>1</Item>",
                )
            ),
        ),
        lambda t: _splice(rng, t, b"<w>" * rng.randrange(1, 300) + b"</w>" * rng.randrange(0, 300)),
        lambda t: (
            b'<!DOCTYPE DLSMessage [<!ENTITY e SYSTEM "file:///dev/zero">]>'
            + t.replace(b"</Action>", b"&e;</Action>", 1)
        ),
        lambda t: t.replace(
            b"<Action>",
            b'<Action><xi:include xmlns:xi="http://www.w3.org/2001/XInclude"'
            b' href="file:///dev/zero" parse="text"/>',
            1,
        ),
        lambda t: b"\xef\xbb\xbf" + t,
        lambda t: t.replace(b"\n", rng.choice((b"\r\n", b"\r", b"\t", b""))),
        lambda t: t[: rng.randrange(len(t) + 1)],
    )
    return shapes[rng.randrange(len(shapes))](text)


def mutate(data: bytes, max_size: int, seed: int, fallback: Callable[[bytes, int], bytes]) -> bytes:
    """libFuzzer's custom mutator: mostly meaning, sometimes shape, sometimes plain bytes."""
    rng = random.Random(seed)
    control, documents = decode(data)
    documents = documents or [emit_dls(DLSMessage(nonce=NONCE, action="ReadAllItems"))]
    roll = rng.random()
    at = rng.randrange(len(documents))
    if roll < 0.2:
        documents[at] = fallback(documents[at], max(1, max_size - 1))
    elif roll < 0.3:
        choice = rng.randrange(4)
        if choice == 0:
            control = Control.from_byte(rng.randrange(256))
        elif choice == 1 and len(documents) > 1:
            del documents[at]
        elif choice == 2:
            documents.insert(at, documents[rng.randrange(len(documents))])
        else:
            action = rng.choice((Action.GET_NEXT_FRAGMENT, Action.CLEAN_UP, Action.READ_ALL_ITEMS))
            extra = emit_dls(DLSMessage(nonce=NONCE, action=action.value))
            documents.insert(rng.randrange(len(documents) + 1), extra)
    else:
        message = _read(documents[at])
        if message is not None and roll < 0.8:
            message = _mutate_message(rng, message)
            with contextlib.suppress(ValueError):  # a value XML cannot carry
                documents[at] = emit_dls(message)
        if message is None or roll >= 0.65:
            documents[at] = _bend(rng, documents[at])
    return encode(control, documents)[:max_size]
