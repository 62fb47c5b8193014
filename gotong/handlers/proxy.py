"""Proxies: a trusted person (an RT/RW head, a village official, a volunteer) whom an
aggregator invited registers households without a phone, or without a smartphone, with
the household's own form, and follows what became of them."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from gotong.handlers import forms, on_file
from gotong.handlers.forms import Accept, Answers, Choice, Field, FieldKind, Form, Parsed, Stop
from gotong.handlers.household import HOUSEHOLD_REQUEST, new_request
from gotong.handlers.messages import Kind, Reply
from gotong.handlers.my_data import start_afresh
from gotong.handlers.plain import as_typed
from gotong.handlers.staff import begin_invited, coverage, not_staff
from gotong.handlers.turn import Turn
from gotong.handlers.validators import Invalid, parse_id, parse_person_name, parse_phone
from gotong.models.aggregator import (
    InviteRole,
    covered_areas,
    create_invite,
    get_aggregator,
    use_invite,
)
from gotong.models.audit import audit
from gotong.models.delivery import UNDER_WAY, Delivery
from gotong.models.erasure import erase_person, holds_nothing
from gotong.models.help_request import ByProxy, open_households, registered_by, submit_request
from gotong.models.number_asks import Verdict, may_ask, number_key
from gotong.models.person import person_contact_ids, same_person
from gotong.models.phone_confirmation import (
    CONFIRM_CONTEXT,
    NO,
    YES,
    AnswerRefused,
    Refused,
    answer_question,
    ask_household,
    pending_for,
)
from gotong.models.proxy import (
    NewProxy,
    Proxy,
    household_contact,
    number_owner,
    proxies_of,
    register_proxy,
    was_removed,
)

log = logging.getLogger(__name__)

# An invite staff make in chat admits one proxy within a week.
CHAT_INVITE_VALID = timedelta(days=7)


# --- joining with an invite -----------------------------------------------------------


def _parse_name(turn: Turn, text: str, answers: Answers) -> Parsed:
    name = parse_person_name(text)
    return name if isinstance(name, Invalid) else Accept({"name": name})


def _parse_own_phone(turn: Turn, text: str, answers: Answers) -> Parsed:
    # It stands in for the households that have none: only the phone the chat app
    # vouches for is taken.
    if turn.incoming.kind != Kind.CONTACT or not turn.incoming.phone_is_own:
        return Invalid("proxy.share_phone")
    phone = parse_phone(text)
    return phone if isinstance(phone, Invalid) else Accept({"phone": phone})


async def _join(turn: Turn, answers: Answers) -> list[Reply]:
    invite = await use_invite(turn.session, int(answers["invite"]), turn.now)
    if invite is None:
        return [Reply(text=turn.t("proxy.invite_gone"))]
    await register_proxy(turn.session, turn.contact.id, NewProxy(
        aggregator_id=invite.aggregator_id, name=answers["name"], phone=answers["phone"],
        invite_id=invite.id), turn.now)
    aggregator = await get_aggregator(turn.session, invite.aggregator_id)
    audit(turn.session, turn.now, "proxy_join", "done", contact_id=turn.contact.id,
          aggregator_id=aggregator.id)
    log.info("a proxy joined aggregator %d", aggregator.id)
    return [Reply(text=turn.t("proxy.joined", name=aggregator.name))]


PROXY_SIGNUP = Form(
    name="proxy_signup",
    code="pj",
    summary_title="proxy.signup_summary_title",
    submit=_join,
    state_keys=frozenset({"invite", "aggregator"}),
    fields=(
        Field("name", FieldKind.TEXT, "proxy.name", label="field.name",
              parse_text=_parse_name, show=lambda t, a: str(a["name"])),
        Field("phone", FieldKind.PHONE, "proxy.own_phone", label="field.phone",
              parse_text=_parse_own_phone, show=lambda t, a: str(a["phone"])),
    ),
)


async def sign_up(turn: Turn, code: str) -> list[Reply]:
    """/proxy CODE: check the code (used up only when the form is sent) and ask."""
    return await begin_invited(turn, code, InviteRole.PROXY, PROXY_SIGNUP, "proxy.how",
                               "proxy.welcome")


async def invite_proxy(turn: Turn) -> list[Reply]:
    """/invite_proxy: staff get a code for one proxy of their aggregator."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "invite_proxy")
    aggregator_id = staff.aggregator_ids[0]
    code = await create_invite(turn.session, aggregator_id, InviteRole.PROXY, 1,
                               turn.now + CHAT_INVITE_VALID, turn.now)
    audit(turn.session, turn.now, "invite_proxy", "done", contact_id=turn.contact.id,
          aggregator_id=aggregator_id)
    return [Reply(text=turn.t("proxy.invite_code", code=code))]


# --- registering a household ----------------------------------------------------------


def _on_consent(turn: Turn, option: str, answers: Answers) -> Parsed:
    if option == "yes":
        # When the proxy confirmed it, kept on the request with who did.
        return Accept({"consent": turn.now.isoformat()})
    return Stop("proxy.consent_needed")


def _parse_household_phone(turn: Turn, text: str, answers: Answers) -> Parsed:
    phone = parse_phone(text)
    return phone if isinstance(phone, Invalid) else Accept({"phone": phone})


# The household's own form, asked of the proxy: the proxy confirms the household's
# consent instead of giving their own, and gives the household's phone if it has one.
_PROXY_FIELDS = {
    "consent": Field("consent", FieldKind.CHOICE, "proxy.consent",
                     choices=(Choice("yes", "proxy.consent_yes"),
                              Choice("no", "proxy.consent_no")),
                     on_choice=_on_consent),
    "phone": Field("phone", FieldKind.TEXT, "proxy.household_phone", label="field.phone",
                   optional=True, parse_text=_parse_household_phone,
                   show=lambda t, a: str(a["phone"]) or t.t("proxy.no_phone")),
}


async def _checked(turn: Turn) -> tuple[list[Proxy], list[Reply] | None]:
    """The person's proxy memberships, or why they cannot register a household now."""
    # Locked: the operator revoking the invite at this moment takes turns with this.
    proxies = await proxies_of(turn.session, turn.contact.id, lock=True)
    if not proxies:
        # Taken out by the operator with their invite code: told so, not "for proxies".
        removed = await was_removed(turn.session, turn.contact.id)
        audit(turn.session, turn.now, "proxy_register", "removed" if removed else "not proxy",
              contact_id=turn.contact.id)
        return [], [Reply(text=turn.t("proxy.removed" if removed else "proxy.only"))]
    limit = turn.settings.max_proxy_households
    if await open_households(turn.session, [p.id for p in proxies], turn.now) >= limit:
        audit(turn.session, turn.now, "proxy_register", "limit", contact_id=turn.contact.id,
              aggregator_id=proxies[0].aggregator_id)
        return proxies, [Reply(text=turn.t("proxy.limit", max=limit))]
    return proxies, None


async def _precheck(turn: Turn) -> list[Reply] | None:
    return (await _checked(turn))[1]


async def _register(turn: Turn, answers: Answers) -> list[Reply]:
    # Checked again: the role may have gone, or the limit been reached, since the start.
    proxies, refused = await _checked(turn)
    if refused is not None:
        return refused
    village_id = int(answers["kelurahan"])
    covered = await covered_areas(turn.session, [p.aggregator_id for p in proxies])
    proxy = next((p for p in proxies if village_id in turn.areas.villages_under(
        covered.get(p.aggregator_id, []))), None)
    if proxy is None:
        audit(turn.session, turn.now, "proxy_register", "outside area",
              contact_id=turn.contact.id, aggregator_id=proxies[0].aggregator_id)
        return [Reply(text=turn.t("proxy.outside_area"))]
    phone = str(answers["phone"])
    # The number's owner, if known. A number of the proxy's own (on any of their apps)
    # asks nobody: the news comes to them anyway.
    owner = await number_owner(turn.session, phone) if phone else None
    own_number = bool(phone) and owner is not None and await same_person(
        turn.session, owner.id, turn.contact.id)
    # A number that said no lately, or was asked as often as a day allows, is not asked:
    # checked (and counted) before anything is made for it.
    verdict = await may_ask(turn.session, number_key(phone, turn.settings.nik_key),
                            await person_contact_ids(turn.session, turn.contact.id),
                            turn.now, turn.settings.number_asks) \
        if phone and not own_number else None
    # Until the household confirms the number, the request is registered as for a
    # household without a phone: news and delivery code go to the proxy, and the proxy's
    # number is the one staff and volunteers see (models/phone_confirmation.py says why).
    request, _ = await submit_request(
        turn.session, turn.contact.id,
        new_request(answers, phone if own_number else proxy.phone),
        now=turn.now, duplicate_window=turn.settings.duplicate_window,
        by_proxy=ByProxy(proxy_id=proxy.id, contact_id=turn.contact.id,
                         consent_at=datetime.fromisoformat(str(answers["consent"]))))
    audit(turn.session, turn.now, "proxy_register", "done", contact_id=turn.contact.id,
          aggregator_id=proxy.aggregator_id)
    log.info("household request %s registered by a proxy%s", request.reference,
             " (possible duplicate)" if request.duplicate_of_id else "")
    if verdict is Verdict.ASK:
        household = await household_contact(turn.session, phone,
                                            turn.settings.default_language, turn.now)
        aggregator = await get_aggregator(turn.session, proxy.aggregator_id)
        await ask_household(turn.session, request, household.id, phone, aggregator.name,
                            turn.now)
    elif verdict is not None:
        audit(turn.session, turn.now, "proxy_phone", "not asked", contact_id=turn.contact.id,
              aggregator_id=proxy.aggregator_id, detail=verdict.value)
    # The proxy hears where the news goes: to them, and to the household once it has
    # said the number is its own. Only the proxy whose request the number said no to
    # hears that it did; any other hears the words of a number asked too often today.
    key = "proxy.registered_no_phone" if verdict is None else {
        Verdict.ASK: "proxy.registered_pending",
        Verdict.DECLINED_YOURS: "proxy.registered_declined_before",
        Verdict.NOT_NOW: "proxy.registered_not_asked"}[verdict]
    return [Reply(text=turn.t(key, reference=request.reference,
                              name=as_typed(request.head_name)))]


PROXY_REQUEST = dataclasses.replace(
    HOUSEHOLD_REQUEST,
    name="proxy_request",
    code="px",
    summary_title="proxy.summary_title",
    submit=_register,
    precheck=_precheck,
    menu_item=None,
    # Details on file are the proxy's own, never the household's: not offered.
    start=None,
    fields=tuple(_PROXY_FIELDS.get(f.name, f) for f in HOUSEHOLD_REQUEST.fields
                 if f.name != on_file.FIELD),
)


async def register_household(turn: Turn) -> list[Reply]:
    """/register_household: a proxy starts (or resumes) the form for a household."""
    if turn.conversation.dialog == PROXY_REQUEST.name:
        return [forms.question(turn, PROXY_REQUEST, prefix=turn.t("dialog.continue"))]
    return await forms.begin(turn, PROXY_REQUEST)


# --- the household's answer about its phone -------------------------------------------

PHONE_CONTEXT = CONFIRM_CONTEXT


async def on_phone_button(turn: Turn, option: str) -> list[Reply]:
    """The owner of a phone a proxy gave answers "is this your household?": yes, the
    request is theirs from now on; no, the number leaves it. The model checks the
    button's secret and that the question was theirs."""
    action, _, rest = option.partition(":")
    number, _, token = rest.partition(":")
    key = parse_id(number)
    if action not in (YES, NO) or key is None or not token:
        return [Reply(text=turn.t("button.invalid"))]
    # As the contact was when this message came: made only for a proxy's question, and
    # not written from before.
    typed_only = turn.contact.proxy_typed_at is not None
    try:
        answered = await answer_question(turn.session, turn.contact.id, key, token,
                                         action == YES, turn.now, turn.settings.nik_key)
    except AnswerRefused as refused:
        if refused.reason is Refused.CLOSED:
            return [Reply(text=turn.t("proxy.phone_closed"))]
        return [Reply(text=turn.t("proxy.phone_not_yours"))]
    request = answered.request
    log.info("the household of request %s %s the phone its proxy gave", request.reference,
             "confirmed" if answered.confirmed else "declined")
    if not answered.confirmed:
        # Nothing more of the request: the number's owner said it is not theirs. A
        # contact that was made only to ask them, and holds nothing else, is erased: the
        # chat goes on as a new contact, which no broadcast reaches until they write.
        if typed_only and await holds_nothing(turn.session, turn.contact.id):
            await erase_person(turn.session, turn.areas, turn.contact.id, turn.now,
                               why="number declined")
            await start_afresh(turn, proxy_typed=True)
        return [Reply(text=turn.t("proxy.phone_declined"))]
    return [Reply(text=turn.t("proxy.phone_confirmed", reference=request.reference,
                              status=turn.t(f"status.{request.status}")))]


# --- following them -----------------------------------------------------------------


async def households_status(turn: Turn) -> list[Reply]:
    """For a proxy: the households they registered, with their references and status;
    nothing for anyone else."""
    proxies = await proxies_of(turn.session, turn.contact.id)
    if not proxies:
        return []
    requests = await registered_by(turn.session, [p.id for p in proxies])
    if not requests:
        return [Reply(text=turn.t("proxy.status_none"))]
    # The delivery codes of households without a phone: the proxy hands them over.
    rows = await turn.session.execute(
        select(Delivery.request_id, Delivery.code)
        .where(Delivery.request_id.in_([r.id for r in requests
                                        if r.contact_id == turn.contact.id]),
               Delivery.status.in_(UNDER_WAY)))
    codes = {request_id: code for request_id, code in rows.all()}
    asked = await pending_for(turn.session, [r.id for r in requests])
    lines = [turn.t("proxy.status_title", count=len(requests))]
    for r in requests:
        lines.append(turn.t("proxy.status_line", reference=r.reference,
                            name=as_typed(r.head_name), status=turn.t(f"status.{r.status}")))
        if r.id in asked:
            lines.append(turn.t("proxy.status_phone_pending"))
        if codes.get(r.id):
            lines.append(turn.t("proxy.status_code", code=codes[r.id]))
    return [Reply(text="\n".join(lines))]
