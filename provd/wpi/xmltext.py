"""What text XML 1.0 can carry (spec §2.3): the one rule, for the codec and the item checks.

On its own, without lxml, so that the item store's checks (imported before READY=1)
do not load the XML parser that only an interaction needs (issue 8, start to READY).
"""

from __future__ import annotations

import re

#: What XML 1.0 cannot carry (its production Char, spec §2.3): one regular expression,
#: since it runs on every item of every document, both ways.
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def is_xml_text(value: str) -> bool:
    """True when `value` can stand in an XML 1.0 document (spec §2.3)."""
    return _NOT_XML_TEXT.search(value) is None
