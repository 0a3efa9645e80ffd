"""The lab server's protocol side, without the network: a PhoneSession talks to a Conductor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from provd.lab.conductor import Answer, Conductor
from provd.lab.scenario import Scenario, Step, load_scenario, script
from provd.lab.transcript import Record, Transcript
from provd.wpi.book import WriteOutcome
from provd.wpi.events import (
    ActionRequested,
    AutoAnswer,
    DocumentRefused,
    InteractionEnded,
    PhoneCleanUp,
    PhoneEvent,
    Reply,
)
from provd.wpi.model import Action, Item, ItemStatus, Reason, ReplyStatus
from provd.wpi.respond import answer_item_action
from provd.wpi.session import PhoneSession, SessionConfig

MAC = Item(name="mac-addr", value="00:01:E3:25:EA:13")


class DictBook:
    """An ItemBook over a dict: names it does not hold are `unknown item`."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def read_all(self) -> Sequence[Item]:
        return [Item(name=k, value=v) for k, v in self.values.items()]

    def read(self, requested: Sequence[Item]) -> Sequence[Item]:
        return [
            Item(name=r.name, value=self.values[r.name])
            if r.name in self.values
            else Item(name=r.name, status=ItemStatus.UNKNOWN_ITEM)
            for r in requested
        ]

    def write(self, items: Sequence[Item]) -> WriteOutcome:
        rejected = [
            Item(name=i.name, index=i.index, status=ItemStatus.UNKNOWN_ITEM)
            for i in items
            if i.name not in self.values
        ]
        for item in items:
            if item.name in self.values:
                self.values[item.name] = item.value
        return WriteOutcome(rejected=tuple(rejected))


@dataclass
class Phone:
    """Drives one PhoneSession against the conductor, keeping its cookie like a jar."""

    conductor: Conductor
    book: DictBook
    send_cookies: bool = True
    cookie: str | None = None
    events: list[PhoneEvent] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def post(self, body: bytes) -> Answer:
        answer = self.conductor.handle(body, self.cookie if self.send_cookies else None)
        if answer.set_cookie is not None:
            self.cookie = answer.set_cookie
        self.answers.append(answer)
        return answer

    def run(self, session: PhoneSession) -> PhoneSession:
        body = session.start()
        while True:
            answer = self.post(body)
            if answer.status not in (200, 204):
                session.abort(f"HTTP {answer.status}")
                return session
            event = session.receive(answer.body)
            self.events.append(event)
            if isinstance(event, InteractionEnded):
                return session
            if isinstance(event, AutoAnswer | DocumentRefused):
                body = event.answer
                continue
            assert isinstance(event, ActionRequested)
            body = session.send(answer_item_action(event, self.book, busy=False))


def _session(
    reason: Reason = Reason.START_UP, nonce: str = "A" * 32, max_message: int = 50_000
) -> PhoneSession:
    config = SessionConfig(max_message=max_message)
    return PhoneSession(reason=reason, nonce=nonce, items=[MAC], config=config)


def _conductor(scenario: Scenario | str) -> tuple[Conductor, Transcript]:
    transcript = Transcript(clock=lambda: 0.0)
    counter = iter(range(1, 1000))
    conductor = Conductor(
        scenario if isinstance(scenario, Scenario) else load_scenario(scenario),
        transcript,
        cookie_source=lambda: f"COOKIE{next(counter)}",
    )
    return conductor, transcript


def _story(records: list[Record]) -> list[str]:
    return [
        (r.reason.value if r.reason else "") + (f" {r.action}" if r.action else "")
        if r.from_phone
        else f"<- {r.action or r.http_status}"
        for r in records
    ]


def test_demo_scenario_runs_start_up_read_all_write_clean_up() -> None:
    conductor, transcript = _conductor("demo")
    book = DictBook({"mac-addr": MAC.value, "sntp-addr": "", "ldap-server-address": ""})
    session = Phone(conductor, book).run(_session())
    assert session.succeeded
    records = transcript.records()
    assert _story(records) == [
        "start-up",
        "<- ReadAllItems",
        "reply-to ReadAllItems",
        "<- WriteItems",
        "reply-to WriteItems",
        "<- CleanUp",
    ]
    assert all(r.interaction == 1 for r in records)
    write_reply = records[4]
    assert write_reply.status is ReplyStatus.ACCEPTED
    assert write_reply.items == (
        Item(name="socketed-headset-mode", status=ItemStatus.UNKNOWN_ITEM),
    )
    assert book.values["sntp-addr"] == "ntp.example.com"


def test_the_first_answer_sets_the_cookie_and_later_messages_present_it() -> None:
    conductor, transcript = _conductor("demo")
    phone = Phone(conductor, DictBook({"mac-addr": MAC.value}))
    phone.run(_session())
    assert [a.set_cookie for a in phone.answers] == ["COOKIE1", None, None]
    records = transcript.records()
    assert [r.cookie for r in records if r.from_phone] == [False, True, True]
    assert [r.cookie for r in records if not r.from_phone] == [True, False, False]
    assert not any(r.note for r in records)


def test_each_interaction_gets_its_own_cookie_and_number() -> None:
    conductor, transcript = _conductor("basic")
    Phone(conductor, DictBook({})).run(_session(Reason.START_UP, "1" * 32))
    Phone(conductor, DictBook({})).run(_session(Reason.LOCAL_CHANGES, "2" * 32))
    assert [i.cookie for i in conductor.interactions] == ["COOKIE1", "COOKIE2"]
    assert [i.reason for i in conductor.interactions] == [Reason.START_UP, Reason.LOCAL_CHANGES]
    assert {r.interaction for r in transcript.records()} == {1, 2}
    assert not any(i.open for i in conductor.interactions)


def test_a_phone_without_cookies_is_followed_by_its_nonce_and_the_record_says_so() -> None:
    conductor, transcript = _conductor("demo")
    session = Phone(conductor, DictBook({}), send_cookies=False).run(_session())
    assert session.succeeded
    phone_records = [r for r in transcript.records() if r.from_phone]
    assert {r.interaction for r in phone_records} == {1}
    assert [r.note for r in phone_records[1:]] == ["no cookie: matched by nonce"] * 2


def test_a_new_reason_with_an_open_interactions_cookie_opens_a_new_interaction() -> None:
    conductor, transcript = _conductor(Scenario(scripts=(script("ReadItems"),)))
    phone = Phone(conductor, DictBook({}))
    phone.post(_session(nonce="1" * 32).start())
    phone.post(_session(Reason.SOLICITED, nonce="2" * 32).start())
    first, second = conductor.interactions
    assert not first.open and second.open
    assert transcript.records()[-2].note == "new interaction with an old cookie"
    assert transcript.records()[-2].interaction == 2


def test_a_reply_outside_any_interaction_is_answered_clean_up_under_number_zero() -> None:
    conductor, transcript = _conductor("demo")
    session = _session()
    session.start()
    session.receive(
        b'<DLSMessage><Message nonce="' + b"A" * 32 + b'"><Action>ReadItems</Action>'
        b"<ItemList><Item name='mac-addr'/></ItemList></Message></DLSMessage>"
    )
    reply = session.send(Reply(status=ReplyStatus.ACCEPTED, items=(MAC,)))
    answer = conductor.handle(reply, "UNKNOWN")
    assert answer.status == 200 and answer.set_cookie is None
    assert b"<Action>CleanUp</Action>" in answer.body
    phone_record, server_record = transcript.records()
    assert phone_record.interaction == 0 == server_record.interaction
    assert phone_record.note == "reply-to outside any interaction (unknown cookie)"
    assert conductor.interactions == []


def test_steps_run_out_into_clean_up() -> None:
    conductor, transcript = _conductor(Scenario(scripts=(script("ReadAllItems"),)))
    session = Phone(conductor, DictBook({"a": "1"})).run(_session())
    assert session.succeeded
    assert transcript.records()[-1].action == "CleanUp"


def test_no_script_at_all_answers_clean_up_at_once() -> None:
    conductor, transcript = _conductor(Scenario())
    assert Phone(conductor, DictBook({})).run(_session()).succeeded
    assert _story(transcript.records()) == ["start-up", "<- CleanUp"]


def test_fragments_are_asked_for_automatically_and_reassembled() -> None:
    values = {f"item-{n:03}": "x" * 40 for n in range(120)}
    conductor, transcript = _conductor(Scenario(scripts=(script("ReadAllItems"),)))
    session = Phone(conductor, DictBook(values)).run(_session(max_message=1500))
    assert session.succeeded
    records = transcript.records()
    asks = [r for r in records if r.action == Action.GET_NEXT_FRAGMENT.value]
    replies = [r for r in records if r.from_phone and r.reason is Reason.REPLY_TO]
    assert len(asks) == len(replies) - 1 >= 3
    final = replies[-1]
    assert final.reassembled is not None
    assert [i.name for i in final.reassembled] == list(values)
    assert final.all_items == final.reassembled
    # No step was spent on the fragments: the script's CleanUp follows the last one.
    assert records[-1].action == "CleanUp"


def test_raw_step_gets_the_phones_nonce_and_the_phone_cleans_up() -> None:
    raw = (
        '<DLSMessage><Message nonce="{nonce}"><Action>ReadAllItems</Action>'
        "<Bogus><Bogus><Bogus><Bogus><Bogus><Bogus/></Bogus></Bogus></Bogus></Bogus></Bogus>"
        "</Message></DLSMessage>"
    )
    conductor, transcript = _conductor(Scenario(scripts=(script(Step(raw=raw.encode())),)))
    phone = Phone(conductor, DictBook({}))
    session = phone.run(_session())
    assert session.failure is not None and "nesting deeper" in session.failure
    assert b'nonce="' + b"A" * 32 + b'"' in phone.answers[0].body
    last_phone = [r for r in transcript.records() if r.from_phone][-1]
    assert last_phone.reason is Reason.CLEAN_UP
    assert last_phone.items == (Item(name="cleanup-reason", value="invalid document"),)
    assert not conductor.interactions[0].open


def test_wrong_nonce_step_is_refused_by_the_phone() -> None:
    step = Step(action="WriteItems", items=(Item(name="a", value="b"),), nonce="0" * 32)
    conductor, transcript = _conductor(Scenario(scripts=(script(step),)))
    book = DictBook({"a": "old"})
    session = Phone(conductor, book).run(_session())
    assert session.failure == "invalid nonce"
    assert book.values == {"a": "old"}
    assert transcript.records()[1].body.count(b"0" * 32) == 1


def test_a_phone_document_the_server_cannot_read_gets_400() -> None:
    conductor, transcript = _conductor("demo")
    answer = conductor.handle(b"<WorkpointMessage><Message/></WorkpointMessage>", None)
    assert answer.status == 400
    phone_record, server_record = transcript.records()
    assert phone_record.note == "refused: missing nonce"
    assert server_record.http_status == 400


def test_phone_clean_up_is_answered_without_spending_a_step() -> None:
    conductor, _ = _conductor(Scenario(scripts=(script("ReadItems", "WriteItems"),)))
    phone = Phone(conductor, DictBook({}))
    session = _session()
    phone.post(session.start())
    session.receive(phone.answers[-1].body)
    phone.post(session.send(PhoneCleanUp(reason="password retries exceeded")))
    assert b"<Action>CleanUp</Action>" in phone.answers[-1].body
    assert conductor.interactions[0].steps == [Step(action="WriteItems")]
    assert not conductor.interactions[0].open


def test_status_codes_and_empty_answers_end_the_interaction() -> None:
    conductor, _ = _conductor("hostile")
    outcomes = []
    for contact in range(1, 8):
        phone = Phone(conductor, DictBook({}))
        session = phone.run(_session(nonce=f"{contact:032X}"))
        outcomes.append((session.succeeded, session.failure, phone.answers[-1].status))
    assert outcomes[4] == (True, None, 200)  # empty 200
    assert outcomes[5] == (True, None, 204)
    assert outcomes[6] == (False, "HTTP 500", 500)
    assert outcomes[3][0]  # unknown action answered failed, then CleanUp
    assert all(not ok for ok, _, _ in outcomes[:3])
    assert not any(i.open for i in conductor.interactions)
