"""The parser settings behind the codec's text check (defence in depth, spec §2.3).

`parse_dls` refuses `<!DOCTYPE` and `<!ENTITY` before lxml sees a document, so the proof's
attack cases never reach the parser's own settings (issue 8, hostile documents). These
tests feed the parser directly, as if the first check were gone: it must still resolve
no external entity, fetch nothing and expand no entity.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from provd.wpi.codec import _parser


def text_of(document: bytes) -> str:
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError:
        return ""  # refused outright: nothing read either
    return "".join(str(part) for part in root.itertext())


def test_an_external_entity_to_a_local_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("CANARY-7f3a")
    document = f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'.encode()

    assert "CANARY-7f3a" not in text_of(document)


def test_an_internal_entity_is_not_expanded() -> None:
    document = b'<!DOCTYPE r [<!ENTITY a "AAAAAAAAAA">]><r>&a;&a;&a;</r>'

    assert "AAAAAAAAAA" not in text_of(document)
