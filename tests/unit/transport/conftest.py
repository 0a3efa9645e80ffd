"""Fixtures for the transport tests: a small PKI and an echoing HTTPS server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .pki import Pki, make_pki
from .tls_server import TlsHttpServer


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(pki: Pki) -> Iterator[TlsHttpServer]:
    """An echoing HTTPS server presenting `pki.server`."""
    with TlsHttpServer(pki.server) as srv:
        yield srv
