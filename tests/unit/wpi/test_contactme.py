"""The contact-me decision of spec §4.1: answers, queueing and the redirect policy."""

from __future__ import annotations

import pytest

from provd.wpi.contactme import (
    CONTACT_PATH,
    DEFAULT_REDIRECT_PORT,
    MAX_BODY,
    MAX_FIELDS,
    ContactMeDecision,
    decide,
    precheck,
    redirect_allowed,
    split_target,
)

FORM = "application/x-www-form-urlencoded"


def post(body: bytes, content_type: str | None = FORM) -> ContactMeDecision:
    return decide("POST", CONTACT_PATH, "", content_type, body)


def get(
    query: str, *, allow_redirect: list[str] | None = None, secure_mode: bool = False
) -> ContactMeDecision:
    return decide(
        "GET",
        CONTACT_PATH,
        query,
        None,
        b"",
        allow_redirect=allow_redirect or [],
        secure_mode=secure_mode,
    )


def test_post_of_guide_example_is_answered_204_and_asks_for_solicited() -> None:
    # [G p.15]: Content-type with a charset parameter, body ContactMe=true
    decision = post(b"ContactMe=true", "application/x-www-form-urlencoded; charset=utf-8")
    assert decision.status == 204
    assert decision.solicited
    assert decision.redirect is None


def test_get_with_query_string_asks_for_solicited() -> None:
    decision = get("ContactMe=true")
    assert (decision.status, decision.solicited) == (204, True)


@pytest.mark.parametrize("value", ["TRUE", "True", "tRuE"])
def test_contact_me_true_is_compared_without_case(value: str) -> None:
    assert get(f"ContactMe={value}").solicited


@pytest.mark.parametrize("query", ["ContactMe=false", "ContactMe=", "ContactMe=yes", "", "x=1"])
def test_contact_me_not_true_is_answered_204_and_queues_nothing(query: str) -> None:
    decision = get(query)
    assert (decision.status, decision.solicited) == (204, False)


def test_first_value_of_a_repeated_contact_me_field_counts() -> None:
    assert get("ContactMe=true&ContactMe=false").solicited
    assert not get("ContactMe=false&ContactMe=true").solicited


def test_post_body_field_wins_over_query_field() -> None:
    decision = decide("POST", CONTACT_PATH, "ContactMe=true", FORM, b"ContactMe=false")
    assert not decision.solicited
    assert decide("POST", CONTACT_PATH, "ContactMe=true", None, b"").solicited


@pytest.mark.parametrize(
    "path",
    ["/", "/contact_dls.html", "/contact_dls.html/ContactDLS/", "/CONTACT_DLS.HTML/ContactDLS"],
)
def test_other_path_is_answered_404(path: str) -> None:
    decision = decide("POST", path, "", FORM, b"ContactMe=true")
    assert (decision.status, decision.solicited) == (404, False)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "OPTIONS", "get", "PATCH"])
def test_other_method_is_answered_405(method: str) -> None:
    decision = decide(method, CONTACT_PATH, "ContactMe=true", FORM, b"")
    assert (decision.status, decision.solicited) == (405, False)


def test_body_over_4_kib_is_answered_413() -> None:
    body = b"ContactMe=true&pad=" + b"x" * MAX_BODY
    decision = post(body)
    assert (decision.status, decision.solicited) == (413, False)
    assert post(b"ContactMe=true&pad=" + b"x" * (MAX_BODY - 19)).status == 204


def test_precheck_refuses_declared_length_over_4_kib_before_the_body() -> None:
    assert precheck("POST", CONTACT_PATH, MAX_BODY + 1) == ContactMeDecision(
        status=413, reason=f"body of {MAX_BODY + 1} bytes"
    )
    assert precheck("POST", CONTACT_PATH, MAX_BODY) is None
    assert precheck("POST", CONTACT_PATH, None) is None


def test_precheck_answers_path_before_method() -> None:
    precheck_status = precheck("PUT", "/elsewhere", 0)
    assert precheck_status is not None and precheck_status.status == 404


def test_post_body_of_another_content_type_is_answered_400() -> None:
    for content_type in ("text/plain", "application/json", None):
        decision = post(b"ContactMe=true", content_type)
        assert (decision.status, decision.solicited) == (400, False)


@pytest.mark.parametrize(
    "body",
    [b"ContactMe=tru\xff", b"ContactMe=%ff%fe", b"&".join(b"f%d=1" % i for i in range(40))],
)
def test_undecodable_or_flooded_form_is_answered_400(body: bytes) -> None:
    decision = post(body + b"&ContactMe=true")
    assert (decision.status, decision.solicited) == (400, False)


def test_a_few_extra_fields_are_tolerated() -> None:
    extra = "&".join(f"f{i}=1" for i in range(MAX_FIELDS - 1))
    assert get(f"ContactMe=true&{extra}").solicited


def test_redirect_to_an_address_not_allowed_is_ignored_but_solicited_stays() -> None:
    decision = get("ContactMe=true&dls_ip_addr=198.51.100.7&dls_ip_port=18443")
    assert decision.solicited
    assert decision.redirect is None
    assert "not in allow-redirect" in decision.reason


def test_redirect_to_an_allowed_address_is_taken() -> None:
    decision = get(
        "ContactMe=true&dls_ip_addr=192.0.2.10&dls_ip_port=10443",
        allow_redirect=["192.0.2.10"],
    )
    assert decision.redirect == ("192.0.2.10", 10443)


def test_redirect_without_port_goes_to_the_default_mode_port() -> None:
    decision = get("ContactMe=true&dls_ip_addr=192.0.2.10", allow_redirect=["192.0.2.10"])
    assert decision.redirect == ("192.0.2.10", DEFAULT_REDIRECT_PORT)


def test_redirect_allow_list_compares_ipv6_spellings_and_host_names_without_case() -> None:
    decision = get(
        "ContactMe=true&dls_ip_addr=2001:db8:0:0::1&dls_ip_port=443",
        allow_redirect=["2001:DB8::1"],
    )
    assert decision.redirect == ("2001:db8::1", 443)
    named = get("ContactMe=true&dls_ip_addr=DLS.Example", allow_redirect=["dls.example"])
    assert named.redirect == ("dls.example", DEFAULT_REDIRECT_PORT)


def test_redirect_is_never_taken_in_secure_mode() -> None:
    decision = get(
        "ContactMe=true&dls_ip_addr=192.0.2.10&dls_ip_port=18444",
        allow_redirect=["192.0.2.10"],
        secure_mode=True,
    )
    assert decision.solicited
    assert decision.redirect is None


@pytest.mark.parametrize("port", ["0", "65536", "-1", "abc", "²", "123456"])
def test_redirect_with_a_bad_port_is_ignored(port: str) -> None:
    decision = get(
        f"ContactMe=true&dls_ip_addr=192.0.2.10&dls_ip_port={port}",
        allow_redirect=["192.0.2.10"],
    )
    assert decision.solicited
    assert decision.redirect is None


def test_redirect_fields_of_a_contact_me_not_true_change_nothing() -> None:
    decision = get("ContactMe=false&dls_ip_addr=192.0.2.10", allow_redirect=["192.0.2.10"])
    assert (decision.solicited, decision.redirect) == (False, None)


def test_split_target_takes_origin_and_absolute_forms() -> None:
    assert split_target("/contact_dls.html/ContactDLS?ContactMe=true") == (
        CONTACT_PATH,
        "ContactMe=true",
    )
    assert split_target("http://phone:8085/contact_dls.html/ContactDLS") == (CONTACT_PATH, "")


def test_an_allow_list_entry_with_a_port_allows_that_port_only() -> None:
    allow = ["10.0.0.1:18443", "[2001:DB8::1]", "Dls.Lab"]
    assert redirect_allowed(allow, "10.0.0.1", 18443)
    assert not redirect_allowed(allow, "10.0.0.1", 18444)
    assert not redirect_allowed(allow, "10.0.0.2", 18443)
    assert redirect_allowed(allow, "2001:db8:0::1", 1)
    assert redirect_allowed(allow, "dls.lab", 18443)
    assert not redirect_allowed(["not:a:port:x"], "not", 1)
    assert not redirect_allowed([], "10.0.0.1", 18443)


def test_a_redirect_to_an_allowed_host_on_another_port_is_not_taken() -> None:
    decision = decide(
        "GET",
        "/contact_dls.html/ContactDLS",
        "ContactMe=true&dls_ip_addr=10.0.0.1&dls_ip_port=1",
        None,
        b"",
        allow_redirect=["10.0.0.1:18443"],
    )
    assert decision.solicited and decision.redirect is None
    assert "not in allow-redirect" in decision.reason


@pytest.mark.parametrize(
    ("query", "allow", "secure", "refused"),
    [
        ("ContactMe=true&dls_ip_addr=10.0.0.9", [], False, True),
        ("ContactMe=true&dls_ip_addr=10.0.0.9&dls_ip_port=x", ["10.0.0.9"], False, True),
        ("ContactMe=true&dls_ip_addr=10.0.0.9", ["10.0.0.9"], True, True),
        ("ContactMe=true&dls_ip_addr=10.0.0.9", ["10.0.0.9"], False, False),
        ("ContactMe=true", [], False, False),
    ],
)
def test_a_redirect_not_followed_is_flagged_for_the_journal(
    query: str, allow: list[str], secure: bool, refused: bool
) -> None:
    decision = decide(
        "GET", CONTACT_PATH, query, None, b"", allow_redirect=allow, secure_mode=secure
    )
    assert decision.solicited
    assert decision.redirect_refused is refused
