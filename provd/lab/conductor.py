"""The lab server's protocol side: interactions, scripts and answers, without HTTP.

`Conductor.handle(body, cookie)` takes one phone POST and returns the answer
(HTTP status, body, cookie to set), recording both documents in the
transcript. It speaks WPI through `provd.wpi.server.ServerSession`, so the
server's documents come from the same core as the phone's.

Interactions are tracked by the `JSESSIONID` cookie the server sets on its
first answer [G p.13, p.28; F]. A phone message with reason `reply-to`,
`clean-up` or `status` continues the open interaction whose cookie it presents
(or, failing a cookie, whose nonce it carries: the record then says
`cookie=False`); any other reason opens a new interaction. A `reply-to` that
belongs to no open interaction is answered `CleanUp` and recorded under
interaction 0.

Secure Mode (spec §7): with the lab's `BootstrapMaterial`, item values are
expanded (`{secure-mode-data}`, `{secure-port}` ...) as they are sent, and a
phone's answer to `ReadItems bootstrapping-tan` is checked against the PIN's
TAN (spec §7.3 step 4); a wrong one
is answered `CleanUp` with `cleanup-reason` `wrong TAN from device` [G p.31]
unless the scenario says `wrong-tan = "ignore"`. The HTTP layer says on which
channel (`default`, `secure`) a POST came and, on the secure one, the subject
of the client certificate it verified; the first record of an interaction
notes it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from provd.lab.scenario import Scenario, Step
from provd.lab.secure import TAN_ITEM, WRONG_TAN, BootstrapMaterial, TanCheck, tan_answer
from provd.lab.transcript import Direction, Transcript
from provd.wpi.codec import DocumentError, parse_workpoint
from provd.wpi.events import FragmentReceived, PhoneMessageReceived
from provd.wpi.model import Action, Item, Reason, WorkpointMessage
from provd.wpi.server import ServerSession

#: Reasons that continue an interaction rather than open one (spec §3.3, §3.4, §6.1).
_CONTINUING = (Reason.REPLY_TO, Reason.CLEAN_UP, Reason.STATUS)

_CLEAN_UP = Step(action=Action.CLEAN_UP.value)
_WRONG_TAN = Step(
    action=Action.CLEAN_UP.value,
    items=(Item(name="cleanup-reason", value=WRONG_TAN),),
    note="wrong TAN",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the HTTP layer sends back for one POST."""

    status: int
    body: bytes = b""
    set_cookie: str | None = None
    close: bool = False
    delay: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Post:
    """One parsed phone POST, with what the server knows of it."""

    body: bytes
    message: WorkpointMessage
    channel: str
    cookie: bool  # the request presented the interaction's cookie
    note: str = ""
    client: str | None = None  # the verified client certificate's subject (secure channel)


@dataclass(slots=True, kw_only=True)
class Interaction:
    """One interaction as the server tracks it."""

    number: int
    reason: Reason
    cookie: str
    channel: str = "default"
    client: str | None = None  # subject of the client certificate that opened it
    session: ServerSession = field(default_factory=ServerSession)
    steps: list[Step] = field(default_factory=list)
    open: bool = True
    answered: int = 0  # server documents sent so far
    asked_tan: bool = False  # the last server document was ReadItems bootstrapping-tan


def new_cookie() -> str:
    """A fresh `JSESSIONID` value (the production default; tests pass their own)."""
    return secrets.token_hex(16).upper()


class Conductor:
    """Plays a scenario against every phone that posts to the lab server."""

    def __init__(
        self,
        scenario: Scenario,
        transcript: Transcript,
        *,
        cookie_source: Callable[[], str] = new_cookie,
        material: BootstrapMaterial | None = None,
        secure_port: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.scenario = scenario
        self.transcript = transcript
        self.material = material
        self._secure_port = secure_port
        self._cookie_source = cookie_source
        self._lock = threading.Lock()
        self._interactions: list[Interaction] = []
        self._by_cookie: dict[str, Interaction] = {}
        self._tan_checks: list[TanCheck] = []

    @property
    def interactions(self) -> list[Interaction]:
        """The interactions seen so far, oldest first."""
        with self._lock:
            return list(self._interactions)

    @property
    def tan_checks(self) -> list[TanCheck]:
        """Every `bootstrapping-tan` answer checked so far, oldest first."""
        with self._lock:
            return list(self._tan_checks)

    def handle(
        self,
        body: bytes,
        cookie: str | None,
        *,
        channel: str = "default",
        client: str | None = None,
    ) -> Answer:
        """Answer one phone POST that came on `channel` (with `client`, the subject of the
        client certificate the secure listener verified)."""
        with self._lock:
            return self._handle(body, cookie, channel, client)

    # ------------------------------------------------------------------ internals

    def _find(
        self, cookie: str | None, message: WorkpointMessage | None
    ) -> tuple[Interaction | None, bool]:
        """The open interaction this message belongs to, and whether the cookie said so."""
        if cookie is not None:
            found = self._by_cookie.get(cookie)
            if found is not None and found.open:
                return found, True
        if message is not None:
            for interaction in reversed(self._interactions):
                if interaction.open and interaction.session.nonce == message.nonce:
                    return interaction, False
        return None, False

    def _handle(self, body: bytes, cookie: str | None, channel: str, client: str | None) -> Answer:
        try:
            message: WorkpointMessage | None = parse_workpoint(body)
            refusal = ""
        except DocumentError as exc:
            message, refusal = None, exc.reason
        found, cookie_ok = self._find(cookie, message)
        if message is None:
            return self._refuse(found, body, refusal, cookie_ok, channel)
        if found is None or message.reason not in _CONTINUING:
            if message.reason is Reason.REPLY_TO:
                return self._orphan(message, body, cookie is not None, channel)
            if found is not None:
                # The phone opened a new interaction with an old cookie: spec §1
                # [B] wants one jar per interaction. The old one is over.
                found.open = False
            found = self._open(message.reason, channel, client)
            notes = [] if cookie is None else ["new interaction with an old cookie"]
            if client is not None:
                notes.append(f"client certificate {client}")
            note = "; ".join(notes)
        else:
            note = "" if cookie_ok else "no cookie: matched by nonce"
        event = found.session.receive(body)
        post = _Post(
            body=body, message=message, channel=channel, cookie=cookie_ok, note=note, client=client
        )
        if isinstance(event, FragmentReceived):
            self._record_phone(found.number, post)
            # spec §5: ask for the next fragment; this takes no step of the script.
            return self._send(found, Step(action=Action.GET_NEXT_FRAGMENT.value), channel)
        assert isinstance(event, PhoneMessageReceived)
        tan_ok = self._check_tan(found, event.items, channel)
        if tan_ok is not None:
            verdict = "TAN matches" if tan_ok else "TAN does not match"
            post = replace(post, note="; ".join(filter(None, [post.note, verdict])))
        self._record_phone(found.number, post, event.items if event.fragments > 1 else None)
        if message.reason is Reason.CLEAN_UP:
            # spec §3.4: the phone ends the interaction itself; it ignores our answer.
            return self._send(found, _CLEAN_UP, channel)
        if tan_ok is False and self.scenario.secure.wrong_tan == "clean-up":
            # spec §7.3 step 4 [G p.31]: the phone discards the material.
            found.steps.clear()
            return self._send(found, _WRONG_TAN, channel)
        step = found.steps.pop(0) if found.steps else _CLEAN_UP
        return self._send(found, step, channel)

    def _check_tan(
        self, interaction: Interaction, items: tuple[Item, ...], channel: str
    ) -> bool | None:
        """spec §7.3 step 4: the phone's `bootstrapping-tan` against the PIN's TAN."""
        if self.material is None or not interaction.asked_tan:
            return None
        interaction.asked_tan = False
        answer = tan_answer(items)
        if answer is None:
            return None
        matched = self.material.tan_matches(answer)
        self._tan_checks.append(
            TanCheck(interaction=interaction.number, channel=channel, matched=matched)
        )
        return matched

    def _open(
        self, reason: Reason, channel: str = "default", client: str | None = None
    ) -> Interaction:
        number = len(self._interactions) + 1
        script = self.scenario.script_for(number, reason, channel)
        interaction = Interaction(
            number=number,
            reason=reason,
            cookie=self._cookie_source(),
            channel=channel,
            client=client,
            steps=list(script.steps) if script else [],
        )
        self._interactions.append(interaction)
        self._by_cookie[interaction.cookie] = interaction
        return interaction

    def _record_phone(
        self, number: int, post: _Post, reassembled: tuple[Item, ...] | None = None
    ) -> None:
        message = post.message
        self.transcript.add(
            interaction=number,
            direction=Direction.PHONE_TO_SERVER,
            body=post.body,
            reason=message.reason,
            action=message.action,
            status=message.status,
            fragment=message.fragment,
            items=message.items or (),
            reassembled=reassembled,
            cookie=post.cookie,
            channel=post.channel,
            note=post.note,
        )

    def _expand(self, items: tuple[Item, ...]) -> tuple[Item, ...]:
        """Items with the lab's placeholders replaced by the material they name."""
        if self.material is None:
            return items
        port = self._secure_port()
        return tuple(
            replace(item, value=self.material.expand(item.value, secure_port=port))
            if "{" in item.value
            else item
            for item in items
        )

    def _send(self, interaction: Interaction, step: Step, channel: str) -> Answer:
        session = interaction.session
        items = self._expand(step.items)
        # Only an answer to this question is checked (ReadAllItems holds the item too).
        interaction.asked_tan = step.action == Action.READ_ITEMS.value and any(
            item.name == TAN_ITEM for item in items
        )
        if step.action is not None:
            body = session.send(step.action, items, nonce=step.nonce)
        elif step.raw is not None:
            body = step.raw.replace(b"{nonce}", (session.nonce or "").encode("ascii", "replace"))
        else:
            body = b""
        if step.ends_interaction:
            interaction.open = False
        first = interaction.answered == 0 and interaction.number > 0
        interaction.answered += 1
        notes = [step.note] if step.note else []
        if step.nonce is not None:
            notes.append(f"nonce {step.nonce[:40]!r} instead of the phone's")
        if step.delay:
            notes.append(f"after {step.delay:g} s")
        self.transcript.add(
            interaction=interaction.number,
            direction=Direction.SERVER_TO_PHONE,
            body=body,
            http_status=step.status,
            action=step.action if step.status == 200 else None,
            items=items,
            cookie=first,
            channel=channel,
            note="; ".join(notes),
        )
        return Answer(
            status=step.status,
            body=body,
            set_cookie=interaction.cookie if first else None,
            close=step.close,
            delay=step.delay,
        )

    def _refuse(
        self,
        interaction: Interaction | None,
        body: bytes,
        reason: str,
        cookie_ok: bool,
        channel: str,
    ) -> Answer:
        """A phone document the server cannot read: HTTP 400, the interaction is over."""
        number = interaction.number if interaction else 0
        if interaction is not None:
            interaction.open = False
        self.transcript.add(
            interaction=number,
            direction=Direction.PHONE_TO_SERVER,
            body=body,
            cookie=cookie_ok,
            channel=channel,
            note=f"refused: {reason}",
        )
        self.transcript.add(
            interaction=number,
            direction=Direction.SERVER_TO_PHONE,
            body=b"",
            http_status=400,
            channel=channel,
            note="HTTP 400",
        )
        return Answer(status=400)

    def _orphan(
        self, message: WorkpointMessage, body: bytes, had_cookie: bool, channel: str
    ) -> Answer:
        """A reply-to outside any interaction: recorded under 0 and answered CleanUp."""
        note = "reply-to outside any interaction" + (
            " (unknown cookie)" if had_cookie else " (no cookie)"
        )
        post = _Post(body=body, message=message, channel=channel, cookie=False, note=note)
        self._record_phone(0, post)
        orphan = Interaction(number=0, reason=message.reason, cookie="")
        orphan.session.receive(body)
        return self._send(orphan, _CLEAN_UP, channel)
