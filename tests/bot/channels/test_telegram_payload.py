"""What the Telegram channel makes of an update before storing it: a person's (answered),
a group's (told once, then left), one only recorded, or a malformed one (not stored), read
from the update as Telegram sends it (by webhook, or in a polled batch)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from telegram import Update

from gotong.bot.channels.telegram_payload import (
    Inspected,
    Malformed,
    Route,
    inspect_update,
)
from tests.fakes.telegram_updates import TgUser, UpdateFactory

JSONDict = dict[str, Any]
SITI = TgUser(id=4101, language_code="en")
ROBOT = TgUser(id=4102, first_name="Robot", is_bot=True)
GROUP = -4103
SUPERGROUP = -1004104
# Written by the person: must never appear in a reason.
SECRET = "Jl. Rahasia 7"


def routes() -> list[tuple[str, Callable[[UpdateFactory], JSONDict], Route, str]]:
    """Each kind of update, where it goes, and the chat whose queue it joins."""
    person, group = str(SITI.id), str(GROUP)
    return [
        ("text", lambda f: f.text(SITI, SECRET), Route.PERSON, person),
        ("command", lambda f: f.command(SITI, "start"), Route.PERSON, person),
        ("tap", lambda f: f.callback(SITI, "menu|request", 3), Route.PERSON, person),
        ("contact", lambda f: f.contact(SITI, "+628123456789"), Route.PERSON, person),
        ("location", lambda f: f.location(SITI, -6.2, 106.8), Route.PERSON, person),
        ("photo", lambda f: f.photo(SITI, SECRET), Route.PERSON, person),
        ("sticker", lambda f: f.sticker(SITI), Route.PERSON, person),
        ("voice", lambda f: f.voice(SITI), Route.PERSON, person),
        ("document", lambda f: f.document(SITI), Route.PERSON, person),
        ("group text", lambda f: f.group_text(SITI, GROUP, SECRET), Route.GROUP, group),
        ("supergroup text", lambda f: f.group_text(SITI, SUPERGROUP, "hi", "supergroup"),
         Route.GROUP, str(SUPERGROUP)),
        ("added to a group", lambda f: f.bot_added(SITI, GROUP), Route.GROUP, group),
        ("added to a supergroup", lambda f: f.bot_added(SITI, SUPERGROUP, "supergroup"),
         Route.GROUP, str(SUPERGROUP)),
        ("tap in a group", lambda f: {**f.callback(SITI, "x|y", 3), "callback_query": {
            **f.callback(SITI, "x|y", 3)["callback_query"],
            "message": {"message_id": 3, "date": 1, "chat": f.group_chat(GROUP)}}},
         Route.GROUP, group),
        ("removed from a group", lambda f: f.my_chat_member(SITI, f.group_chat(GROUP),
                                                            "member", "left"),
         Route.RECORD, ""),
        ("blocked", lambda f: f.my_chat_member(SITI, SITI.private_chat(), "member",
                                               "kicked"), Route.RECORD, ""),
        ("edited", lambda f: f.edited_text(SITI, SECRET), Route.RECORD, ""),
        ("channel post", lambda f: f.channel_post(-1004105, SECRET), Route.RECORD, ""),
        ("inline tap", lambda f: f.inline_callback(SITI, "x|y"), Route.RECORD, ""),
        ("from a bot", lambda f: f.text(ROBOT, "/start"), Route.RECORD, ""),
        ("tap by a bot", lambda f: f.callback(ROBOT, "x|y", 3), Route.RECORD, ""),
        ("unknown kind", lambda f: f.raw(kind_of_tomorrow={"text": SECRET}), Route.RECORD,
         ""),
        ("no kind", lambda f: f.raw(), Route.RECORD, ""),
    ]


@pytest.mark.parametrize(("name", "build", "route", "chat"), routes(),
                         ids=[r[0] for r in routes()])
def test_each_kind_of_update_goes_its_way(name: str, build: Callable[[UpdateFactory], JSONDict],
                                          route: Route, chat: str) -> None:
    update = build(UpdateFactory())
    seen = inspect_update(update)
    assert (seen.update_id, seen.route, seen.chat_id) == (update["update_id"], route, chat)
    # Polled updates come back from the library's own objects, with its string enums.
    polled = Update.de_json(copy.deepcopy(update), None).to_dict()
    assert inspect_update(polled) == seen


def test_a_group_is_answered_in_the_language_of_who_wrote() -> None:
    factory = UpdateFactory()
    assert inspect_update(factory.bot_added(SITI, GROUP)).language == "en"
    anonymous = factory.group_text(SITI, GROUP, "hi")
    del anonymous["message"]["from"]
    assert inspect_update(anonymous) == Inspected(anonymous["update_id"], Route.GROUP,
                                                  str(GROUP), None, "message")


def _text(**changes: Any) -> JSONDict:
    update = UpdateFactory().text(SITI, SECRET)
    update["message"].update(changes)
    return update


def _media(**changes: Any) -> JSONDict:
    """A message without a text (a photo, a contact...)."""
    update = _text(**changes)
    del update["message"]["text"]
    return update


def _chat_id(value: Any) -> JSONDict:
    update = UpdateFactory().text(SITI, SECRET)
    update["message"]["chat"]["id"] = value
    return update


def _sender(**changes: Any) -> JSONDict:
    update = UpdateFactory().text(SITI, SECRET)
    update["message"]["from"].update(changes)
    return update


def _tap(data: Any) -> JSONDict:
    return UpdateFactory().callback(SITI, data, 3)


MALFORMED: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "not an object"),
    ("negative update id", {"update_id": -1}, "update_id"),
    ("update id a boolean", {"update_id": True}, "update_id"),
    ("message not an object", {"update_id": 1, "message": SECRET}, "message is not"),
    ("text a number", _text(text=5), "message.text"),
    ("text a list", _text(text=[SECRET]), "message.text"),
    ("text too long", _text(text="a" * 4097), "message.text"),
    ("text with a lone surrogate", _text(text=SECRET + "\ud800"), "message.text"),
    ("caption an object", _media(caption={"a": SECRET}), "message.caption"),
    ("entities a string", _text(entities=SECRET), "message.entities"),
    ("entity without offset", _text(entities=[{"type": "bot_command", "length": 1}]),
     "entity"),
    ("chat id a string", _chat_id(str(SITI.id)), "chat.id"),
    ("chat id infinite", _chat_id(float("inf")), "chat.id"),
    ("chat id a float", _chat_id(4101.0), "chat.id"),
    ("chat id a boolean", _chat_id(True), "chat.id"),
    ("chat id zero", _chat_id(0), "chat.id"),
    ("chat id too large", _chat_id(2**60), "chat.id"),
    ("private chat id negative", _chat_id(-5), "private chat"),
    ("chat not an object", _text(chat=SITI.id), "chat is not"),
    ("date a string", _text(date="today"), "date"),
    ("date too far", _text(date=10**30), "date"),
    ("message id missing", _text(message_id=None), "message_id"),
    ("sender missing", _text(**{"from": None}), "from is not"),
    ("sender id a string", _sender(id="4101"), "from.id"),
    ("is_bot a string", _sender(is_bot="false"), "is_bot"),
    ("language a number", _sender(language_code=62), "language_code"),
    ("contact phone a number", _media(contact={"phone_number": 628123, "first_name": "S"}),
     "contact"),
    ("contact user id a string", _media(contact={"phone_number": "+62", "first_name": "S",
                                                "user_id": "4101"}), "contact.user_id"),
    ("latitude not a number", _media(location={"latitude": float("nan"), "longitude": 1.0}),
     "location"),
    ("longitude out of range", _media(location={"latitude": 1.0, "longitude": 181}),
     "location"),
    ("photo an object", _media(photo={"file_id": SECRET}), "photo"),
    ("photo sizes empty", _media(photo=[]), "photo"),
    ("photo size without id", _media(photo=[{"width": 1, "height": 1}]), "photo"),
    ("sticker a string", _media(sticker=SECRET), "sticker"),
    ("tap data a number", _tap(5), "data"),
    ("tap data of 65 bytes", _tap("é" * 32 + "x"), "data"),
    ("tap data with a lone surrogate", _tap("\udc80"), "data"),
    ("tap without an id", {**_tap("x"), "callback_query": {
        **_tap("x")["callback_query"], "id": None}}, "callback_query"),
    ("tap on a message of no chat", {**_tap("x"), "callback_query": {
        **_tap("x")["callback_query"], "message": {"message_id": 1, "date": 1}}},
     "callback_query.message.chat"),
    ("membership without status", {"update_id": 1, "my_chat_member": {
        "chat": UpdateFactory.group_chat(GROUP), "from": SITI.to_dict(), "date": 1,
        "new_chat_member": {"user": SITI.to_dict()}}}, "status"),
    ("group chat id a string", {"update_id": 1, "my_chat_member": {
        "chat": {"id": "-5", "type": "group"}, "from": SITI.to_dict(), "date": 1,
        "new_chat_member": {"status": "member"}}}, "chat.id"),
]


@pytest.mark.parametrize(("name", "update", "reason"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_a_malformed_update_is_named_without_its_content(name: str, update: Any,
                                                         reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        inspect_update(update)
    assert reason in caught.value.reason
    assert "Rahasia" not in caught.value.reason and "4101" not in caught.value.reason
    if isinstance(update, dict) and type(update.get("update_id")) is int \
            and update["update_id"] >= 0:
        assert caught.value.update_id == update["update_id"]


def test_json_infinity_is_not_a_chat_id() -> None:
    body = json.dumps(_text()).replace(f'"id": {SITI.id}, "type"', '"id": Infinity, "type"')
    with pytest.raises(Malformed, match=r"chat\.id"):
        inspect_update(json.loads(body))
