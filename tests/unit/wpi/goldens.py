"""Helpers for the golden documents of `tests/data/golden/` (the guide's XML examples).

The guide's side is read with a plain lxml parser, never with provd's codec, so a
comparison between a guide document and one provd emitted does not depend on the
code under test. `structure()` reduces a document to what the golden tests compare
[issue 2]: element names and their order, attributes and their values (order
irrelevant), text stripped; the nonce is normalized away.
"""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from provd.wpi.model import Item, ItemStatus

#: tests/unit/wpi/goldens.py -> tests/data/golden
GOLDEN_DIR = Path(__file__).resolve().parents[2] / "data" / "golden"
#: tests/unit/wpi/goldens.py -> the repository root
REPO_ROOT = Path(__file__).resolve().parents[3]

NONCE_PLACEHOLDER = "<nonce>"

Attributes = tuple[tuple[str, str], ...]
Node = tuple[str, Attributes, str, tuple["Node", ...]]


def golden(name: str) -> bytes:
    """The bytes of one golden document."""
    return (GOLDEN_DIR / name).read_bytes()


def golden_names(kind: str = "") -> list[str]:
    """Names of the golden documents, those containing `kind` (e.g. `-server-`)."""
    return sorted(path.name for path in GOLDEN_DIR.glob("*.xml") if kind in path.name)


def _plain_tree(body: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(body, parser)


def _node(element: etree._Element, *, root: bool) -> Node:
    attributes = {
        str(name): NONCE_PLACEHOLDER if name == "nonce" else str(value)
        for name, value in element.attrib.items()
    }
    if root:
        # Namespace declarations are not attributes in lxml; compare them as if they were.
        for prefix, uri in element.nsmap.items():
            attributes["xmlns" if prefix is None else f"xmlns:{prefix}"] = uri
    children = tuple(_node(child, root=False) for child in element if isinstance(child.tag, str))
    return (
        str(element.tag),
        tuple(sorted(attributes.items())),
        (element.text or "").strip(),
        children,
    )


def structure(body: bytes) -> Node:
    """The comparable structure of a document (nonce normalized, text stripped)."""
    return _node(_plain_tree(body), root=True)


def message_attributes(body: bytes) -> dict[str, str]:
    """The attributes of `Message` as the document carries them."""
    message = _plain_tree(body)[0]
    return {str(name): str(value) for name, value in message.attrib.items()}


def without_message_attributes(node: Node, names: set[str]) -> Node:
    """`node` (a root) with the named attributes removed from its `Message` child."""
    tag, attributes, text, children = node
    message_tag, message_attributes_, message_text, message_children = children[0]
    kept = tuple((key, value) for key, value in message_attributes_ if key not in names)
    message = (message_tag, kept, message_text, message_children)
    return (tag, attributes, text, (message, *children[1:]))


def guide_items(name: str) -> tuple[Item, ...]:
    """The items of a golden document, read with plain lxml (independent of the codec)."""
    root = _plain_tree(golden(name))
    items: list[Item] = []
    for element in root.iter():
        if not isinstance(element.tag, str) or etree.QName(element).localname != "Item":
            continue
        index = element.get("index")
        status = element.get("status")
        items.append(
            Item(
                name=element.get("name", ""),
                value=(element.text or "").strip(),
                index=int(index) if index is not None else None,
                status=ItemStatus(status) if status is not None else None,
            )
        )
    return tuple(items)


def guide_nonce(name: str) -> str:
    """The nonce of a golden document."""
    return str(_plain_tree(golden(name))[0].get("nonce"))


# --------------------------------------------------------------------------- provd's shape

XML_DECLARATION_LINE = '<?xml version="1.0" encoding="utf-8"?>'
ROOT_LINE = (
    '<WorkpointMessage xmlns="http://www.siemens.com/DLS" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.siemens.com/DLS">'
)
_MESSAGE_LINE = re.compile(
    r'<Message nonce="[0-9A-F]+" maxItems="-?\d+"( fragment="(next|final)")?>'
)
_REASON_LINE = re.compile(
    r'<ReasonForContact( action="[^"<>]*")?( status="(accepted|failed|busy)")?>'
    r"(start-up|local-changes|inventory-changes|status|solicited|reply-to|clean-up)"
    r"</ReasonForContact>"
)
_ITEM_LINE = re.compile(
    r'<Item name="[^"]*"( index="\d+")?'
    r'( status="(failed|unknown item|read only|invalid index|unexpected item|not supported'
    r'|invalid data|undefined status)"/>|>[^<]*</Item>)'
)


def assert_fixed_shape(body: bytes) -> None:
    """provd's one output shape (spec §2.3): declaration, root and namespaces exactly
    as the guide's, then `Message` (attributes `nonce`, `maxItems`, `fragment` in that
    order, nonce upper-case hex), `ReasonForContact` on one line (`action` before
    `status`), one `Item` per line (`name`, `index`, `status`)."""
    lines = body.decode("utf-8").split("\n")
    assert lines[0] == XML_DECLARATION_LINE
    assert lines[1] == ROOT_LINE
    assert _MESSAGE_LINE.fullmatch(lines[2]), lines[2]
    assert _REASON_LINE.fullmatch(lines[3]), lines[3]
    rest = lines[4:]
    assert rest[-3:] == ["</Message>", "</WorkpointMessage>", ""], rest[-3:]
    item_lines = rest[:-3]
    if item_lines and item_lines != ["<ItemList/>"]:
        assert item_lines[0] == "<ItemList>"
        assert item_lines[-1] == "</ItemList>"
        for line in item_lines[1:-1]:
            assert _ITEM_LINE.fullmatch(line), line
