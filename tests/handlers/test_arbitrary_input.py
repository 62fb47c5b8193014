"""Arbitrary updates at every step of the household form: nothing escapes, every update is
answered, and the stored conversation stays one the engine can continue from."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gotong.bot.services import Services
from gotong.handlers.commands import COMMANDS
from gotong.handlers.conversations import FORMS
from gotong.handlers.messages import Incoming, Kind
from gotong.models.contact import Contact
from gotong.models.conversation import Conversation
from tests.chat import Chat

_chat_ids = itertools.count(1)

TAP = object()  # marker: tap the option that follows
REQUEST = ["/start", (TAP, "request"), (TAP, "yes")]
TO_KOTA = [*REQUEST, "Budi Santoso", "081298765432", "skip"]
TO_ADDRESS = [*TO_KOTA, "12930"]
TO_NEEDS = [*TO_ADDRESS, "Jl. Melati No. 5 RT 03 RW 05", "4", "1"]
# The answers that lead to each step of the form.
PATHS: dict[str, list[object]] = {
    "consent": REQUEST[:2],
    "name": REQUEST,
    "phone": [*REQUEST, "Budi Santoso"],
    "nik": [*REQUEST, "Budi Santoso", "081298765432"],
    "kota": TO_KOTA,
    "area_pick": [*TO_KOTA, "karet semangi"],
    "kecamatan": [*TO_KOTA, "Jakarta Timur"],
    "kelurahan": [*TO_KOTA, "Jakarta Timur", "Pulo Gadung"],
    "address": TO_ADDRESS,
    "size": [*TO_ADDRESS, "Jl. Melati No. 5 RT 03 RW 05"],
    "vulnerable": [*TO_ADDRESS, "Jl. Melati No. 5 RT 03 RW 05", "4"],
    "needs": TO_NEEDS,
    "needs_other": [*TO_NEEDS, "5"],
    "summary": [*TO_NEEDS, "1"],
    # A household that asked before (and took the request back) is offered its details.
    "use_on_file": [*TO_NEEDS, "1", "1", "/cancel_request", "yes", "/request", (TAP, "yes")],
}

COMMAND_WORDS = sorted({a for c in COMMANDS for names in c.aliases.values() for a in names})

texts = st.one_of(
    st.text(max_size=60),
    st.text(min_size=900, max_size=1300),
    st.sampled_from(["1", "0", "99", "-1", "back", "skip", "done", "next", "kembali", "1,2,99",
                     "Jakarta", "12930", "3171234508900001", "none", "", " "]),
)
options = st.one_of(st.text(max_size=70), st.sampled_from(
    [">1", "<0", ">99", "back", "skip", "done", "submit", "edit:name", "edit:zzz", "yes", "no",
     "none", "request", "donate", "en", "id", "4025240", "9999999", "cancel:GT-22222",
     "cancel:", "yes:GT-22222", "yes:"]))


@st.composite
def incoming_updates(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(list(Kind)))
    fields: dict[str, object] = {"kind": kind}
    if kind == Kind.TEXT:
        fields["text"] = draw(texts)
    elif kind == Kind.COMMAND:
        fields["command"] = draw(st.one_of(st.sampled_from(COMMAND_WORDS), st.text(max_size=20)))
        fields["args"] = draw(st.one_of(st.just(""), st.sampled_from(["en", "id"]),
                                        st.text(max_size=20)))
    elif kind == Kind.CHOICE:
        contexts = ["@current", "menu", "lang", "hh.name", "hh.summary", "hh.kota", "req",
                    "reqc"]
        fields["context"] = draw(st.one_of(st.none(), st.sampled_from(contexts),
                                           st.text(max_size=30)))
        fields["option"] = draw(st.one_of(st.none(), options))
    elif kind == Kind.CONTACT:
        fields["phone"] = draw(st.one_of(st.sampled_from(["+6281234567890", "6281234567890"]),
                                         st.text(max_size=20)))
        fields["phone_is_own"] = draw(st.booleans())
    elif kind == Kind.LOCATION:
        fields["latitude"] = draw(st.floats(-90, 90))
        fields["longitude"] = draw(st.floats(-180, 180))
    return fields


async def walk(chat: Chat, path: list[object]) -> None:
    for step in path:
        if isinstance(step, tuple):
            await chat.tap(step[1])
        else:
            await chat.say(str(step))


async def assert_state_valid(services: Services, chat_id: str) -> None:
    async with services.sessions() as session:
        row = await session.execute(
            select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.chat_id == chat_id)
        )
        conversation = row.scalar_one()
    assert isinstance(conversation.answers, dict) and isinstance(conversation.scratch, dict)
    assert 0 <= conversation.invalid_attempts < services.config.dialogs.max_invalid_attempts
    if conversation.dialog is None:
        assert conversation.step is None and conversation.answers == {}
        return
    form = FORMS[conversation.dialog]
    assert form.valid_state(conversation.step, conversation.answers), (
        conversation.step, conversation.answers)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(step=st.sampled_from(sorted(PATHS)), updates=st.lists(incoming_updates(), min_size=1,
                                                            max_size=5))
async def test_arbitrary_updates_at_every_step(services: Services, step: str,
                                               updates: list[dict[str, object]]) -> None:
    chat = Chat(services.conversations, chat_id=f"fuzz-{next(_chat_ids)}")
    await walk(chat, PATHS[step])
    assert chat.last.context == f"hh.{step}", (step, chat.last.text)
    for fields in updates:
        if fields.get("context") == "@current":
            fields = {**fields, "context": chat.last.context}
        incoming = Incoming(channel="console", chat_id=chat.chat_id, language_hint="en",
                            **fields)  # type: ignore[arg-type]
        replies = await chat.handle(incoming)
        assert replies, fields
        assert all(reply.text.strip() for reply in replies)
        await assert_state_valid(services, chat.chat_id)
