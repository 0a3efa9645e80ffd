"""The contact-me sender's form and its refusals (the exchange itself is an integration test)."""

from __future__ import annotations

import pytest

from provd.lab.contactme import ContactMeError, contact_me_fields, send_contact_me


def test_fields_are_the_guides_with_optional_redirect() -> None:
    assert contact_me_fields() == {"ContactMe": "true"}
    assert contact_me_fields(dls_ip_addr="10.0.0.1", dls_ip_port=18443) == {
        "ContactMe": "true",
        "dls_ip_addr": "10.0.0.1",
        "dls_ip_port": "18443",
    }


@pytest.mark.parametrize("url", ["https://127.0.0.1:8085/", "ftp://phone/", "http://"])
def test_only_plain_http_urls_with_a_host_are_taken(url: str) -> None:
    with pytest.raises(ContactMeError, match="not an http URL"):
        send_contact_me(url)
