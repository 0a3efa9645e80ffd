"""Trust policies (spec §7.4) over real TLS on loopback: pin, ca, any, secure; TLS versions."""

from __future__ import annotations

import socket
import ssl
import warnings

import pytest
from OpenSSL import SSL

from provd.transport.errors import TransportError
from provd.transport.https import HttpsChannel
from provd.transport.tls import (
    TrustPolicy,
    certificate_names_host,
    handshake,
    load_pem_certificates,
    make_context,
    spki_sha256,
)
from tests.certs import Issued, make_leaf

from .pki import Pki
from .tls_server import Reply, TlsHttpServer


def post_once(url: str, trust: TrustPolicy) -> HttpsChannel:
    with HttpsChannel(url, trust=trust, connect_timeout=2, response_timeout=2) as ch:
        assert ch.post(b"x").status == 200
        return ch


def refusal(url: str, trust: TrustPolicy) -> TransportError:
    ch = HttpsChannel(url, trust=trust, connect_timeout=2, response_timeout=2)
    with ch, pytest.raises(TransportError) as err:
        ch.post(b"x")
    return err.value


def serving(cert: Issued, **kwargs: object) -> TlsHttpServer:
    return TlsHttpServer(cert, **kwargs)  # type: ignore[arg-type]


# -- pin (trust on first use) ---------------------------------------------------------


def test_pin_mode_without_pin_accepts_and_reports_the_server_key(pki: Pki) -> None:
    with serving(pki.self_signed) as srv:
        ch = post_once(srv.url(), TrustPolicy.pinned())

    assert ch.peer_spki_sha256 == spki_sha256(pki.self_signed.cert)


def test_pin_mode_with_the_pin_accepts_the_same_key(pki: Pki) -> None:
    pin = spki_sha256(pki.server.cert)
    with serving(pki.server) as srv:
        ch = post_once(srv.url(), TrustPolicy.pinned(pin.upper()))

    assert ch.peer_spki_sha256 == pin


def test_pin_mode_refuses_a_server_with_a_different_key(pki: Pki) -> None:
    with serving(pki.server) as srv:
        pin = post_once(srv.url(), TrustPolicy.pinned()).peer_spki_sha256
    assert pin is not None

    # Same CA, same names, another key: still refused.
    with serving(pki.server_again) as srv:
        err = refusal(srv.url(), TrustPolicy.pinned(pin))
        assert srv.seen == []  # not a byte of the request reached the impostor

    assert err.kind == "tls"
    assert err.message == "server key does not match the pinned key"
    assert err.peer_spki_sha256 == spki_sha256(pki.server_again.cert)


def test_pin_mode_keeps_the_first_key_for_the_channel_s_reconnects(pki: Pki) -> None:
    srv = serving(pki.server, respond=lambda s: Reply(close_after=True))
    with srv, HttpsChannel(srv.url(), trust=TrustPolicy.pinned()) as ch:
        ch.post(b"first")
        srv.present(pki.server_again)  # the key changes between two messages
        with pytest.raises(TransportError) as err:
            ch.post(b"second")

    assert err.value.kind == "tls"
    assert "pinned key" in err.value.message


# -- ca -------------------------------------------------------------------------------


def test_ca_mode_accepts_a_server_of_the_ca(pki: Pki) -> None:
    with serving(pki.server) as srv:
        post_once(srv.url(), TrustPolicy.from_ca_pem(pki.ca.cert_pem))


def test_ca_mode_reads_a_ca_file_with_several_cas(pki: Pki, tmp_path: object) -> None:
    assert pki.other_ca.cert_path is not None and pki.ca.cert_path is not None
    bundle = pki.other_ca.cert_pem + b"\n" + pki.ca.cert_pem
    path = pki.ca.cert_path.with_name("bundle.pem")
    path.write_bytes(bundle)
    assert len(load_pem_certificates(bundle)) == 2
    with serving(pki.server) as srv:
        post_once(srv.url(), TrustPolicy.from_ca_file(path))


def test_ca_mode_refuses_a_server_of_another_ca(pki: Pki) -> None:
    with serving(pki.other_server) as srv:
        err = refusal(srv.url(), TrustPolicy.from_ca_pem(pki.ca.cert_pem))

    assert err.kind == "tls"
    assert "not issued by a trusted CA" in err.message


def test_ca_mode_refuses_a_self_signed_server(pki: Pki) -> None:
    with serving(pki.self_signed) as srv:
        err = refusal(srv.url(), TrustPolicy.from_ca_pem(pki.ca.cert_pem))

    assert err.kind == "tls"
    assert "self-signed" in err.message


def test_ca_mode_refuses_an_expired_certificate(pki: Pki) -> None:
    with serving(pki.expired) as srv:
        err = refusal(srv.url(), TrustPolicy.from_ca_pem(pki.ca.cert_pem))

    assert err.kind == "tls"
    assert "expired" in err.message


def test_ca_mode_refuses_a_certificate_not_yet_valid(pki: Pki) -> None:
    with serving(pki.not_yet_valid) as srv:
        err = refusal(srv.url(), TrustPolicy.from_ca_pem(pki.ca.cert_pem))

    assert err.kind == "tls"
    assert "not yet valid" in err.message


def test_ca_mode_name_check_accepts_the_ip_and_dns_name_in_the_certificate(pki: Pki) -> None:
    trust = TrustPolicy.from_ca_pem(pki.ca.cert_pem, check_name=True)
    with serving(pki.server) as srv:
        post_once(srv.url(host="127.0.0.1"), trust)
        post_once(srv.url(host="localhost"), trust)


def test_ca_mode_name_check_refuses_a_certificate_for_another_name(pki: Pki) -> None:
    with serving(pki.named_elsewhere) as srv:
        # Without the check the chain alone is enough.
        post_once(srv.url(), TrustPolicy.from_ca_pem(pki.ca.cert_pem))
        err = refusal(srv.url(), TrustPolicy.from_ca_pem(pki.ca.cert_pem, check_name=True))

    assert err.kind == "tls"
    assert "does not name 127.0.0.1" in err.message


def test_name_matching_follows_subject_alt_name(pki: Pki) -> None:
    wild = make_leaf(pki.ca, "w", dns=["*.dls.example", "Phone.Example"], ips=["10.0.0.1"]).cert
    assert certificate_names_host(wild, "a.dls.example")
    assert certificate_names_host(wild, "phone.example.")
    assert certificate_names_host(wild, "10.0.0.1")
    assert not certificate_names_host(wild, "dls.example")
    assert not certificate_names_host(wild, "a.b.dls.example")
    assert not certificate_names_host(wild, "10.0.0.2")
    assert not certificate_names_host(pki.named_elsewhere.cert, "127.0.0.1")


# -- any ------------------------------------------------------------------------------


def test_any_mode_accepts_self_signed_expired_and_foreign_certificates(pki: Pki) -> None:
    for cert in (pki.self_signed, pki.expired, pki.other_server):
        with serving(cert) as srv:
            ch = post_once(srv.url(), TrustPolicy.accept_any())
        assert ch.peer_spki_sha256 == spki_sha256(cert.cert)


# -- secure (mutual TLS, spec §7.4) ----------------------------------------------------


def secure_policy(pki: Pki, *server_cas: Issued, check_name: bool = False) -> TrustPolicy:
    return TrustPolicy.secure(
        [ca.cert for ca in server_cas],
        pki.client.key,
        [pki.client.cert, pki.client_ca.cert],
        check_name=check_name,
    )


def test_secure_mode_presents_the_client_certificate_from_memory(pki: Pki) -> None:
    with serving(pki.server, client_ca=pki.client_ca) as srv:
        post_once(srv.url(), secure_policy(pki, pki.other_ca, pki.ca, check_name=True))
        (seen,) = srv.seen

    assert seen.client_cn == "phone-0001"


def test_server_requiring_a_client_certificate_refuses_a_client_without(pki: Pki) -> None:
    # The control for the test above: the server really does require one.
    with serving(pki.server, client_ca=pki.client_ca) as srv:
        err = refusal(srv.url(), TrustPolicy.pinned())
        assert srv.seen == []

    assert err.kind in ("tls", "closed")


def test_secure_mode_refuses_a_server_not_from_dls_server_ca(pki: Pki) -> None:
    with serving(pki.other_server, client_ca=pki.client_ca) as srv:
        err = refusal(srv.url(), secure_policy(pki, pki.ca))
        assert srv.seen == []

    assert err.kind == "tls"
    assert "not issued by a trusted CA" in err.message


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_secure_mode_refuses_a_server_that_asks_no_client_certificate(
    pki: Pki, version: ssl.TLSVersion
) -> None:
    # Secure Mode is mutual TLS: a secure port that does not want the phone's certificate
    # is not the server the phone was bound to (issue 8, TLS matrix).
    with serving(pki.server, max_version=version) as srv:
        err = refusal(srv.url(), secure_policy(pki, pki.ca))
        assert srv.seen == []

    assert err.kind == "tls"
    assert "did not ask for the phone's client certificate" in err.message


def test_a_client_certificate_refused_after_a_tls_1_3_handshake_is_reported_as_the_alert(
    pki: Pki,
) -> None:
    # TLS 1.3: the server checks the phone's certificate after the phone's handshake is
    # done, so the alert and the reset meet the phone's first write. The journal must say
    # the certificate was refused, not merely "connection reset".
    with serving(pki.server, client_ca=pki.other_ca, max_version=ssl.TLSVersion.TLSv1_3) as srv:
        err = refusal(srv.url(), secure_policy(pki, pki.ca))
        assert srv.seen == []

    assert err.kind == "tls", err
    assert "alert" in err.message


def test_secure_mode_presents_an_ec_client_key(pki: Pki) -> None:
    client = make_leaf(pki.client_ca, "phone-ec", client=True, dns=[], ips=[], key_type="ec")
    trust = TrustPolicy.secure([pki.ca.cert], client.key, [client.cert])
    with serving(pki.server, client_ca=pki.client_ca) as srv:
        post_once(srv.url(), trust)
        assert srv.seen[0].client_cn == "phone-ec"


def test_secure_mode_client_key_not_matching_its_certificate_is_refused(pki: Pki) -> None:
    stranger = make_leaf(pki.client_ca, "phone-0002", client=True, dns=[], ips=[])
    trust = TrustPolicy.secure([pki.ca.cert], stranger.key, [pki.client.cert])
    with pytest.raises(TransportError) as err:
        make_context(trust)

    assert err.value.kind == "tls"
    assert "client key and certificate unusable" in err.value.message


def test_trust_policy_repr_shows_no_key_material(pki: Pki) -> None:
    text = repr(secure_policy(pki, pki.ca))
    assert "client_key" not in text and "PRIVATE" not in text


def test_trust_policy_refuses_incoherent_settings(pki: Pki) -> None:
    with pytest.raises(ValueError):
        TrustPolicy.pinned("not-hex")
    with pytest.raises(ValueError):
        TrustPolicy(mode="any", check_name=True)
    with pytest.raises(ValueError):
        TrustPolicy(mode="ca")
    with pytest.raises(ValueError):
        TrustPolicy(mode="secure", ca_certs=(pki.ca.cert,))
    with pytest.raises(ValueError):
        load_pem_certificates(b"no certificate here")


# -- protocol versions and options ----------------------------------------------------


def test_tls_1_2_server_is_accepted(pki: Pki) -> None:
    with serving(pki.server, max_version=ssl.TLSVersion.TLSv1_2) as srv:
        post_once(srv.url(), TrustPolicy.accept_any())
        assert srv.seen[0].tls_version == "TLSv1.2"


def old_tls_server(pki: Pki) -> TlsHttpServer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return serving(
            pki.server,
            min_version=ssl.TLSVersion.TLSv1,
            max_version=ssl.TLSVersion.TLSv1_1,
            ciphers="DEFAULT:@SECLEVEL=0",
        )


def lax_context(ctx: SSL.Context) -> SSL.Context:
    # Lower the security level so that only the minimum version can refuse TLS 1.1
    # (OpenSSL 3's default level alone would refuse it too).
    ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    return ctx


def test_server_limited_to_tls_1_1_is_refused_by_the_minimum_version(pki: Pki) -> None:
    with old_tls_server(pki) as srv:
        control = lax_context(SSL.Context(SSL.TLS_CLIENT_METHOD))
        control.set_min_proto_version(SSL.TLS1_VERSION)
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as raw:
                tls = handshake(
                    raw, control, TrustPolicy.accept_any(), "127.0.0.1", srv.port, timeout=2
                )
                tls.close()
        except TransportError as exc:
            pytest.skip(f"this OpenSSL cannot speak TLS 1.1 even at security level 0: {exc}")

        ctx = lax_context(make_context(TrustPolicy.accept_any()))
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
        with raw, pytest.raises(TransportError) as err:
            handshake(raw, ctx, TrustPolicy.accept_any(), "127.0.0.1", srv.port, timeout=2)
        assert err.value.kind == "tls"
        assert "protocol version" in err.value.message

        # And through the channel, with the context as shipped.
        assert refusal(srv.url(), TrustPolicy.accept_any()).kind == "tls"


def test_context_disables_compression_and_renegotiation() -> None:
    ctx = make_context(TrustPolicy.accept_any())
    # pyOpenSSL returns the options in force (its stub says None).
    options: int = ctx.set_options(0)  # type: ignore[func-returns-value,assignment]
    assert options & SSL.OP_NO_COMPRESSION
    assert options & vars(SSL)["OP_NO_RENEGOTIATION"]
