"""Sending a contact-me to a phone, as a provisioning server does [G p.14-15].

A POST of the form `ContactMe=true` (plus, optionally, `dls_ip_addr` and
`dls_ip_port`, which ask the phone to answer another server) to the phone's
`contact-me-uri`, plain HTTP; real phones also take a GET with the same
fields in the query string [F]. The phone answers 204 at once.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Mapping
from typing import Literal

from provd.wpi.contactme import CONTACT_PATH

#: [G p.12, p.14] the phone's contact-me path and port.
CONTACT_ME_PORT = 8085


class ContactMeError(Exception):
    """The phone could not be reached (no HTTP status to report)."""


def contact_me_fields(
    *, dls_ip_addr: str | None = None, dls_ip_port: int | None = None, contact_me: str = "true"
) -> dict[str, str]:
    """The form fields of a contact-me [G p.14]."""
    fields = {"ContactMe": contact_me}
    if dls_ip_addr is not None:
        fields["dls_ip_addr"] = dls_ip_addr
    if dls_ip_port is not None:
        fields["dls_ip_port"] = str(dls_ip_port)
    return fields


def send_contact_me(
    url: str,
    *,
    dls_ip_addr: str | None = None,
    dls_ip_port: int | None = None,
    method: Literal["POST", "GET"] = "POST",
    fields: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> int:
    """Send a contact-me to the phone at `url`; return the HTTP status (204 expected).

    `url` is the phone's `contact-me-uri`; without a path the guide's path is
    used, without a port 8085. `fields` replaces the form entirely (tests of
    malformed requests). Raises ContactMeError when no answer arrives.
    """
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ContactMeError(f"not an http URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else CONTACT_PATH
    form = (
        dict(fields)
        if fields is not None
        else contact_me_fields(dls_ip_addr=dls_ip_addr, dls_ip_port=dls_ip_port)
    )
    encoded = urllib.parse.urlencode(form)
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port or CONTACT_ME_PORT, timeout=timeout
    )
    try:
        if method == "GET":
            connection.request("GET", f"{path}?{encoded}")
        else:
            # [G p.15] the guide's example request, content type and all.
            connection.request(
                "POST",
                path,
                body=encoded.encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            )
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        raise ContactMeError(f"contact-me to {parts.hostname}:{parts.port}: {exc}") from None
    finally:
        connection.close()
