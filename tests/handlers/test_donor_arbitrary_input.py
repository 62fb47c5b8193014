"""Arbitrary updates at every step of the donor's pledge form: nothing escapes, every update
is answered, and the stored conversation stays one the engine can continue from."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gotong.bot.services import Services
from gotong.handlers.donor import DONOR_PLEDGE
from gotong.handlers.forms import EDIT_PREFIX, SUMMARY
from gotong.handlers.messages import Incoming, Kind
from gotong.models.contact import Contact
from gotong.models.conversation import Conversation
from gotong.models.pledge import CATEGORIES
from tests.chat import Chat
from tests.handlers.test_arbitrary_input import (
    TAP,
    assert_state_valid,
    incoming_updates,
    options,
    texts,
    walk,
)
from tests.handlers.test_donor_form import aggregator

_chat_ids = itertools.count(1)

# Two aggregators cover Jakarta Selatan, so the aggregator question offers a choice
# (and "choose for me") after any route; a third makes "anywhere" differ from a kota.
AGGREGATORS = (("Posko Selatan", "Jakarta Selatan"), ("Posko Tebet", "Jakarta Selatan"),
               ("Posko Timur", "Jakarta Timur"))

TO_CATEGORY: list[object] = ["/donate", (TAP, "individual"), "Budi Santoso", "0812 3456 7890"]
TO_TARGET: list[object] = [*TO_CATEGORY, (TAP, "food_package"), "1.000"]
TO_HANDOVER: list[object] = [*TO_TARGET, "Jakarta Selatan", (TAP, "all"), (TAP, "auto")]
TO_PICKUP: list[object] = [*TO_HANDOVER, (TAP, "pickup")]
# The answers that lead to each step of the form.
PATHS: dict[str, list[object]] = {
    "kind": TO_CATEGORY[:1],
    "name": TO_CATEGORY[:2],
    "phone": TO_CATEGORY[:3],
    "category": TO_CATEGORY,
    "quantity": TO_TARGET[:-1],
    "target": TO_TARGET,
    "kecamatan": [*TO_TARGET, "Jakarta Selatan"],
    "aggregator": TO_HANDOVER[:-1],
    "handover": TO_HANDOVER,
    "pickup_address": TO_PICKUP,
    "pickup_window": [*TO_PICKUP, "Jl. Kenanga 3, Menteng"],
    SUMMARY: [*TO_PICKUP, "Jl. Kenanga 3, Menteng", "Sabtu 09.00-12.00"],
}
# A donor who pledged before is offered the details on file.
PATHS["use_on_file"] = [*PATHS[SUMMARY], (TAP, "submit"), "/donate"]
STEPS = [*(field.name for field in DONOR_PLEDGE.fields), SUMMARY]

# Taps one of the current question's own buttons (by index, modulo their number).
OPTION_OF_LAST = "@option:"

donor_texts = st.sampled_from([
    "1.000", "Rp 500.000", "rp. 20.000.000.000", "100000", "100001", "0", "00", "1e3",
    "Jakarta Selatan", "Jakarta", "Selatan", "Posko Selatan", "Posko", "Tebet", "any", "all",
    "auto", "drop", "pickup", "individual", "organisation", "money", "food", "PT Maju Bersama",
    "0812 3456 7890", "+62 812-3456-7890", "submit", "2", "3", "12", "²", "¹2", "①", "٣",
    "３", "Kirim", "Ubah", "A" * 121, "B" * 301,
])
donor_options = st.one_of(
    options,
    st.sampled_from(["individual", "organisation", *CATEGORIES, "any", "all", "auto", "drop",
                     "pickup", "1", "2", "3", "4", "0", ">²", "<²", "²", ">١",
                     *(EDIT_PREFIX + f.name for f in DONOR_PLEDGE.fields)]),
    st.integers(0, 40).map(lambda i: f"{OPTION_OF_LAST}{i}"),
)
donor_contexts = st.sampled_from(
    ["@current", *(DONOR_PLEDGE.context(step) for step in STEPS), "menu", "hh.name"])


@st.composite
def donor_updates(draw: st.DrawFn) -> dict[str, object]:
    """Any update, often one aimed at the donor form's questions and buttons."""
    kind = draw(st.sampled_from(["any", "text", "choice"]))
    if kind == "text":
        return {"kind": Kind.TEXT, "text": draw(st.one_of(donor_texts, texts))}
    if kind == "choice":
        return {"kind": Kind.CHOICE, "context": draw(donor_contexts),
                "option": draw(donor_options)}
    return draw(incoming_updates())


@pytest.fixture
async def donor_services(services: Services) -> Services:
    """Services with the aggregators in place: made once per test, not per example."""
    for name, kota in AGGREGATORS:
        await aggregator(services, name, kota)
    return services


async def stored(services: Services, chat_id: str) -> Conversation:
    async with services.sessions() as session:
        row = await session.execute(
            select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.chat_id == chat_id)
        )
        return row.scalar_one()


async def assert_donor_state_valid(services: Services, chat_id: str) -> None:
    await assert_state_valid(services, chat_id)
    conversation = await stored(services, chat_id)
    if conversation.dialog == DONOR_PLEDGE.name:
        # The question asked is the one the engine would ask next for these answers.
        following = DONOR_PLEDGE.next_field(conversation.answers)
        assert conversation.step == (following.name if following else SUMMARY), (
            conversation.step, conversation.answers)


def resolved(chat: Chat, fields: dict[str, object]) -> dict[str, object]:
    """The update with its markers replaced by the current question's context or button."""
    if fields.get("context") == "@current":
        fields = {**fields, "context": chat.last.context}
    option = fields.get("option")
    if isinstance(option, str) and option.startswith(OPTION_OF_LAST):
        buttons = [o.id for o in (*chat.last.options, *chat.last.controls)]
        if buttons:
            index = int(option.removeprefix(OPTION_OF_LAST))
            fields = {**fields, "option": buttons[index % len(buttons)]}
    return fields


def test_the_paths_cover_every_step() -> None:
    assert sorted(PATHS) == sorted(STEPS)


@pytest.mark.parametrize("step", STEPS)
async def test_the_paths_reach_their_step(donor_services: Services, step: str) -> None:
    chat = Chat(donor_services.conversations, chat_id=f"donor-path-{step}")
    await walk(chat, PATHS[step])
    conversation = await stored(donor_services, chat.chat_id)
    assert (conversation.dialog, conversation.step) == (DONOR_PLEDGE.name, step), chat.last.text
    assert chat.last.context == DONOR_PLEDGE.context(step), chat.last.text


@pytest.mark.parametrize("step", STEPS)
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(updates=st.lists(donor_updates(), min_size=1, max_size=4))
# Digits that str.isdigit accepts but int() does not, typed and in a page button's data.
@example(updates=[{"kind": Kind.TEXT, "text": "²"}])
@example(updates=[{"kind": Kind.CHOICE, "context": "@current", "option": ">²"}])
async def test_arbitrary_updates_at_every_donor_step(donor_services: Services, step: str,
                                                     updates: list[dict[str, object]]) -> None:
    chat = Chat(donor_services.conversations, chat_id=f"donor-fuzz-{next(_chat_ids)}")
    await walk(chat, PATHS[step])
    assert chat.last.context == DONOR_PLEDGE.context(step), (step, chat.last.text)
    for fields in updates:
        fields = resolved(chat, fields)
        incoming = Incoming(channel="console", chat_id=chat.chat_id, language_hint="en",
                            **fields)  # type: ignore[arg-type]
        replies = await chat.handle(incoming)
        assert replies, fields
        assert all(reply.text.strip() for reply in replies)
        await assert_donor_state_valid(donor_services, chat.chat_id)
