"""Parse and emit WPI documents (spec §2.3).

Parsing is lenient where real servers are sloppy (no declaration, no or another
namespace, `DlsMessage`, wrapped text, unknown elements) and strict where no
server needs anything: no DTD, no entities, no processing of external
resources, a size cap and a depth cap. Emitting produces exactly one shape, the
guide's, because some servers read the phone's document with regular
expressions [F].

Every refusal is a :class:`DocumentError` whose `reason` names the cause in a
few words, fit for a journal line and a `cleanup-reason`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from provd.wpi.errors import RemoteProtocolError
from provd.wpi.model import (
    DLS_NAMESPACE,
    XSI_NAMESPACE,
    DLSMessage,
    Fragment,
    Item,
    ItemStatus,
    Reason,
    ReplyStatus,
    WorkpointMessage,
)
from provd.wpi.xmltext import is_xml_text as is_xml_text  # noqa: PLC0414 - re-exported

#: spec §2.3: `max-body`, default 1 MiB.
DEFAULT_MAX_BODY = 1024 * 1024
#: Root, Message, ItemList, Item; two more levels of slack for elements that
#: the grammar does not use (and which are ignored).
MAX_DEPTH = 6
_XINCLUDE = "http://www.w3.org/2001/XInclude"
#: An index is a small number; a longer digit string is `invalid index`, not a bignum.
_MAX_INDEX_DIGITS = 19  # 2**63 and below


class DocumentError(RemoteProtocolError):
    """A document provd refuses; `reason` says why (spec §2.3)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What a parsed document may cost."""

    max_body: int = DEFAULT_MAX_BODY
    max_depth: int = MAX_DEPTH


DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------- parsing


def _local(tag: object) -> str:
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rpartition("}")[2]


def _check_bytes(body: bytes, limits: Limits) -> None:
    if len(body) > limits.max_body:
        raise DocumentError(f"document too large ({len(body)} bytes, limit {limits.max_body})")
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError("document is not UTF-8")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"invalid UTF-8 at byte {exc.start}") from None
    if "\x00" in text:
        # No XML 1.0 document holds a NUL; a UTF-16 body without a BOM does, and
        # would otherwise slip past the DTD check below.
        raise DocumentError("document is not UTF-8 (NUL bytes)")
    # A DTD is refused before any parser sees it: this closes entity expansion
    # (billion laughs) and external entities (XXE) whatever the parser does.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise DocumentError("DTD or entity declaration not allowed")
    head = text[:200].lower()
    if head.startswith("<?xml") and "encoding" in head.partition("?>")[0]:
        declared = head.partition("encoding")[2].lstrip(" =").strip("\"' ")
        name = declared.split('"')[0].split("'")[0].strip()
        if name.replace("-", "").replace("_", "") not in ("utf8",):
            raise DocumentError(f"document is not UTF-8 (declares {name})")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        # UTF-8 whatever the document declares (spec §2.3 [G p.30]): a declared
        # UTF-7 or Latin-1 must not change how the bytes are read.
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,  # keeps libxml2's own caps: depth 256, text node 10 MB
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def _too_deep(root: etree._Element, max_depth: int) -> bool:
    # An element at depth max_depth + 1 exists (the root is depth 1); XPath
    # runs in C, so this costs next to nothing for a normal document.
    return bool(root.xpath("boolean(" + "/".join(["*"] * max_depth) + ")"))


def parse_tree(body: bytes, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Parse `body` into an element tree under the caps, or raise DocumentError."""
    _check_bytes(body, limits)
    if not body.strip():
        raise DocumentError("empty document")
    too_deep = f"nesting deeper than {limits.max_depth} levels"
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        message = _syntax_message(exc)
        # libxml2 stops a document nested past 256 levels early, before it
        # has built it: the 10,000-deep document costs microseconds.
        if "Excessive depth" in message:
            raise DocumentError(too_deep) from None
        raise DocumentError(f"not well-formed XML ({message})") from None
    if _too_deep(root, limits.max_depth):
        raise DocumentError(too_deep)
    if root.xpath("boolean(//*[namespace-uri() = $ns])", ns=_XINCLUDE):
        raise DocumentError("XInclude not allowed")
    return root


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    message = str(exc.msg or exc).splitlines()[0] if (exc.msg or str(exc)) else "syntax error"
    return message[:120]


def _single(parent: etree._Element, name: str, what: str) -> etree._Element | None:
    found = [child for child in parent if _local(child.tag) == name]
    if len(found) > 1:
        raise DocumentError(f"more than one {what} element")
    return found[0] if found else None


#: XML's whitespace (XML 1.0 production S); a no-break space is a value's own.
_XML_SPACE = " \t\r\n"


def _text(element: etree._Element) -> str:
    # [G p.33] examples wrap text over lines: strip what surrounds the value.
    return (element.text or "").strip(_XML_SPACE)


def _items(message: etree._Element) -> tuple[Item, ...]:
    item_lists = [child for child in message if _local(child.tag) == "ItemList"]
    if len(item_lists) > 1:
        raise DocumentError("more than one ItemList element")
    if not item_lists:
        return ()
    items: list[Item] = []
    # The hot loop of a large WriteItems: lxml's C-level iteration over the
    # Item children by local name, one attribute dict per element.
    for element in item_lists[0].iterchildren("{*}Item", "Item"):
        attrib = element.attrib
        name = (attrib.get("name") or "").strip(_XML_SPACE)
        if not name:
            raise DocumentError("Item without a name")
        raw_index = attrib.get("index")
        index: int | None = None
        status: ItemStatus | None = None
        if raw_index is not None:
            digits = raw_index.strip(_XML_SPACE)
            # ASCII digits only: int() would also take "1_0" or Arabic-Indic digits.
            if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_INDEX_DIGITS:
                index = int(digits)
            else:
                status = ItemStatus.INVALID_INDEX
        text = element.text
        items.append(
            Item(
                name=name, value=text.strip(_XML_SPACE) if text else "", index=index, status=status
            )
        )
    return tuple(items)


def _message(root: etree._Element, root_name: str) -> etree._Element:
    if _local(root.tag).lower() != root_name.lower():
        raise DocumentError(f"root element is {_local(root.tag) or '?'}, not {root_name}")
    message = _single(root, "Message", "Message")
    if message is None:
        raise DocumentError("no Message element")
    return message


def _nonce(message: etree._Element) -> str:
    nonce = (message.get("nonce") or "").strip()
    if not nonce:
        raise DocumentError("missing nonce")
    return nonce


def parse_dls(body: bytes, limits: Limits = DEFAULT_LIMITS) -> DLSMessage:
    """Parse a server document, or raise DocumentError naming the reason."""
    message = _message(parse_tree(body, limits), "DLSMessage")
    nonce = _nonce(message)
    action = _single(message, "Action", "Action")
    if action is None or not _text(action):
        raise DocumentError("no Action element")
    return DLSMessage(nonce=nonce, action=_text(action), items=_items(message))


def parse_workpoint(body: bytes, limits: Limits = DEFAULT_LIMITS) -> WorkpointMessage:
    """Parse a phone document (the server's side), or raise DocumentError."""
    message = _message(parse_tree(body, limits), "WorkpointMessage")
    nonce = _nonce(message)
    rfc = _single(message, "ReasonForContact", "ReasonForContact")
    if rfc is None:
        raise DocumentError("no ReasonForContact element")
    try:
        reason = Reason(_text(rfc))
    except ValueError:
        raise DocumentError(f"unknown reason {_text(rfc)[:40]!r}") from None
    status_text = rfc.get("status")
    try:
        status = ReplyStatus(status_text) if status_text is not None else None
        fragment_text = message.get("fragment")
        fragment = Fragment(fragment_text) if fragment_text is not None else None
        max_items = int(message.get("maxItems", "-1"))
    except ValueError as exc:
        raise DocumentError(f"bad attribute value ({exc})") from None
    has_list = _single(message, "ItemList", "ItemList") is not None
    items: tuple[Item, ...] | None = _phone_items(message) if has_list else None
    return WorkpointMessage(
        nonce=nonce,
        reason=reason,
        items=items,
        action=rfc.get("action"),
        status=status,
        max_items=max_items,
        fragment=fragment,
    )


def _phone_items(message: etree._Element) -> tuple[Item, ...]:
    item_list = _single(message, "ItemList", "ItemList")
    assert item_list is not None
    # In a phone document the status attribute is the phone's verdict on the item.
    statuses = [el.get("status") for el in item_list if _local(el.tag) == "Item"]
    result = []
    for item, status in zip(_items(message), statuses, strict=True):
        if status is None:
            result.append(item)
            continue
        try:
            verdict = ItemStatus(status)
        except ValueError:
            raise DocumentError(f"unknown item status {status[:40]!r}") from None
        result.append(Item(name=item.name, value=item.value, index=item.index, status=verdict))
    return tuple(result)


# --------------------------------------------------------------------------- emitting

XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
_ROOT_ATTRS = (
    f'xmlns="{DLS_NAMESPACE}" xmlns:xsi="{XSI_NAMESPACE}" xsi:schemaLocation="{DLS_NAMESPACE}"'
)


_TEXT_ENTITIES = {"\r": "&#13;"}


_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _attr(value: str) -> str:
    # Always double quotes: servers read the phone's document with regular
    # expressions (spec §2.3 [F]); quoteattr would switch to single quotes.
    return '"' + escape(value, _ATTR_ENTITIES) + '"'


def emit_item(item: Item) -> str:
    """One `Item` element in the fixed shape: `name`, `index`, `status` (spec §2.3)."""
    attrs = f"name={_attr(item.name)}"
    if item.index is not None:
        attrs += f' index="{item.index}"'
    if item.status is not None:
        return f"<Item {attrs} status={_attr(item.status.value)}/>"
    return f"<Item {attrs}>{escape(item.value, _TEXT_ENTITIES)}</Item>"


def _check_emittable(items: Iterable[Item]) -> None:
    for item in items:
        if not (is_xml_text(item.name) and is_xml_text(item.value)):
            raise ValueError(f"item {item.name!r} holds characters XML cannot carry")


def _check_text(*values: str) -> None:
    for value in values:
        if not is_xml_text(value):
            raise ValueError("a nonce or action holds characters XML cannot carry")


def emit_workpoint(message: WorkpointMessage) -> bytes:
    """The phone's document, byte for byte in the one shape provd emits."""
    if message.items is not None:
        _check_emittable(message.items)
    _check_text(message.nonce, message.action or "")
    attrs = f'nonce={_attr(message.nonce.upper())} maxItems="{message.max_items}"'
    if message.fragment is not None:
        attrs += f' fragment="{message.fragment.value}"'
    rfc_attrs = ""
    if message.action is not None:
        rfc_attrs += f" action={_attr(message.action)}"
    if message.status is not None:
        rfc_attrs += f' status="{message.status.value}"'
    lines = [
        XML_DECLARATION.rstrip("\n"),
        f"<WorkpointMessage {_ROOT_ATTRS}>",
        f"<Message {attrs}>",
        f"<ReasonForContact{rfc_attrs}>{message.reason.value}</ReasonForContact>",
    ]
    lines.extend(_item_list(message.items))
    lines += ["</Message>", "</WorkpointMessage>", ""]
    return "\n".join(lines).encode("utf-8")


def _item_list(items: tuple[Item, ...] | None) -> list[str]:
    if items is None:
        return []
    if not items:
        return ["<ItemList/>"]
    return ["<ItemList>", *(emit_item(item) for item in items), "</ItemList>"]


def emit_dls(message: DLSMessage) -> bytes:
    """A server document in the guide's form (used by the lab server and tests)."""
    _check_emittable(message.items)
    _check_text(message.nonce, message.action)
    lines = [
        XML_DECLARATION.rstrip("\n"),
        f"<DLSMessage {_ROOT_ATTRS}>",
        f"<Message nonce={_attr(message.nonce)}>",
        f"<Action>{escape(message.action)}</Action>",
    ]
    if message.items:
        lines += ["<ItemList>", *(emit_item(item) for item in message.items), "</ItemList>"]
    lines += ["</Message>", "</DLSMessage>", ""]
    return "\n".join(lines).encode("utf-8")


def envelope_size(message: WorkpointMessage) -> int:
    """Bytes of `message` without its items, for fragment budgeting."""
    empty = WorkpointMessage(
        nonce=message.nonce,
        reason=message.reason,
        items=(),
        action=message.action,
        status=message.status,
        max_items=message.max_items,
        fragment=Fragment.FINAL,
    )
    # "<ItemList/>" becomes "<ItemList>\n" + items + "</ItemList>": 12 more bytes.
    return len(emit_workpoint(empty)) + len("<ItemList>\n</ItemList>") - len("<ItemList/>")


def item_size(item: Item) -> int:
    """Bytes `item` adds to a document, its line break included."""
    return len(emit_item(item).encode("utf-8")) + 1
