"""The WhatsApp channel's translation of messages, both ways: webhook notifications into
`Incoming`, and `Reply` into payloads within WhatsApp's limits (3 buttons of 20
characters, lists of 10 rows of 24, bodies of 1024 or 4096)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gotong.bot.channels.whatsapp import (
    MAX_BUTTON_BODY,
    MAX_BUTTON_TITLE,
    MAX_ROW_DESCRIPTION,
    MAX_ROW_TITLE,
    MAX_ROWS,
    MAX_TEXT,
    MORE,
    OWN_NUMBER,
    Ignored,
    InboundMessage,
    Labels,
    MalformedPayload,
    SystemChange,
    Templates,
    address,
    list_message,
    parse_notification,
    render,
    signature_matches,
    system_change,
    template_text,
    to_incoming,
    unique_titles,
    window_open,
)
from gotong.handlers.messages import Hint, Kind, Option, Reply
from gotong.models.outbox import HELD_AFTER

PHONE_ID = "1234567890"
LABELS = Labels(choose="Pilih", more="Lainnya…", use_my_number="Pakai nomor ini",
                share_location="Ketuk 📎 lalu Lokasi.")
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def envelope(*, messages: list[dict[str, object]] | None = None,
             statuses: list[dict[str, object]] | None = None,
             phone_number_id: str = PHONE_ID) -> dict[str, object]:
    value: dict[str, object] = {"messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": phone_number_id}}
    if messages is not None:
        value["messages"] = messages
        value["contacts"] = [{"profile": {"name": "Siti"}, "wa_id": "6281234567890"}]
    if statuses is not None:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]}


def inbound(message: dict[str, object]) -> InboundMessage:
    [parsed], _ = parse_notification(envelope(messages=[{
        "from": "6281234567890", "id": "wamid.1", "timestamp": "1790000000", **message}]),
        PHONE_ID)
    return parsed


# --- inbound ------------------------------------------------------------------------


def test_the_signature_is_an_hmac_of_the_raw_body() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    good = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert signature_matches(body, good, "app-secret")
    assert signature_matches(body, good.upper().replace("SHA256=", "sha256="), "app-secret")
    for header in (None, "", good[7:], "sha1=" + good[7:], good[:-1] + "0",
                   "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()):
        assert not signature_matches(body, header, "app-secret"), header
    assert not signature_matches(body + b" ", good, "app-secret")
    # Without a configured secret nothing is accepted.
    assert not signature_matches(body, good, "")


def test_each_kind_of_message_becomes_an_incoming() -> None:
    text = to_incoming(inbound({"type": "text", "text": {"body": "halo"}}))
    assert (text.kind, text.text, text.chat_id, text.external_id, text.channel) == (
        Kind.TEXT, "halo", "6281234567890", "wamid.1", "whatsapp")
    command = to_incoming(inbound({"type": "text", "text": {"body": "/Status GT-1"}}))
    assert (command.kind, command.command, command.args) == (Kind.COMMAND, "status", "GT-1")
    button = to_incoming(inbound({"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"id": "consent|yes", "title": "Ya"}}}))
    assert (button.kind, button.context, button.option) == (Kind.CHOICE, "consent", "yes")
    row = to_incoming(inbound({"type": "interactive", "interactive": {
        "type": "list_reply", "list_reply": {"id": "menu|request", "title": "Minta"}}}))
    assert (row.kind, row.context, row.option) == (Kind.CHOICE, "menu", "request")
    forged = to_incoming(inbound({"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"id": "no separator", "title": "x"}}}))
    assert (forged.kind, forged.context, forged.option) == (Kind.CHOICE, "", "")
    own = to_incoming(inbound({"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"id": f"phone|{OWN_NUMBER}", "title": "x"}}}))
    assert (own.kind, own.phone, own.phone_is_own) == (Kind.CONTACT, "+6281234567890", True)
    place = to_incoming(inbound({"type": "location", "location": {
        "latitude": -6.2, "longitude": 106.8}}))
    assert (place.kind, place.latitude, place.longitude) == (Kind.LOCATION, -6.2, 106.8)
    photo = to_incoming(inbound({"type": "image", "image": {
        "id": "media-1", "mime_type": "image/jpeg", "caption": "diterima"}}))
    assert (photo.kind, photo.media_id, photo.text) == (Kind.PHOTO, "media-1", "diterima")
    mine = to_incoming(inbound({"type": "contacts", "contacts": [{
        "name": {"formatted_name": "Siti"},
        "phones": [{"phone": "+62 812-3456-7890", "wa_id": "6281234567890"}]}]}))
    assert (mine.kind, mine.phone_is_own) == (Kind.CONTACT, True)
    other = to_incoming(inbound({"type": "contacts", "contacts": [{
        "phones": [{"phone": "+62 813-0000-1111", "type": "CELL"}]}]}))
    assert (other.kind, other.phone, other.phone_is_own) == (Kind.CONTACT, "+62 813-0000-1111",
                                                             False)
    assert to_incoming(inbound({"type": "sticker", "sticker": {"id": "s"}})).kind \
        == Kind.STICKER
    assert to_incoming(inbound({"type": "audio", "audio": {"id": "a"}})).kind == Kind.VOICE
    odd_ones: list[dict[str, object]] = [
                {"type": "unsupported", "errors": [{"code": 131051}]},
                {"type": "video", "video": {"id": "v"}}, {"type": "contacts", "contacts": []},
                {"type": "interactive", "interactive": {"type": "nfm_reply"}}]
    for odd in odd_ones:
        assert to_incoming(inbound(odd)).kind == Kind.OTHER, odd
    template_button = to_incoming(inbound({"type": "button", "button": {
        "text": "Lihat", "payload": "x"}}))
    assert (template_button.kind, template_button.text) == (Kind.TEXT, "Lihat")


def test_notifications_yield_messages_and_statuses_of_our_number_only() -> None:
    messages, statuses = parse_notification(envelope(
        messages=[{"from": "628111", "id": "wamid.a", "timestamp": "1790000000",
                   "type": "text", "text": {"body": "a"}},
                  {"from": "+62 bad", "id": "wamid.b", "type": "text"},
                  {"id": "wamid.c"}, "not a dict"],  # type: ignore[list-item]
        statuses=[{"id": "wamid.x", "status": "read"},
                  {"id": "wamid.y", "status": "failed", "errors": [{"code": 131026}]},
                  {"status": "sent"}]), PHONE_ID)
    assert [m.message_id for m in messages] == ["wamid.a"]
    assert messages[0].sent_at == datetime.fromtimestamp(1790000000, UTC)
    assert [(s.message_id, s.status, s.error_codes) for s in statuses] == [
        ("wamid.x", "read", ()), ("wamid.y", "failed", (131026,))]
    # Another number of the business account is not ours to answer.
    assert parse_notification(envelope(messages=[{"from": "628111", "id": "wamid.a"}],
                                       phone_number_id="999"), PHONE_ID) == ([], [])
    bad_ones: list[object] = [[], "x", {"object": "page"}, {"entry": []}]
    for bad in bad_ones:
        with pytest.raises(MalformedPayload):
            parse_notification(bad, PHONE_ID)
    assert parse_notification({"object": "whatsapp_business_account", "entry": "x"},
                              PHONE_ID) == ([], [])


# --- outbound -----------------------------------------------------------------------


def options(*labels: str) -> tuple[Option, ...]:
    return tuple(Option(f"o{i}", label, number=i + 1) for i, label in enumerate(labels))


def test_plain_text_is_split_at_4096() -> None:
    text = "\n".join(f"baris {i} " + "x" * 90 for i in range(100))
    payloads, page = render(Reply(text=text), LABELS)
    assert page is None
    bodies = [p["text"]["body"] for p in payloads]
    assert len(bodies) == 3 and all(len(b) <= MAX_TEXT for b in bodies)
    assert "\n".join(bodies) == text


def test_up_to_three_options_are_reply_buttons_with_short_unique_titles() -> None:
    reply = Reply(text="Setuju?", context="consent", options=options(
        "Ya, saya setuju dengan semuanya", "Ya, saya setuju dengan sebagian"),
        controls=(Option("back", "Kembali"),))
    [payload], page = render(reply, LABELS)
    assert page is None
    interactive = payload["interactive"]
    assert interactive["type"] == "button" and interactive["body"]["text"] == "Setuju?"
    buttons = [b["reply"] for b in interactive["action"]["buttons"]]
    assert [b["id"] for b in buttons] == ["consent|o0", "consent|o1", "consent|back"]
    titles = [b["title"] for b in buttons]
    assert all(len(t) <= MAX_BUTTON_TITLE for t in titles) and len(set(titles)) == 3
    assert titles[2] == "Kembali"


def test_a_long_question_with_buttons_sends_its_text_first() -> None:
    text = "\n".join("x" * 99 for _ in range(30))  # 2999 characters
    payloads, _ = render(Reply(text=text, context="c", options=options("Ya", "Tidak")), LABELS)
    assert [p["type"] for p in payloads] == ["text", "interactive"]
    body = payloads[-1]["interactive"]["body"]["text"]
    assert len(body) <= MAX_BUTTON_BODY
    assert payloads[0]["text"]["body"] + "\n" + body == text


def test_four_to_ten_options_are_a_list_and_more_are_pages_with_more() -> None:
    labels = [f"Kelurahan nomor {i} yang namanya panjang sekali" for i in range(1, 8)]
    reply = Reply(text="Pilih kelurahan", context="area", options=options(*labels),
                  controls=(Option("next", "Berikutnya"),), hint=Hint.SINGLE)
    [payload], page = render(reply, LABELS)
    assert page is None
    action = payload["interactive"]["action"]
    assert payload["interactive"]["type"] == "list" and action["button"] == "Pilih"
    rows = action["sections"][0]["rows"]
    assert len(rows) == 8 and rows[-1]["id"] == "area|next"
    assert all(len(r["title"]) <= MAX_ROW_TITLE for r in rows)
    assert len({r["title"] for r in rows}) == 8
    # A cut title keeps the whole label in the description.
    assert rows[0]["description"] == labels[0][:MAX_ROW_DESCRIPTION]

    many = Reply(text="Pilih", context="area", options=options(*[f"Area {i}" for i in
                                                                 range(1, 24)]))
    [first], page = render(many, LABELS)
    rows = first["interactive"]["action"]["sections"][0]["rows"]
    assert len(rows) == MAX_ROWS
    assert rows[-1] == {"id": f"area|{MORE}9", "title": "Lainnya…"}
    assert page is not None and page.context == "area"
    assert [label for _, label in page.options] == [f"Area {i}" for i in range(1, 24)]
    # Each later page: the next options, "more" while some are left.
    second = list_message(page, 9, "Lainnya:", LABELS)["interactive"]["action"]
    assert [r["title"] for r in second["sections"][0]["rows"]] == [
        *(f"Area {i}" for i in range(10, 19)), "Lainnya…"]
    last = list_message(page, 18, "Lainnya:", LABELS)["interactive"]["action"]
    assert [r["title"] for r in last["sections"][0]["rows"]] == [
        f"Area {i}" for i in range(19, 24)]


def test_the_controls_of_a_long_list_are_on_every_page() -> None:
    """Done, next page, back: never hidden behind "more"."""
    reply = Reply(text="Wilayah?", context="areas", hint=Hint.MULTI,
                  options=options(*[f"Kecamatan {i}" for i in range(1, 9)]),
                  controls=(Option(">1", "Berikutnya »"), Option("done", "Selesai"),
                            Option("back", "« Kembali")))
    [payload], page = render(reply, LABELS)
    rows = payload["interactive"]["action"]["sections"][0]["rows"]
    assert len(rows) == MAX_ROWS
    assert [r["id"] for r in rows[-4:]] == [f"areas|{MORE}6", "areas|>1", "areas|done",
                                            "areas|back"]
    assert page is not None
    rest = list_message(page, 6, "…", LABELS)["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rest] == ["areas|o6", "areas|o7", "areas|>1", "areas|done",
                                       "areas|back"]


def test_multi_select_marks_the_chosen_options() -> None:
    reply = Reply(text="Kebutuhan?", context="needs", hint=Hint.MULTI, options=(
        Option("food", "Makanan", selected=True), Option("medicine", "Obat")),
        controls=(Option("done", "Selesai"),))
    [payload], _ = render(reply, LABELS)
    titles = [b["reply"]["title"] for b in payload["interactive"]["action"]["buttons"]]
    assert titles == ["✅ Makanan", "▫️ Obat", "Selesai"]


def test_the_phone_and_location_questions_fit_whatsapp() -> None:
    [phone], _ = render(Reply(text="Nomor HP?", context="phone", hint=Hint.CONTACT,
                              contact_label="Bagikan nomor"), LABELS)
    [button] = phone["interactive"]["action"]["buttons"]
    assert button["reply"] == {"id": f"phone|{OWN_NUMBER}", "title": "Pakai nomor ini"}
    [place], _ = render(Reply(text="Di mana?", hint=Hint.LOCATION,
                              contact_label="Bagikan lokasi"), LABELS)
    assert place["text"]["body"] == "Di mana?\n\nKetuk 📎 lalu Lokasi."
    # Known by a username alone: no number to use in one tap, so it is typed.
    labels = replace(LABELS, type_my_number="Ketik nomor Anda.")
    [typed], _ = render(Reply(text="Nomor HP?", context="phone", hint=Hint.CONTACT),
                        labels, has_number=False)
    assert typed == {"type": "text", "text": {"body": "Nomor HP?\n\nKetik nomor Anda.",
                                              "preview_url": False}}
    assert address("6281234567890") == {"to": "6281234567890"}
    assert address("ID.1502576394655843") == {"recipient": "ID.1502576394655843"}


def test_a_sender_is_named_by_number_by_user_id_or_both() -> None:
    """The shapes Meta documents for usernames (and one seen in the wild: the user id in
    `from`)."""
    user_id = "US.13491208655302741918"
    text = {"id": "wamid.1", "timestamp": "1790000000", "type": "text",
            "text": {"body": "halo"}}

    def parsed(message: dict[str, object], contacts: list[dict[str, object]]
               ) -> tuple[str, str | None, str | None]:
        value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_ID},
                 "contacts": contacts, "messages": [{**text, **message}]}
        [found], _ = parse_notification(
            {"object": "whatsapp_business_account",
             "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]},
            PHONE_ID)
        return found.sender, found.phone, found.user_id

    profile = {"name": "Siti", "username": "@siti"}
    assert parsed({"from_user_id": user_id}, [{"profile": profile, "user_id": user_id}]) \
        == (user_id, None, user_id)
    assert parsed({"from": "6281234567890", "from_user_id": user_id},
                  [{"profile": profile, "wa_id": "6281234567890", "user_id": user_id}]) \
        == ("6281234567890", "6281234567890", user_id)
    assert parsed({"from": user_id}, []) == (user_id, None, user_id)
    # Named in the contacts array only: kept with the message, which alone is stored.
    assert parsed({"from": "6281234567890"},
                  [{"wa_id": "6281234567890", "user_id": user_id}])[2] == user_id
    incoming = to_incoming(inbound({"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"id": f"phone|{OWN_NUMBER}"}}}))
    assert (incoming.sender_phone, incoming.phone) == ("+6281234567890", "+6281234567890")
    # "Use this number" from someone whose number we do not have is a stale button.
    nobody = to_incoming(InboundMessage("wamid.2", user_id, NOW, {
        "type": "interactive", "interactive": {"type": "button_reply", "button_reply": {
            "id": f"phone|{OWN_NUMBER}"}}}, None, user_id))
    assert (nobody.kind, nobody.phone, nobody.sender_phone, nobody.sender_user_id) == (
        Kind.CHOICE, None, None, user_id)


def test_system_messages_say_what_changed() -> None:
    def change(system: dict[str, object]) -> SystemChange:
        return system_change({"type": "system", "system": system})

    new_id = "ID.50000000000000000001"
    assert change({"type": "user_changed_number", "wa_id": "6281298765432",
                   "user_id": new_id}) == SystemChange("number", "6281298765432", new_id)
    # The older name, and the older field for the new number.
    assert change({"type": "customer_changed_number", "new_wa_id": "6281298765432"}) \
        == SystemChange("number", "6281298765432", None)
    assert change({"type": "customer_identity_changed", "identity": "abc"}) \
        == SystemChange("identity")
    assert change({"type": "user_changed_user_id", "user_id": new_id}) \
        == SystemChange("user_id", None, new_id)
    for bad in ({"type": "user_changed_number", "wa_id": "٦٢٨١٢٩٨٧٦٥٤٣٢"},
                {"type": "user_changed_number", "wa_id": "6281298765432", "user_id": "x"},
                {"type": "user_changed_user_id"}):
        with pytest.raises(Ignored):
            change(bad)


@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=10),
       st.integers(min_value=5, max_value=24))
def test_titles_are_cut_and_kept_unique(labels: list[str], limit: int) -> None:
    titles = unique_titles(labels, limit)
    assert len(titles) == len(labels)
    assert all(1 <= len(t) <= limit for t in titles)
    assert len(set(titles)) == len(titles)


def test_templates_and_the_window() -> None:
    templates = Templates.parse(["notice.request_verified = gotong_verified"], "gotong_update")
    assert templates.by_key == {"notice.request_verified": "gotong_verified"}
    assert templates.fallback == "gotong_update"
    assert template_text("Baris satu\n\nBaris   dua\t!") == "Baris satu Baris dua !"
    assert len(template_text("x" * 5000)) == 1024
    assert not window_open(None, NOW)
    assert window_open(NOW - timedelta(hours=23), NOW)
    assert not window_open(NOW - timedelta(hours=24), NOW)
    # Not in the last minutes either: the message could arrive after the window.
    assert not window_open(NOW - timedelta(hours=24) + timedelta(minutes=2), NOW)
    assert window_open(NOW - HELD_AFTER + timedelta(seconds=1), NOW)
