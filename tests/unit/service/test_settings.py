"""Settings: defaults < file < drop-ins (lexical) < --set, errors located, the shipped file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from provd.service.settings import (
    Settings,
    SettingsError,
    check_settings,
    default_dropin_dir,
    load_settings,
    setting_keys,
    to_tables,
)
from provd.service.settings_model import DefaultTrust, NonceCheck, UdevRule

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "config" / "provd.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    return tmp_path / "provd.toml"


@pytest.fixture
def dropins(tmp_path: Path) -> Path:
    return tmp_path / "provd.toml.d"


# --- layering -----------------------------------------------------------------------------------


def test_no_files_and_no_flags_give_the_built_in_defaults() -> None:
    settings = load_settings(None, None, [])
    assert settings == Settings()
    assert settings.server.url == ""
    assert settings.contact_me.port == 8085
    assert settings.tls.default_trust is DefaultTrust.PIN
    assert settings.protocol.nonce_check is NonceCheck.STRICT
    assert settings.retry.m == 10 and settings.retry.k == 2000 and settings.retry.cap == 900


def test_the_file_overrides_defaults_and_keeps_the_rest(conf: Path) -> None:
    write(conf, '[contact-me]\nport = 18085\n[poll]\nurl = "http://dls:18080/"\n')
    settings = load_settings(conf, None, [])
    assert settings.contact_me.port == 18085
    assert settings.contact_me.contact_gap == 300  # same table, untouched key
    assert settings.poll.url == "http://dls:18080/"
    assert settings.sources == (str(conf),)


def test_drop_ins_apply_in_lexical_order_and_merge_key_by_key(conf: Path, dropins: Path) -> None:
    write(conf, "[contact-me]\nport = 1000\ncontact-gap = 60\n[changes]\ndebounce = 1\n")
    write(dropins / "50-site.toml", "[contact-me]\nport = 5000\n")
    write(dropins / "10-image.toml", "[contact-me]\nport = 1010\ncontact-gap = 10\n")
    write(dropins / "README", "not toml [at all\n")
    write(dropins / "90-off.toml.disabled", "[contact-me]\nport = 9\n")
    write(dropins / ".#99-editing.toml", "[contact-me]\nport = 9\n")
    settings = load_settings(conf, dropins, [])
    assert settings.contact_me.port == 5000  # 50-site after 10-image
    assert settings.contact_me.contact_gap == 10  # 10-image over the file
    assert settings.changes.debounce == 1  # the file, untouched by drop-ins
    assert settings.sources == (
        str(conf),
        str(dropins / "10-image.toml"),
        str(dropins / "50-site.toml"),
    )


def test_set_flags_win_over_every_file_in_their_order(conf: Path, dropins: Path) -> None:
    write(conf, "[contact-me]\nport = 1000\n")
    write(dropins / "10.toml", "[contact-me]\nport = 2000\n")
    settings = load_settings(
        conf, dropins, ["contact-me.port=18085", "changes.debounce=2", "changes.debounce=3.5"]
    )
    assert settings.contact_me.port == 18085
    assert settings.changes.debounce == 3.5
    assert settings.sources[-1] == "--set"


def test_set_values_are_toml_when_they_parse_and_strings_otherwise() -> None:
    settings = load_settings(
        None,
        None,
        [
            "tls.name-check=true",
            "server.url=https://dls.example.com:443/x",  # not TOML: a string
            "contact-me.listen=::",
            "device.e164=4989700",  # a string setting keeps the digits as text
            'hooks.installer-command=["/usr/sbin/my-installer", "-v"]',
            "contact-me.allow-redirect=10.0.0.1:18443, dls.example.com",
            "files.type-limits={ PIC = 1000, LOGO = 2000 }",
        ],
    )
    assert settings.tls.name_check is True
    assert settings.server.url == "https://dls.example.com:443/x"
    assert settings.contact_me.listen == "::"
    assert settings.device.e164 == "4989700"
    assert settings.hooks.installer_command == ("/usr/sbin/my-installer", "-v")
    assert settings.contact_me.allow_redirect == ("10.0.0.1:18443", "dls.example.com")
    assert dict(settings.files.type_limits) == {"PIC": 1000, "LOGO": 2000}


def test_missing_config_file_is_an_error_unless_missing_ok(conf: Path) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(conf, None, [])
    assert err.value.file == str(conf)
    assert load_settings(conf, None, [], missing_ok=True) == Settings()


def test_drop_in_directory_belongs_to_the_file(conf: Path) -> None:
    assert default_dropin_dir(conf) == conf.parent / "provd.toml.d"


# --- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("dls.example.com", "https://dls.example.com:18443/DeploymentService/LoginService"),
        ("10.1.2.3:9443", "https://10.1.2.3:9443/DeploymentService/LoginService"),
        ("https://dls", "https://dls:18443/DeploymentService/LoginService"),
        ("https://dls/", "https://dls:18443/DeploymentService/LoginService"),
        ("https://dls:1/provisioningService", "https://dls:1/provisioningService"),
        ("[2001:db8::1]", "https://[2001:db8::1]:18443/DeploymentService/LoginService"),
    ],
)
def test_server_url_is_completed_with_default_port_and_path(given: str, url: str) -> None:
    settings = load_settings(None, None, [f"server.url={given}"])
    assert settings.server.url == url
    assert settings.server.configured


@pytest.mark.parametrize(
    "bad", ["http://dls", "https://user:pw@dls", "https://dls:99999", "https://", "ftp://dls"]
)
def test_server_url_that_is_not_https_to_a_host_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match=r"server\.url"):
        load_settings(None, None, [f"server.url={bad}"])


def test_paths_under_state_dir_follow_it_unless_set_absolute(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        None,
        [
            f"paths.state-dir={tmp_path / 'state'}",
            "paths.files-dir=deployed",
            f"paths.staging-dir={tmp_path / 'elsewhere'}",
            f"paths.runtime-dir={tmp_path / 'run'}",
        ],
    )
    assert settings.paths.secure_dir == tmp_path / "state" / "secure"
    assert settings.paths.files_dir == tmp_path / "state" / "deployed"
    assert settings.paths.staging_dir == tmp_path / "elsewhere"
    assert settings.control.socket == tmp_path / "run" / "control.sock"


def test_a_relative_path_without_a_base_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"tls\.ca-file: 'ca\.pem' must be an absolute path"):
        load_settings(None, None, ["tls.ca-file=ca.pem"])


def test_empty_optional_path_means_none() -> None:
    assert load_settings(None, None, ['device.description-file=""']).device.description_file is None


def test_udev_rules_read_as_array_of_tables(conf: Path) -> None:
    write(
        conf,
        '[[udev.rules]]\nitem = "key-modules"\nsubsystem = "usb"\n'
        'match = { ID_VENDOR_ID = "1a2b" }\n'
        '[[udev.rules]]\nitem = "headsets"\nsubsystem = "sound"\n',
    )
    udev = load_settings(conf, None, []).udev
    assert udev.rules == (
        UdevRule(item="key-modules", subsystem="usb", match={"ID_VENDOR_ID": "1a2b"}),
        UdevRule(item="headsets", subsystem="sound"),
    )


def test_allow_redirect_keeps_its_entries_and_refuses_malformed_ones() -> None:
    entries = ["10.0.0.1:18443", "[2001:DB8::1]", "Dls.Lab"]
    quoted = ", ".join(f'"{e}"' for e in entries)
    loaded = load_settings(None, None, [f"contact-me.allow-redirect=[{quoted}]"])
    assert loaded.contact_me.allow_redirect == tuple(entries)
    with pytest.raises(SettingsError):
        load_settings(None, None, ['contact-me.allow-redirect=["10.0.0.1:99999"]'])


def test_ui_sub_tables_merge_across_layers_and_become_driver_options(
    conf: Path, dropins: Path
) -> None:
    write(
        conf,
        '[ui]\ndriver = "evdev"\n[ui.evdev]\nname-match = "*Keypad*"\n'
        'keymap = { "0x160" = "ok" }\n[ui.display]\npath = "/dev/lcd"\n',
    )
    write(dropins / "50.toml", '[ui.evdev]\ndevice = "/dev/input/event3"\n')
    ui = load_settings(conf, dropins, ['ui.evdev={ keymap = { KEY_ESC = "ignore" } }']).ui
    assert ui.options() == {
        "name_match": "*Keypad*",
        "device": "/dev/input/event3",
        "keymap": {"0x160": "ok", "KEY_ESC": "ignore"},  # merged key by key, at depth
        "display": "/dev/lcd",
    }
    console = load_settings(None, None, ["ui.driver=console", 'ui.console={tty="/dev/ttyS0"}'])
    assert console.ui.options() == {"tty": "/dev/ttyS0"}
    assert load_settings(None, None, []).ui.options() == {}  # socket: nothing to configure


def test_lists_are_replaced_not_merged(conf: Path, dropins: Path) -> None:
    write(conf, '[contact-me]\nallow-redirect = ["10.0.0.1", "10.0.0.2"]\n')
    write(dropins / "50.toml", '[contact-me]\nallow-redirect = ["10.0.0.3"]\n')
    assert load_settings(conf, dropins, []).contact_me.allow_redirect == ("10.0.0.3",)


def test_device_identity_lists_only_what_is_set() -> None:
    device = load_settings(
        None, None, ["device.software-version=V3 R5.1", "device.device-type=OpenStage 60"]
    ).device
    assert device.identity() == {"device-type": "OpenStage 60", "software-version": "V3 R5.1"}


def test_to_tables_names_every_setting() -> None:
    tables = to_tables(Settings())
    assert [f"{g}.{k}" for g, table in tables.items() for k in table] == list(setting_keys())
    assert tables["paths"]["secure-dir"] == "/var/lib/provd/secure"
    assert tables["tls"]["ca-file"] == ""


# --- errors, with file and line ------------------------------------------------------------------


def test_toml_syntax_error_names_file_and_line(conf: Path) -> None:
    write(conf, '[server]\nurl = "https://dls"\n\n[contact-me]\nport = = 3\n')
    with pytest.raises(SettingsError) as err:
        load_settings(conf, None, [])
    assert (err.value.file, err.value.line) == (str(conf), 5)
    assert str(err.value).startswith(f"{conf}:5: TOML syntax")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "[contact-me]\n# a comment\nportt = 1\n",
            3,
            "unknown setting 'portt' (did you mean 'port'?)",
        ),
        ("\n[contactme]\nport = 1\n", 2, "unknown setting group 'contactme'"),
        ("[contact-me]\nlisten = '::'\nport = '8085'\n", 3, "must be an integer, not a string"),
        ("[contact-me]\nport = 70000\n", 2, "contact-me.port: must be 0..65535"),
        ("[tls]\n\ndefault-trust = 'sometimes'\n", 3, "must be one of pin, ca, any"),
        ("[server]\nurl = 'http://dls'\n", 2, "HTTPS only"),
        ("[tls]\nname-check = 1\n", 2, "must be true or false, not an integer"),
        ("contact-me.port = -1\n", 1, "must be 0..65535"),
        ("[protocol]\nnonce-check = 'strict'\nmax-message = 10\n", 3, "must be ≥ 1024"),
        ("[device]\nmac-addr = '00:11:22'\n", 2, "not a MAC address"),
        ("[poll]\nurl = 'dls/'\n", 2, "http:// or https://"),
        ("[udev]\nrules = [{ item = 'x' }]\n", 2, "a rule has keys item, subsystem"),
        ("[tls]\ndefault-trust = 'ca'\n", 2, "'ca' needs tls.ca-file"),
        ("[retry]\nm = 100\ncap = 50\n", 3, "cap must not be below m"),
        ("[log]\nlevel = 'loud'\n", 2, "must be one of debug, info, warning, error"),
        ("server = 'dls'\n", 1, "must be a table of settings"),
        ("[ui]\ntimeout = 1\n[ui.evdev]\nname = 'x'\n", 3, "unknown key 'name'"),
        ("[ui.display]\npath = 3\n", 1, "path must be a string"),
        ("[ui.evdev]\nkeymap = { KEY_OK = 1 }\n", 1, "keymap maps names to strings"),
    ],
)
def test_semantic_errors_name_file_line_and_key(
    dropins: Path, text: str, line: int, words: str
) -> None:
    # In a drop-in, so the located file is not simply "the" settings file.
    path = write(dropins / "20-site.toml", text)
    with pytest.raises(SettingsError) as err:
        load_settings(None, dropins, [])
    assert err.value.file == str(path)
    assert err.value.line == line
    assert words in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_error_points_at_the_layer_whose_value_won(conf: Path, dropins: Path) -> None:
    write(conf, "[contact-me]\nport = 99999\n")
    write(dropins / "10.toml", "[changes]\n\n\ndebounce = -1\n")
    with pytest.raises(SettingsError) as err:
        load_settings(conf, dropins, ["contact-me.port=8086"])
    [problem] = err.value.problems
    assert (problem.file, problem.line, problem.key) == (
        str(dropins / "10.toml"),
        4,
        "changes.debounce",
    )


def test_every_problem_is_collected(conf: Path) -> None:
    write(conf, "[contact-me]\nport = 99999\nlisten = 'nowhere'\n[nope]\n")
    with pytest.raises(SettingsError) as err:
        load_settings(conf, None, ["timeouts.connect=0", "retry"])
    messages = [str(p) for p in err.value.problems]
    assert len(messages) == 5
    assert any(m.startswith(f"{conf}:4: [nope]: unknown setting group") for m in messages)
    assert any(m.startswith(f"{conf}:2: contact-me.port:") for m in messages)
    assert any(m.startswith(f"{conf}:3: contact-me.listen:") for m in messages)
    assert any(
        m.startswith("--set timeouts.connect=0: timeouts.connect: must be") for m in messages
    )
    assert any(m.startswith("--set retry: expected group.key=value") for m in messages)
    assert "(and 4 more)" in str(err.value)


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ("contact-me.prot=1", "unknown setting 'prot' (did you mean 'port'?)"),
        ("poll=1", "expected group.key=value"),
        ("polling.url=x", "unknown setting group 'polling' (did you mean 'poll'?)"),
        ("retry.k=999", "retry.k: must be ≥ 1000"),
    ],
)
def test_set_errors_name_the_flag(flag: str, words: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(None, None, [flag])
    assert err.value.file == f"--set {flag}"
    assert err.value.line is None
    assert words in str(err.value)


def test_unreadable_file_is_an_error_not_a_crash(conf: Path) -> None:
    conf.write_bytes(b"[server]\nurl = '\xff'\n")
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(conf, None, [])


# --- check-config -------------------------------------------------------------------------------


def test_check_config_reports_errors_with_their_place(conf: Path) -> None:
    write(conf, "[contact-me]\nport = 99999\n")
    assert check_settings(conf, None, []) == [f"error: {conf}:2: contact-me.port: must be 0..65535"]


def test_check_config_warns_about_risky_or_incomplete_settings(tmp_path: Path) -> None:
    lines = check_settings(
        None,
        None,
        [
            "tls.default-trust=any",
            f"tls.ca-file={tmp_path / 'missing.pem'}",
            "poll.url=http://dls:18080/poll",
            "contact-me.allow-redirect=10.0.0.9",
        ],
    )
    assert all(line.startswith("warning: ") for line in lines)
    joined = "\n".join(lines)
    for key in ("server.url", "tls.default-trust", "tls.ca-file", "poll.url", "allow-redirect"):
        assert key in joined
    assert "device:" in joined


def test_check_config_of_a_complete_setup_is_silent() -> None:
    assert check_settings(None, None, ["server.url=dls.lab", "device.interface=eth0"]) == []


# --- the shipped file ---------------------------------------------------------------------------


def test_shipped_file_loads_to_the_built_in_defaults() -> None:
    assert load_settings(SHIPPED, None, []) == Settings()


def _commented_settings(text: str) -> str:
    """The shipped file with every `#key = value` setting line uncommented."""
    return re.sub(r"(?m)^#(?=[a-z][a-z0-9-]* = )", "", text)


def test_shipped_file_documents_the_real_defaults(tmp_path: Path) -> None:
    uncommented = write(tmp_path / "all.toml", _commented_settings(SHIPPED.read_text()))
    data = tomllib.loads(uncommented.read_text())
    documented = {f"{group}.{key}" for group, table in data.items() for key in table}
    assert documented == set(setting_keys())  # nothing missing, nothing extra
    assert load_settings(uncommented, None, []) == Settings()


def test_every_shipped_setting_has_a_comment_giving_its_default() -> None:
    lines = SHIPPED.read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if not re.match(r"#[a-z][a-z0-9-]* = ", line):
            continue
        block = []
        for above in reversed(lines[:number]):
            if not above.startswith("#"):
                break
            block.append(above)
        prose = [b for b in block if not re.match(r"#[a-z][a-z0-9-]* = ", b)]
        if not prose or "default" not in " ".join(prose).lower():
            undocumented.append(line)
    assert undocumented == []
