"""/data_saya (/my_data): everything Gotong holds about the person, in plain words; and
/hapus_data (/delete_my_data): erasing it after a confirmation (UU 27/2022)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, or_, select

from gotong.handlers.forms import Choice, match_choice
from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.handlers.plain import as_typed
from gotong.handlers.stock import amount_text
from gotong.handlers.turn import Turn
from gotong.models.aggregator import Aggregator, StaffMember
from gotong.models.contact import Contact, ContactRole, Role
from gotong.models.conversation import Conversation
from gotong.models.delivery import Delivery
from gotong.models.erasure import erase_person
from gotong.models.help_request import (
    OPEN_STATUSES,
    HelpRequest,
    own_requests,
    registered_by,
    requests_of,
)
from gotong.models.inbound import InboundUpdate
from gotong.models.outbox import OutboxMessage
from gotong.models.person import person_contact_ids
from gotong.models.pledge import Handover, Pledge, PledgeStatus, pledges_of
from gotong.models.proxy import Proxy
from gotong.models.volunteer import Volunteer, VolunteerStatus

# The "erase my data" button under the data shown, and the confirmation's buttons.
MY_DATA_CONTEXT = "mydata"
ERASE_CONTEXT = "erase"
ERASE = "erase"
YES = "yes"
NO = "no"
# Scratch key of the confirmation that waits for a typed or tapped answer; the scratch
# also holds a token that the "yes" button must carry, so that only the button of this
# very question erases anything.
ERASE_OVERLAY = "erase_data"
TOKEN_KEY = "erase"
# A message longer than this is split: the apps take 4096 characters, and a long one is
# hard to read on a small screen.
MAX_MESSAGE = 3000
# How long after a contact was joined to a person by its phone it cannot read or erase
# what the person's other apps hold: a number given up and handed to someone else must
# not hand over the data of the one who had it (they are told, and can undo the link).
LINK_QUIET = timedelta(days=3)
CHANNEL_KEYS = {"telegram": "mydata.app_telegram", "whatsapp": "mydata.app_whatsapp"}
ROLE_KEYS = {Role.HOUSEHOLD: "mydata.role_household", Role.DONOR: "mydata.role_donor",
             Role.VOLUNTEER: "mydata.role_volunteer", Role.STAFF: "mydata.role_staff",
             Role.PROXY: "mydata.role_proxy"}


# --- what is held --------------------------------------------------------------------


async def _linked_too_recently(turn: Turn, contact_ids: Sequence[int]) -> list[Reply] | None:
    """The refusal for a contact joined to the person by its phone a moment ago, while
    the person's other apps hold data of theirs; None when it may go on."""
    if len(contact_ids) < 2:
        return None
    linked_at = await turn.session.scalar(
        select(Contact.phone_linked_at).where(Contact.id == turn.contact.id))
    if linked_at is None or linked_at + LINK_QUIET <= turn.now:
        return None
    return [Reply(text=turn.t("mydata.linked_recently", days=LINK_QUIET.days))]


async def show_my_data(turn: Turn) -> list[Reply]:
    """Everything held about the person, on every linked app, in a few messages."""
    session = turn.session
    contact_ids = await person_contact_ids(session, turn.contact.id)
    refused = await _linked_too_recently(turn, contact_ids)
    if refused is not None:
        return refused
    sections = [await _contacts(turn, contact_ids), await _roles(turn, contact_ids)]
    sections += await _requests(turn)
    sections += await _pledges(turn)
    sections.append(await _messages(turn, contact_ids))
    sections.append(turn.t("mydata.kept", retention=turn.settings.retention.days,
                           inbound=turn.settings.keep_inbound.days,
                           outbox=turn.settings.keep_messages.days))
    texts = _split([turn.t("mydata.intro"), *filter(None, sections)])
    replies = [Reply(text=text) for text in texts[:-1]]
    erase = Option(ERASE, turn.t("mydata.erase_button"), number=1)
    replies.append(Reply(text=texts[-1], options=(erase,), hint=Hint.SINGLE,
                         context=MY_DATA_CONTEXT))
    return replies


def _split(blocks: Sequence[str]) -> list[str]:
    """Blocks joined into messages of at most MAX_MESSAGE characters (a longer block
    alone, cut at lines)."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        for part in _cut(block):
            if current and len(current) + 2 + len(part) > MAX_MESSAGE:
                messages.append(current)
                current = ""
            current = f"{current}\n\n{part}" if current else part
    if current:
        messages.append(current)
    return messages


def _cut(block: str) -> list[str]:
    if len(block) <= MAX_MESSAGE:
        return [block]
    parts: list[str] = []
    current = ""
    for line in block.split("\n"):
        line = line[:MAX_MESSAGE]
        if current and len(current) + 1 + len(line) > MAX_MESSAGE:
            parts.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    return [*parts, current] if current else parts


async def _contacts(turn: Turn, contact_ids: list[int]) -> str:
    contacts = (await turn.session.scalars(
        select(Contact).where(Contact.id.in_(contact_ids)).order_by(Contact.id))).all()
    lines = []
    for contact in contacts:
        app = turn.t(CHANNEL_KEYS[contact.channel]) if contact.channel in CHANNEL_KEYS \
            else contact.channel
        lines.append(turn.t("mydata.contact", app=app, address=contact.chat_id,
                            chat_language=contact.language,
                            since=turn.format_time(contact.created_at)))
        if contact.verified_phone:
            lines.append(turn.t("mydata.contact_phone", phone=contact.verified_phone))
        if contact.opted_out_at is not None:
            lines.append(turn.t("mydata.contact_opted_out",
                                at=turn.format_time(contact.opted_out_at)))
    return "\n".join([turn.t("mydata.contacts_title"), *lines])


async def _roles(turn: Turn, contact_ids: list[int]) -> str:
    session = turn.session
    roles = set((await session.scalars(
        select(ContactRole.role).where(ContactRole.contact_id.in_(contact_ids)))).all())
    lines = [turn.t("mydata.roles", roles=", ".join(
        turn.t(key) for role, key in ROLE_KEYS.items() if role in roles)
        if roles else turn.t("mydata.none"))]
    staff_of = (await session.scalars(
        select(Aggregator.name).join(StaffMember, StaffMember.aggregator_id == Aggregator.id)
        .where(StaffMember.contact_id.in_(contact_ids)).order_by(Aggregator.name))).all()
    if staff_of:
        lines.append(turn.t("mydata.staff", aggregators=", ".join(staff_of)))
    volunteers = (await session.execute(
        select(Volunteer, Aggregator.name)
        .join(Aggregator, Aggregator.id == Volunteer.aggregator_id)
        .where(Volunteer.contact_id.in_(contact_ids)).order_by(Volunteer.id))).all()
    for volunteer, aggregator in volunteers:
        lines.append(turn.t("mydata.volunteer", aggregator=aggregator,
                            status=turn.t(_volunteer_status(volunteer.status)),
                            name=as_typed(volunteer.name), phone=volunteer.phone,
                            travel=turn.t(f"travel.{volunteer.travel}"),
                            capacity=volunteer.capacity))
    proxies = (await session.execute(
        select(Proxy, Aggregator.name)
        .join(Aggregator, Aggregator.id == Proxy.aggregator_id)
        .where(Proxy.contact_id.in_(contact_ids)).order_by(Proxy.id))).all()
    for proxy, aggregator in proxies:
        # The households they registered are the households' own data, not theirs.
        registered = len(await registered_by(session, [proxy.id]))
        lines.append(turn.t("mydata.proxy", aggregator=aggregator, name=as_typed(proxy.name),
                            phone=proxy.phone, count=registered))
    return "\n".join(lines)


def _volunteer_status(status: str) -> str:
    return {VolunteerStatus.APPROVED: "mydata.volunteer_approved",
            VolunteerStatus.PENDING: "mydata.volunteer_pending"}.get(
        VolunteerStatus(status), "mydata.volunteer_ended")


async def _requests(turn: Turn) -> list[str]:
    requests = await requests_of(turn.session, turn.contact.id)
    if not requests:
        return []
    deliveries: dict[int, list[Delivery]] = {}
    for delivery in (await turn.session.scalars(
            select(Delivery).where(Delivery.request_id.in_([r.id for r in requests]))
            .order_by(Delivery.id))).all():
        deliveries.setdefault(delivery.request_id, []).append(delivery)
    return [_request(turn, request, deliveries.get(request.id, []))
            for request in reversed(requests)]


def _request(turn: Turn, request: HelpRequest, deliveries: list[Delivery]) -> str:
    village = turn.areas.get(request.village_id)
    nik = turn.t("mydata.nik_on_file", last4=request.nik_last4) if request.nik_last4 \
        else turn.t("mydata.nik_on_file_hidden") if request.nik_hash \
        else turn.t("mydata.nik_none")
    vulnerable = ", ".join(turn.t(f"vulnerable.{v}") for v in request.vulnerabilities) \
        or turn.t("mydata.none")
    needs = [turn.t(f"need.{n}") for n in request.needs]
    if request.needs_other:
        needs.append(as_typed(request.needs_other))
    lines = [turn.t("mydata.request", reference=request.reference,
                    status=turn.t(f"status.{request.status}"),
                    name=as_typed(request.head_name), phone=request.phone,
                    street=as_typed(request.street), rt=request.rt, rw=request.rw,
                    kelurahan=village.name if village else "", size=request.household_size,
                    nik=nik, vulnerable=vulnerable,
                    needs=", ".join(needs) or turn.t("mydata.none"))]
    if request.erased_at is not None:
        lines.append(turn.t("mydata.request_erased", at=turn.format_time(request.erased_at)))
    lines.append(turn.t("mydata.consent", reference=request.reference,
                        at=turn.format_time(request.created_at)))
    lines.extend(turn.t("status.event", status=turn.t(f"status.{event.status}"),
                        at=turn.format_time(event.at)) for event in request.events)
    for delivery in deliveries:
        lines.append(turn.t("mydata.delivery",
                            what=amount_text(turn, delivery.category, delivery.quantity),
                            status=turn.t(f"delivery.{delivery.status}")))
        if delivery.rating is not None:
            lines.append(turn.t("mydata.rating", stars=delivery.rating,
                                comment=as_typed(delivery.rating_comment or "")))
    return "\n".join(lines)


async def _pledges(turn: Turn) -> list[str]:
    blocks = []
    for pledge in reversed(await pledges_of(turn.session, turn.contact.id)):
        lines = [turn.t("mydata.pledge", code=pledge.code,
                        status=turn.t(f"pledge.{pledge.status}"),
                        name=as_typed(pledge.donor_name), phone=pledge.phone,
                        what=amount_text(turn, pledge.category, pledge.quantity),
                        at=turn.format_time(pledge.created_at))]
        if pledge.handover == Handover.PICKUP and pledge.pickup_address:
            lines.append(turn.t("mydata.pickup", address=as_typed(pledge.pickup_address),
                                window=as_typed(pledge.pickup_window or "")))
        if pledge.erased_at is not None:
            lines.append(turn.t("mydata.request_erased",
                                at=turn.format_time(pledge.erased_at)))
        blocks.append("\n".join(lines))
    return blocks


async def _messages(turn: Turn, contact_ids: list[int]) -> str:
    """What of their conversations is kept: a form not finished, messages in transit."""
    session = turn.session
    contacts = (await session.execute(
        select(Contact.channel, Contact.chat_id, Contact.platform_user_id)
        .where(Contact.id.in_(contact_ids)))).all()
    received = 0
    for contact in contacts:
        addresses = [a for a in (contact.chat_id, contact.platform_user_id) if a]
        received += int(await session.scalar(
            select(func.count()).select_from(InboundUpdate)
            .where(InboundUpdate.channel == contact.channel,
                   InboundUpdate.chat_id.in_(addresses))) or 0)
    sent = int(await session.scalar(
        select(func.count()).select_from(OutboxMessage)
        .where(OutboxMessage.contact_id.in_(contact_ids))) or 0)
    lines = [turn.t("mydata.messages", received=received, sent=sent)]
    drafts = (await session.scalars(
        select(Conversation).where(Conversation.contact_id.in_(contact_ids),
                                   or_(Conversation.dialog.is_not(None),
                                       Conversation.step.is_not(None))))).all()
    for draft in drafts:
        lines.append(turn.t("mydata.draft", answers=len(draft.answers)))
    return "\n".join(lines)


async def on_my_data_button(turn: Turn, option: str) -> list[Reply]:
    """The "erase my data" button under the data shown."""
    if option != ERASE:
        return [Reply(text=turn.t("button.invalid"))]
    return await ask_erase(turn)


# --- erasing it ----------------------------------------------------------------------


async def ask_erase(turn: Turn) -> list[Reply]:
    """Say what erasing will do, and ask to confirm it with a button of this question."""
    session = turn.session
    contact_ids = await person_contact_ids(session, turn.contact.id)
    refused = await _linked_too_recently(turn, contact_ids)
    if refused is not None:
        return refused
    lines = [turn.t("erase.confirm")]
    open_requests = (await session.scalars(
        select(HelpRequest.reference).where(own_requests(contact_ids),
                                            HelpRequest.status.in_(OPEN_STATUSES))
        .order_by(HelpRequest.id))).all()
    if open_requests:
        lines.append(turn.t("erase.will_cancel", references=", ".join(open_requests)))
    open_pledges = (await session.scalars(
        select(Pledge.code).where(Pledge.contact_id.in_(contact_ids),
                                  Pledge.status == PledgeStatus.PLEDGED)
        .order_by(Pledge.id))).all()
    if open_pledges:
        lines.append(turn.t("erase.will_cancel_pledges", codes=", ".join(open_pledges)))
    staff_of = (await session.scalars(
        select(Aggregator.name).join(StaffMember, StaffMember.aggregator_id == Aggregator.id)
        .where(StaffMember.contact_id.in_(contact_ids)).order_by(Aggregator.name))).all()
    if staff_of:
        lines.append(turn.t("erase.will_end_staff", aggregators=", ".join(staff_of)))
    volunteering = await session.scalar(
        select(Volunteer.id).where(Volunteer.contact_id.in_(contact_ids),
                                   Volunteer.status.in_((VolunteerStatus.APPROVED,
                                                         VolunteerStatus.PENDING))).limit(1))
    if volunteering is not None:
        lines.append(turn.t("erase.will_end_volunteer"))
    token = secrets.token_hex(4)
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": ERASE_OVERLAY,
                                 TOKEN_KEY: token}
    options = (Option(f"{YES}:{token}", turn.t("erase.yes"), number=1),
               Option(NO, turn.t("erase.no"), number=2))
    return [Reply(text="\n\n".join(lines), options=options, hint=Hint.SINGLE,
                  context=ERASE_CONTEXT)]


async def on_erase_answer(turn: Turn, incoming: Incoming) -> list[Reply] | None:
    """The answer to the confirmation; None when the message is something else."""
    token = str(turn.conversation.scratch.get(TOKEN_KEY, ""))
    if incoming.kind == Kind.CHOICE and incoming.context == ERASE_CONTEXT:
        answer, _, tapped = (incoming.option or "").partition(":")
        if answer == YES and (not token or not secrets.compare_digest(tapped, token)):
            # A button of an earlier question, or one made up.
            _forget(turn)
            return [Reply(text=turn.t("button.stale"))]
    elif incoming.kind == Kind.TEXT:
        answer = match_choice(turn, incoming.text, [Choice(YES, "erase.yes"),
                                                    Choice(NO, "erase.no")]) or ""
        if not answer:
            return None
    else:
        return None
    _forget(turn)
    if answer != YES:
        return [Reply(text=turn.t("erase.kept"))]
    return await _erase(turn)


async def start_afresh(turn: Turn, *, proxy_typed: bool = False) -> None:
    """The turn's person was just erased: the chat is free again and goes on as a new
    contact, which holds only what any chat's first message gives (its address and
    language); `proxy_typed` keeps it out of broadcasts as the erased one was."""
    session, old = turn.session, turn.contact
    fresh = Contact(channel=old.channel, chat_id=old.chat_id,
                    platform_user_id=old.platform_user_id, language=old.language,
                    created_at=turn.now, last_inbound_at=old.last_inbound_at,
                    proxy_typed_at=turn.now if proxy_typed else None)
    session.add(fresh)
    await session.flush()
    conversation = Conversation(contact_id=fresh.id, answers={}, scratch={},
                                updated_at=turn.now)
    session.add(conversation)
    await session.flush()
    session.expunge(fresh)
    session.expunge(conversation)
    turn.restart(fresh, conversation)


def _forget(turn: Turn) -> None:
    turn.conversation.forget("overlay", TOKEN_KEY)


async def _erase(turn: Turn) -> list[Reply]:
    session = turn.session
    old = turn.contact
    # Asked before a link by phone, confirmed after it: checked again.
    refused = await _linked_too_recently(turn, await person_contact_ids(session, old.id))
    if refused is not None:
        return refused
    erased = await erase_person(session, turn.areas, old.id, turn.now)
    await start_afresh(turn)
    lines = [turn.t("erase.done")]
    if erased.requests_closed:
        lines.append(turn.t("erase.done_cancelled",
                            references=", ".join(erased.requests_closed)))
    if erased.staff_of:
        lines.append(turn.t("erase.done_staff", aggregators=", ".join(erased.staff_of)))
    return [Reply(text="\n\n".join(lines), remove_keyboard=True)]
