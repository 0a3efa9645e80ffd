"""The item catalog: the shipped data, drop-ins, and errors with file and line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from provd.store.catalog import Catalog, CatalogError, load_catalog, load_catalog_files
from provd.store.checkconfig import check_catalog
from provd.store.itemspec import Access, ItemType

CONFIG = Path(__file__).resolve().parents[3] / "config"
SHIPPED = CONFIG / "items.toml"

#: spec §3.2: the basic items, in the order of the first message.
BASIC_ORDER = [
    "device-type",
    "related-device-type",
    "software-type",
    "related-software-type",
    "software-version",
    "related-software-version",
    "contact-me-uri",
    "mac-addr",
    "configuration-changed-flag",
    "part-number",
    "e164",
    "basic-e164",
    "mobility-enabled",
    "sip-mobility-state",
]

#: Items named in the spec and in the item sections of both guide notes.
NAMED_ITEMS = [
    *BASIC_ORDER,
    "configuration-attached-flag",
    "configuration-attached-number",
    "gigabit-ethernet",
    "gigabit-ethernet-enabled",
    "backlight-type",
    "user-pwd",
    "user-pwd-unicode",
    "ipaddress",
    "dhcp",
    "lldp-enabled",
    "vlan-method",
    "dls-addr",
    "dls-contact-interval",
    "dls-chunk-size",
    "dls-mode-secure",
    "dls-secure-port",
    "dls-server-ca",
    "dls-client-certificate",
    "goto-secure-mode",
    "secure-mode-data",
    "max-pin-retries",
    "bootstrapping-tan",
    "wbm-server-certificate",
    "wbm-server-certificate-info",
    "cleanup-reason",
    "send-solicited",
    "restart-type",
    "restart-password",
    "file-server",
    "file-port",
    "file-username",
    "file-pwd",
    "file-path",
    "file-name",
    "file-https-base-url",
    "file-type",
    "file-action",
    "file-priority",
    "file-sw-type",
    "file-sw-version",
    "file-deployment-status",
    "file-deployment-date",
    "file-deployment-time",
    "file-deployment-name",
    "file-deployment-type",
    "dcmp-url",
    "dcmp-interval",
    "sntp-addr",
    "sntp-tz-offset",
    "auto-daylight-save",
    "daylight-save",
    "daylight-save-zone-id",
    "daylight-save-minutes",
    "reg-addr",
    "reg-port",
    "reg-ttl",
    "register-by-name",
    "registrar-addr",
    "registrar-port",
    "rtp-base-port",
    "server-type",
    "outbound-proxy-user",
    "default-domain",
    "sip-transport-user",
    "transaction-timer",
    "transaction-timer-f",
    "registration-backoff-timer",
    "key-label-unicode",
    "function-key-def",
    "forwarding-type",
    "forwarding-dest",
    "passw-expiry-days",
    "passw-warn-days",
    "force-update",
    "pwd-retries",
    "pwd-min-reset-period",
    "pwd-suspended-duration",
    "admin-pwd-status",
    "user-pwd-expiry",
    "min-user-passw-length",
    "user-pwd-history",
    "user-pwd-status",
    "pwd-upper",
    "pwd-lower",
    "pwd-digit",
    "pwd-punct",
    "pwd-sequence-length",
    "cfu-ext-activated",
    "cfu-ext-address",
    "Canonical-lookup-international-code",
    "Canonical-lookup-local-code",
    "ldap-server-address",
    "admin-pwd",
    "min-admin-passw-length",
    "ssh-enable",
    "ssh-password",
    "sgnl-gateway-addr",
    "snmp-trap-addr",
    "qos-layer2",
    "vlan-id",
    "codec-rank",
    "ldap-pwd",
    "locked-config-menus",
    "trace-level",
    "feature-availability",
    "key-modules",
    "blf-modules",
    "slk-modules",
    "km15-modules",
]


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog(SHIPPED, CONFIG / "items.d")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problem_of(paths: list[Path]) -> str:
    with pytest.raises(CatalogError) as caught:
        load_catalog_files(paths)
    return str(caught.value)


# --------------------------------------------------------------------------- shipped data


def test_shipped_catalog_covers_every_item_named_in_spec_and_notes(shipped: Catalog) -> None:
    missing = [name for name in NAMED_ITEMS if name not in shipped]
    assert missing == []


def test_guide_example_of_unknown_item_is_not_in_catalog(shipped: Catalog) -> None:
    assert "socketed-headset-mode" not in shipped  # [G p.78]


def test_basic_items_follow_spec_order(shipped: Catalog) -> None:
    assert [spec.name for spec in shipped.basic_items()] == BASIC_ORDER


def test_inventory_items_are_the_attached_hardware(shipped: Catalog) -> None:
    names = [spec.name for spec in shipped.inventory_items()]
    assert names == ["key-modules", "blf-modules", "slk-modules", "km15-modules"]


def test_shipped_limits_are_the_guides(shipped: Catalog) -> None:
    timer = shipped.get("transaction-timer")
    assert timer is not None and (timer.min, timer.max, timer.default) == (3700, 32000, "32000")
    retries = shipped.get("pwd-retries")
    assert retries is not None and retries.choices == ("0", "2", "3", "4", "5")
    sequence = shipped.get("pwd-sequence-length")
    assert sequence is not None and (sequence.min, sequence.max, sequence.exclude) == (0, 24, (1,))
    forwarding = shipped.get("forwarding-type")
    assert forwarding is not None and (forwarding.min, forwarding.max) == (0, 8)
    assert forwarding.indexed
    label = shipped.get("key-label-unicode")
    assert label is not None and label.max_length == 24 and label.indexed
    uri = shipped.get("contact-me-uri")
    assert uri is not None and uri.max_length == 255 and uri.access is Access.RO


def test_shipped_secure_mode_entries(shipped: Catalog) -> None:
    goto = shipped.get("goto-secure-mode")
    assert goto is not None
    assert goto.type is ItemType.ENUM and goto.choices == ("nopin", "pin")
    assert goto.actions == ("WriteItems",)
    data = shipped.get("secure-mode-data")
    assert data is not None and data.secret and data.access is Access.WO
    assert data.requires == (("goto-secure-mode", "pin"),)
    ca = shipped.get("dls-server-ca")
    assert ca is not None and ca.certificate and ca.indexed and ca.min_index == 0
    client = shipped.get("dls-client-certificate")
    assert client is not None and client.secret and client.access is Access.WO


def test_passwords_are_write_only_secrets(shipped: Catalog) -> None:
    for name in ("user-pwd", "admin-pwd", "file-pwd", "ldap-pwd", "ssh-password", "sip-pwd"):
        spec = shipped.get(name)
        assert spec is not None
        assert (spec.access, spec.secret) == (Access.WO, True), name


def test_item_spec_is_immutable(shipped: Catalog) -> None:
    spec = shipped.get("sntp-addr")
    assert spec is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.default = "evil.example"  # type: ignore[misc]


def test_catalog_iterates_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "items.toml",
        'format = 1\n[item."b"]\ntype = "string"\n[item."a"]\ntype = "int"\n',
    )
    catalog = load_catalog_files([path])
    assert [spec.name for spec in catalog] == ["b", "a"]
    assert len(catalog) == 2
    assert catalog.position("a") == 1


# --------------------------------------------------------------------------- drop-ins


def test_dropin_overrides_a_single_field_and_keeps_the_others(tmp_path: Path) -> None:
    dropins = tmp_path / "items.d"
    write(dropins / "50-site.toml", '[item."sntp-addr"]\ndefault = "time.example.org"\n')
    catalog = load_catalog(SHIPPED, dropins)
    spec = catalog.get("sntp-addr")
    assert spec is not None
    assert spec.default == "time.example.org"
    assert spec.type is ItemType.HOST and spec.nullable  # untouched shipped fields


def test_dropin_adds_an_item_after_the_shipped_ones(tmp_path: Path) -> None:
    dropins = tmp_path / "items.d"
    write(
        dropins / "50-acme.toml",
        '[item."acme-gain"]\ntype = "int"\nmin = 0\nmax = 15\ndefault = 8\n',
    )
    catalog = load_catalog(SHIPPED, dropins)
    spec = catalog.get("acme-gain")
    assert spec is not None and (spec.min, spec.max, spec.default) == (0, 15, "8")
    assert list(catalog)[-1].name == "acme-gain"


def test_dropins_apply_in_lexical_order_later_wins(tmp_path: Path) -> None:
    dropins = tmp_path / "items.d"
    write(dropins / "20-late.toml", '[item."dls-port"]\ndefault = 20443\n')
    write(dropins / "10-early.toml", '[item."dls-port"]\ndefault = 10443\nmin = 1000\n')
    write(dropins / "README", "not a catalog file [[[")
    catalog = load_catalog(SHIPPED, dropins)
    spec = catalog.get("dls-port")
    assert spec is not None and (spec.default, spec.min) == ("20443", 1000)


def test_missing_dropin_directory_is_no_dropins(tmp_path: Path) -> None:
    catalog = load_catalog(SHIPPED, tmp_path / "absent")
    assert catalog.sources == (SHIPPED,)


def test_dropin_can_turn_an_item_off(tmp_path: Path) -> None:
    dropins = tmp_path / "items.d"
    write(dropins / "50-off.toml", '[item."ssh-enable"]\nsupported = false\n')
    spec = load_catalog(SHIPPED, dropins).get("ssh-enable")
    assert spec is not None and not spec.supported


# --------------------------------------------------------------------------- errors


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", 'format = 1\n\n[item."x"]\ntype = "int"\nmin = = 3\n')
    message = problem_of([path])
    assert message.startswith(f"{path}:5: TOML syntax error")


def test_min_above_max_names_file_and_line_of_the_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "items.toml",
        'format = 1\n[item."ok"]\ntype = "string"\n\n[item."x"]\ntype = "int"\nmax = 3\nmin = 5\n',
    )
    assert problem_of([path]) == f"{path}:8: item 'x': min (5) > max (3)"


def test_unknown_field_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "items.toml", '[item."x"]\ntype = "int"\nmaximum = 3\n')
    assert problem_of([path]) == f"{path}:3: item 'x': unknown field 'maximum'"


def test_unknown_type_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "items.toml", '\n\n[item.x]\ntype = "float"\n')
    assert problem_of([path]).startswith(f"{path}:4: item 'x': unknown type 'float'")


def test_default_invalid_for_its_own_type_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "items.toml",
        '[item."a"]\ntype = "bool"\n\n[item."b"]\ntype = "int"\nmax = 9\ndefault = 10\n',
    )
    assert problem_of([path]) == (
        f"{path}:7: item 'b': default '10' is not a valid int for this item"
    )


def test_error_from_a_dropin_names_the_dropin(tmp_path: Path) -> None:
    dropin = write(tmp_path / "items.d" / "50-x.toml", '\n[item."dls-port"]\nmin = 70000\n')
    assert problem_of([SHIPPED, dropin]) == (
        f"{dropin}:3: item 'dls-port': min (70000) > max (65535)"
    )


def test_new_item_without_type_is_an_error(tmp_path: Path) -> None:
    dropin = write(tmp_path / "50-x.toml", '[item."acme-new"]\ndefault = "x"\n')
    assert problem_of([SHIPPED, dropin]) == f"{dropin}:1: item 'acme-new': new item without a type"


def test_enum_without_choices_and_misplaced_limits_are_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path / "items.toml",
        '[item."e"]\ntype = "enum"\n[item."s"]\ntype = "string"\nmin = 1\n'
        '[item."i"]\ntype = "int"\nmin_index = 1\n',
    )
    message = problem_of([path])
    assert f"{path}:1: item 'e': an enum needs choices" in message  # the header
    assert f"{path}:5: item 's': min applies to int items only" in message
    assert f"{path}:8: item 'i': min_index applies to indexed items only" in message


def test_duplicate_basic_position_and_unknown_requirement_are_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path / "items.toml",
        '[item."a"]\ntype = "string"\nbasic = 1\n[item."b"]\ntype = "string"\nbasic = 1\n'
        '[item."c"]\ntype = "string"\nrequires = { "nothing" = "x" }\n',
    )
    message = problem_of([path])
    assert f"{path}:6: item 'b': basic position 1 is also 'a''s" in message
    assert f"{path}:9: item 'c': requires unknown item 'nothing'" in message


def test_wrong_field_value_types_are_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path / "items.toml",
        '[item."a"]\ntype = "string"\nsecret = "yes"\n[item."b"]\ntype = "int"\nmax = "9"\n'
        '[item."c"]\ntype = "string"\naccess = "rx"\n[item."d"]\ntype = "uri"\n'
        'actions = ["Reboot"]\n',
    )
    message = problem_of([path])
    assert f"{path}:3: item 'a': secret must be true or false" in message
    assert f"{path}:6: item 'b': max must be an integer" in message
    assert f"{path}:9: item 'c': access must be rw, ro or wo" in message
    assert f"{path}:12: item 'd': unknown action 'Reboot'" in message


def test_unsupported_format_and_top_level_key_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "items.toml", 'format = 2\n\n[items."x"]\ntype = "int"\n')
    message = problem_of([path])
    assert f"{path}:1: unsupported catalog format 2" in message
    assert f"{path}:3: unknown top-level key 'items'" in message


def test_unreadable_catalog_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    assert problem_of([missing]).startswith(f"{missing}:1: cannot read catalog file")


# --------------------------------------------------------------------------- check-config


def test_check_config_finds_nothing_in_the_shipped_catalog() -> None:
    assert check_catalog([SHIPPED, CONFIG / "items.d"]) == []


def test_check_config_lists_every_problem_of_every_file(tmp_path: Path) -> None:
    dropins = tmp_path / "items.d"
    broken = write(dropins / "10-broken.toml", "[item.\n")
    wrong = write(dropins / "20-wrong.toml", '[item."dls-port"]\ndefault = "port"\n')
    problems = check_catalog([SHIPPED, dropins])
    assert len(problems) == 2
    assert problems[0].startswith(f"{broken}:1: TOML syntax error")
    assert problems[1].startswith(f"{wrong}:2: item 'dls-port': default 'port' is not a valid")


def test_check_config_warns_when_protocol_items_are_missing(tmp_path: Path) -> None:
    path = write(tmp_path / "items.toml", '[item."mac-addr"]\ntype = "mac"\n')
    problems = check_catalog([path])
    assert f"{path}:1: item 'mac-addr' must be a basic item [G p.27]" in problems
    assert f"{path}:1: item 'cleanup-reason' is missing (spec §3.4, §7)" in problems
