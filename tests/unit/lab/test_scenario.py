"""Scenarios: the TOML format, the Python form, selection of a script, and what is refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from provd.lab.scenario import (
    Scenario,
    ScenarioError,
    Script,
    Step,
    builtin_names,
    load_scenario,
    parse_scenario,
    script,
)
from provd.wpi.model import Item, Reason


def test_every_shipped_scenario_loads() -> None:
    names = builtin_names()
    assert {"demo", "basic", "hostile", "actions"} <= set(names)
    for name in names:
        assert load_scenario(name).name == name


def test_demo_scenario_tells_the_story_of_issue_2() -> None:
    demo = load_scenario("demo")
    chosen = demo.script_for(1, Reason.START_UP)
    assert chosen is not None
    assert [s.action for s in chosen.steps] == ["ReadAllItems", "WriteItems", "CleanUp"]
    assert Item(name="socketed-headset-mode", value="true") in chosen.steps[1].items
    assert Item(name="ldap-server-address", value="ldap.example.com", index=1) in (
        chosen.steps[1].items
    )


def test_script_by_contact_number_wins_over_reason_and_default() -> None:
    scenario = Scenario(
        scripts=(
            script("ReadItems", reason=Reason.START_UP),
            script("WriteItems"),
            script("Restart", contact=2),
        )
    )

    def first_action(contact: int, reason: Reason) -> str | None:
        chosen = scenario.script_for(contact, reason)
        assert chosen is not None
        return chosen.steps[0].action

    assert first_action(1, Reason.START_UP) == "ReadItems"
    assert first_action(2, Reason.START_UP) == "Restart"
    assert first_action(3, Reason.SOLICITED) == "WriteItems"


def test_no_matching_script_gives_none() -> None:
    scenario = Scenario(scripts=(script("ReadItems", reason=Reason.START_UP),))
    assert scenario.script_for(1, Reason.LOCAL_CHANGES) is None


def test_items_can_be_names_a_table_or_tables_with_indices() -> None:
    scenario = parse_scenario(
        """
        [[interaction]]
        [[interaction.step]]
        action = "ReadItems"
        items = ["mac-addr", "e164"]
        [[interaction.step]]
        action = "WriteItems"
        items = { "sntp-addr" = "ntp.example.com", "dls-port" = 18443, "dhcp" = false }
        [[interaction.step]]
        action = "WriteItems"
        items = [{ name = "ldap-server-address", index = 2, value = "ldap" }, { name = "x" }]
        """
    )
    read, table, indexed = scenario.scripts[0].steps
    assert read.items == (Item(name="mac-addr"), Item(name="e164"))
    assert table.items == (
        Item(name="sntp-addr", value="ntp.example.com"),
        Item(name="dls-port", value="18443"),
        Item(name="dhcp", value="false"),
    )
    assert indexed.items == (
        Item(name="ldap-server-address", value="ldap", index=2),
        Item(name="x"),
    )


def test_clean_up_options_become_clean_up_items() -> None:
    scenario = parse_scenario(
        """
        [[interaction]]
        [[interaction.step]]
        action = "CleanUp"
        send-solicited = true
        cleanup-reason = "wrong TAN from device"
        """
    )
    (step,) = scenario.scripts[0].steps
    assert step.items == (
        Item(name="send-solicited", value="true"),
        Item(name="cleanup-reason", value="wrong TAN from device"),
    )
    assert step.ends_interaction


def test_raw_empty_and_status_steps() -> None:
    garbage = base64.b64encode(b"\xff\xfe not utf-8").decode()
    scenario = parse_scenario(
        f"""
        [[interaction]]
        [[interaction.step]]
        raw = "<DLSMessage/>"
        [[interaction.step]]
        raw-base64 = "{garbage}"
        [[interaction.step]]
        empty = true
        [[interaction.step]]
        status = 204
        [[interaction.step]]
        status = 500
        delay = 0.5
        close = true
        """
    )
    raw, raw64, empty, no_content, error = scenario.scripts[0].steps
    assert raw.raw == b"<DLSMessage/>" and not raw.ends_interaction
    assert raw64.raw == b"\xff\xfe not utf-8"
    assert empty.empty and empty.ends_interaction and empty.describe() == "empty 200"
    assert no_content.status == 204 and no_content.ends_interaction
    assert error.status == 500 and error.delay == 0.5 and error.close
    assert error.describe() == "HTTP 500"


def test_an_action_that_is_not_clean_up_does_not_end_the_interaction() -> None:
    assert not Step(action="WriteItems").ends_interaction
    assert not Step(action="SelfDestruct").ends_interaction
    assert Step(action="WriteItems", status=500).ends_interaction


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nmae = 'x'", "scenario: unknown key 'nmae'"),
        ("[[interaction]]\nreason = 'boot'", "interaction[0].reason: 'boot' is not one of"),
        ("[[interaction]]\ncontact = 0", "interaction[0].contact: must be a whole number"),
        ("[[interaction]]\ncontact = true", "interaction[0].contact: must be a whole number"),
        (
            "[[interaction]]\ncontact = 1\nreason = 'start-up'",
            "interaction[0]: give reason or contact, not both",
        ),
        (
            "[[interaction]]\ncontact = 1\n[[interaction]]\ncontact = 1",
            "interaction[1]: contact 1 given twice",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\nacton = 'CleanUp'",
            "interaction[0].step[0]: unknown key 'acton'",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\nnote = 'x'",
            "interaction[0].step[0]: needs one of action",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\naction = 'CleanUp'\nraw = 'x'",
            "'action' and 'raw' exclude each other",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\nstatus = 99",
            "interaction[0].step[0].status: must be an HTTP status code",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\naction = ''",
            "interaction[0].step[0].action: must not be empty",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\nraw = 'x'\nitems = ['a']",
            "interaction[0].step[0].items: only an action step carries items",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\naction = 'WriteItems'\nsend-solicited = true",
            "interaction[0].step[0].send-solicited: only a CleanUp step carries it",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\naction = 'CleanUp'\nsend-solicited = 'yes'",
            "send-solicited: must be true or false",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\nraw-base64 = '!!!'",
            "raw-base64: not valid base64",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\nraw = 'x'\nnonce = 'A'",
            "nonce: only an action step has a nonce",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\nempty = false",
            "empty: write empty = true, or leave it out",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\nstatus = 204\ndelay = -1",
            "delay: must be a number of seconds",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\naction = 'WriteItems'\n"
            "items = [{ name = 'x', index = '1' }]",
            "items[0].index: must be a whole number",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\naction = 'WriteItems'\n"
            "items = [{ value = 'x' }]",
            "items[0]: an item needs a name",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\naction = 'WriteItems'\nitems = ['  ']",
            "an item name must not be empty",
        ),
        (
            "[[interaction]]\n[[interaction.step]]\naction = 'WriteItems'\nitems = { x = [1] }",
            "items.x: must be a string, number or boolean",
        ),
        ("interaction = 3", "interaction: must be an array of tables"),
        ("[[interaction]\n", "not valid TOML"),
    ],
)
def test_invalid_scenarios_are_refused_with_where_and_why(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    assert message in str(caught.value)


def test_python_structure_is_validated_like_toml() -> None:
    with pytest.raises(ScenarioError, match=r"interaction\[0\]\.step: must be an array"):
        Scenario.from_dict({"interaction": [{"step": {"action": "CleanUp"}}]})
    scenario = Scenario.from_dict(
        {"name": "py", "interaction": [{"reason": "solicited", "step": [{"action": "CleanUp"}]}]}
    )
    assert scenario.scripts == (Script(reason=Reason.SOLICITED, steps=(Step(action="CleanUp"),)),)


def test_load_scenario_from_a_file_names_the_file_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text("[[interaction]]\n[[interaction.step]]\naction = 'CleanUp'\n")
    assert load_scenario(good).name == "mine"
    bad = tmp_path / "bad.toml"
    bad.write_text("[[interaction]]\nreason = 'nope'\n")
    with pytest.raises(ScenarioError, match=r"bad\.toml: interaction"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")


def test_an_unknown_shipped_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match=r"shipped: .*demo"):
        load_scenario("no-such-scenario")
