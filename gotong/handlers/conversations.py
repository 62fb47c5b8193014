"""One unit of work per inbound update, and the routing of an update to its handler.

For each update, in one transaction: record its platform id (a replay is dropped), load
the contact and conversation, run the step, write the conversation and whatever the
step changed; commit. The caller then sends the replies.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm.exc import StaleDataError

from gotong.handlers import (
    allocate,
    forms,
    linking,
    my_data,
    proxy,
    queue,
    review,
    staff,
    status,
    stock,
    support,
    tasks,
    volunteer,
)
from gotong.handlers.catalog import Catalog
from gotong.handlers.commands import (
    LANGUAGE_CONTEXT,
    LANGUAGE_NAMES,
    MENU_CONTEXT,
    command_menu,
    help_reply,
    language_reply,
    menu_items,
    menu_reply,
    resolve_command,
)
from gotong.handlers.donor import DONOR_PLEDGE
from gotong.handlers.forms import Form, match_choice
from gotong.handlers.household import HOUSEHOLD_REQUEST
from gotong.handlers.messages import Incoming, Kind, Reply
from gotong.handlers.notices import replies_to_body
from gotong.handlers.roles import load_roles
from gotong.handlers.turn import HandlerSettings, Turn, UnitOfWork, answered
from gotong.models.area import AreaDirectory
from gotong.models.base import process_name, utcnow
from gotong.models.contact import (
    LAST_INBOUND_PRECISION,
    Contact,
    get_or_create_contact,
    release_user_id,
    save_contact,
)
from gotong.models.conversation import (
    Conversation,
    get_or_create_conversation,
)
from gotong.models.coverage import CoverageSnapshot
from gotong.models.inbound import QueuedUpdate
from gotong.models.outbox import HELD_AFTER
from gotong.models.person import link_by_phone, link_contacts
from gotong.models.sending import release_held
from gotong.models.step_end import Finish, ReplyRow, end_step

log = logging.getLogger(__name__)

FORMS: dict[str, Form] = {form.name: form for form in (
    HOUSEHOLD_REQUEST, DONOR_PLEDGE, volunteer.VOLUNTEER_SIGNUP, proxy.PROXY_SIGNUP,
    proxy.PROXY_REQUEST)}
LANGUAGE_OVERLAY = "language"
# Scratch keys of the questions asked outside forms (language, confirmation, reason,
# quantity counted, allocation, a task's code or proof, a rating's comment).
OVERLAY_KEYS = frozenset({"overlay", "reference", "request", "pledge", "al", "task",
                          "rated", my_data.TOKEN_KEY, support.REPLYING})
ButtonHandler = Callable[[Turn, str], Awaitable[list[Reply]]]
AnswerHandler = Callable[[Turn, Incoming], Awaitable[list[Reply] | None]]
# Buttons of the screens outside forms, by context: each handler checks the person's
# role itself.
BUTTONS: dict[str, ButtonHandler] = {
    queue.QUEUE_CONTEXT: queue.on_queue_button,
    stock.INCOMING_CONTEXT: stock.on_incoming_button,
    allocate.CONTEXT: allocate.on_button,
    volunteer.APPROVAL_CONTEXT: volunteer.on_approval,
    tasks.TASK_CONTEXT: tasks.on_task_button,
    tasks.ASSIGN_CONTEXT: tasks.on_assign_button,
    review.REVIEW_CONTEXT: review.on_review_button,
    review.RECEIPT_CONTEXT: review.on_receipt,
    review.RATING_CONTEXT: review.on_rating,
    my_data.MY_DATA_CONTEXT: my_data.on_my_data_button,
    support.STAFF_CONTEXT: support.on_staff_button,
    linking.CONTEXT: linking.on_link_button,
    proxy.PHONE_CONTEXT: proxy.on_phone_button,
}
# Questions outside forms answered by typing, by overlay; a handler returns None when
# the message is not an answer, which ends the question. The context is that of the
# question's own buttons, stale once the question has ended.
QUESTIONS: dict[str, tuple[AnswerHandler, str]] = {
    queue.REASON_OVERLAY: (queue.on_reason, queue.REASON_CONTEXT),
    stock.COUNT_OVERLAY: (stock.on_count, stock.COUNT_CONTEXT),
    allocate.OVERLAY: (allocate.on_text, allocate.CONTEXT),
    tasks.TASK_OVERLAY: (tasks.on_task_answer, tasks.QUESTION_CONTEXT),
    review.COMMENT_OVERLAY: (review.on_comment, review.COMMENT_CONTEXT),
    my_data.ERASE_OVERLAY: (my_data.on_erase_answer, my_data.ERASE_CONTEXT),
    support.REPLY_OVERLAY: (support.on_reply, support.REPLY_CONTEXT),
}
# Commands that show a screen of their own (the person's role is checked by each).
SCREENS: dict[str, Callable[[Turn], Awaitable[list[Reply]]]] = {
    "queue": queue.show_queue,
    "incoming": stock.show_incoming,
    "stock": stock.show_stock,
    "allocate": allocate.start,
    "assign": tasks.show_assignable,
    "review": review.show_review,
    "ratings": review.show_ratings,
    "dashboard": staff.dashboard_link,
    "volunteers": volunteer.show_pending,
    "invite_volunteer": volunteer.invite_volunteer,
    "invite_proxy": proxy.invite_proxy,
    "register_household": proxy.register_household,
    "tasks": tasks.show_tasks,
    "leave": volunteer.stop_volunteering,
    "my_data": my_data.show_my_data,
    "delete_my_data": my_data.ask_erase,
    "inbox": support.show_inbox,
}
# Commands that take a person talking to staff back to the bot's own questions.
LEAVE_SUPPORT = frozenset({"menu", "cancel", "back", "request", "donate", "language",
                           "resume", "continue", "volunteer", "join"})
MAX_ATTEMPTS = 3
# Chats whose state is kept in memory between updates (least recently active dropped).
STATE_CACHE_SIZE = 10_000


def within(earlier: datetime | None, later: datetime, span: timedelta) -> bool:
    return earlier is not None and later - earlier < span


@dataclass
class Handled:
    """The outcome of one update: the replies, and the outbox row that holds them."""

    replies: list[Reply]
    contact_id: int
    # Where the contact takes messages now (its chat id, which the update's may not be).
    chat_id: str = ""
    reply_id: int | None = None
    wrote_outbox: bool = False
    # The person's language, for channels that add words of their own to the replies.
    language: str = ""
    # Until when this process alone may send the reply (then a dispatcher sends it), the
    # lease's length and the clock that set it.
    reply_lease: tuple[datetime, timedelta, Callable[[], datetime]] | None = None


class Conversations:
    """The channel-agnostic entry point: an `Incoming` in, the replies to send out."""

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Catalog,
        areas: AreaDirectory,
        settings: HandlerSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self.catalog = catalog
        self._areas = areas
        self._settings = settings
        self._clock = clock
        # Called after a commit that wrote outbox rows: wakes a dispatcher in this process.
        self.on_outbox: Callable[[], None] | None = None
        # Told of each turn of a dialog: the dialog, and "step" (a question answered),
        # "completed" (the dialog's end reached) or "abandoned" (left before its end).
        self.on_dialog: Callable[[str, str], None] | None = None
        # Who holds the leases this process takes (its replies' outbox rows, the inbound
        # updates it handles): one name for the process.
        self.owner = process_name()
        self._states: OrderedDict[tuple[str, str], tuple[Contact, Conversation]] = \
            OrderedDict()
        self._coverage = CoverageSnapshot()

    async def handle(self, incoming: Incoming) -> list[Reply]:
        """The replies to an update, for channels that print them at once (the console)."""
        return (await self.handle_update(incoming)).replies

    async def handle_update(self, incoming: Incoming, *, keep_reply: bool = False,
                            edit_message_id: int | None = None,
                            queued: QueuedUpdate | None = None) -> Handled:
        """Run the update's unit of work (and, for an update of the inbound queue, mark it
        handled in it: LeaseLost, with nothing written, when another process holds it).

        With `keep_reply` the replies are also written to the outbox in the same
        transaction, as being sent by the caller; the caller settles that row once it
        has sent them (or failed to), and if the process dies first, the dispatcher
        sends them.
        """
        key = (incoming.channel, incoming.chat_id)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                handled = await self._handle_once(incoming, keep_reply, edit_message_id, queued)
            except (StaleDataError, IntegrityError):
                # Another process handled an update of the same chat at the same moment
                # (or recorded the same update): run the step again on the fresh state.
                self._states.pop(key, None)
                if attempt == MAX_ATTEMPTS:
                    raise
                log.info("conversation changed concurrently; retrying the update")
                continue
            except BaseException:
                self._states.pop(key, None)
                raise
            if handled.wrote_outbox and self.on_outbox is not None:
                self.on_outbox()
            return handled
        raise AssertionError("unreachable")

    async def _load_state(self, work: UnitOfWork, incoming: Incoming, now: datetime
                          ) -> tuple[Contact, Conversation, bool]:
        """The chat's contact and conversation, and whether the contact is new.

        Kept between updates: the conversation's version makes the UPDATE at commit fail
        if another process changed the chat meanwhile, and the update is then run again
        on freshly loaded state. So the hot path reads nothing before the step.
        """
        key = (incoming.channel, incoming.chat_id)
        cached = self._states.get(key)
        if cached is not None:
            self._states.move_to_end(key)
            contact, conversation = cached
            return contact, conversation, False
        session = work.session
        contact, created = await get_or_create_contact(
            session, incoming.channel, incoming.chat_id, self._first_language(incoming), now,
            user_id=incoming.sender_user_id, move=incoming.sender_phone is not None)
        if incoming.sender_user_id:
            # Kept under the address it had, which it may have left just now.
            self._states.pop((incoming.channel, incoming.sender_user_id), None)
        conversation = await get_or_create_conversation(session, contact.id)
        # Written by save_conversation and save_contact, not by the session's flush.
        session.expunge(contact)
        session.expunge(conversation)
        return contact, conversation, created

    def _keep_state(self, contact: Contact, conversation: Conversation) -> None:
        self._states[(contact.channel, contact.chat_id)] = (contact, conversation)
        if len(self._states) > STATE_CACHE_SIZE:
            self._states.popitem(last=False)

    async def _handle_once(self, incoming: Incoming, keep_reply: bool,
                           edit_message_id: int | None, queued: QueuedUpdate | None
                           ) -> Handled:
        now = self._clock()
        async with self._engine.connect() as connection, connection.begin():
            work = UnitOfWork(connection)
            try:
                handled, conversation, outcome = await self._run(work, incoming, now)
                reply: ReplyRow | None = None
                if keep_reply and handled.replies:
                    reply = ReplyRow(handled.contact_id,
                                     replies_to_body(handled.replies, edit_message_id),
                                     self._settings.reply_lease, self.owner)
                # Last, in one go: the update handled (LeaseLost, with nothing written,
                # when another process holds it now), the conversation saved and the
                # reply recorded as being sent here.
                handled.reply_id = await end_step(
                    connection, now, conversation,
                    Finish(queued.id, queued.owner) if queued is not None else None, reply)
                if reply is not None:
                    handled.reply_lease = (now + self._settings.reply_lease,
                                           self._settings.reply_lease, self._clock)
                handled.wrote_outbox = work.wrote_outbox
            finally:
                await work.close()
        if outcome is not None and self.on_dialog is not None:
            self.on_dialog(*outcome)
        return handled

    async def _run(self, work: UnitOfWork, incoming: Incoming, now: datetime
                   ) -> tuple[Handled, Conversation, tuple[str, str] | None]:
        """The step, and what it wrote besides the conversation (which the caller saves
        last); the replies, the conversation and how its dialog went, if it had one."""
        connection = work.connection
        contact, conversation, created = await self._load_state(work, incoming, now)
        contact_before = (contact.language, contact.verified_phone, contact.opted_out_at,
                          contact.last_inbound_at, contact.platform_user_id,
                          contact.proxy_typed_at)
        if incoming.sender_phone and contact.verified_phone != incoming.sender_phone:
            contact.verified_phone = incoming.sender_phone
        if incoming.sender_user_id and contact.platform_user_id != incoming.sender_user_id:
            await self._take_user_id(work, contact, incoming.sender_user_id)
        # News is held only while the window since the person's last message is closed.
        release = incoming.sent_at is not None and not within(
            contact.last_inbound_at, incoming.sent_at, HELD_AFTER)
        if incoming.sent_at is not None and not within(
                contact.last_inbound_at, incoming.sent_at, LAST_INBOUND_PRECISION):
            contact.last_inbound_at = incoming.sent_at
        turn = Turn(work=work, contact=contact, conversation=conversation,
                    incoming=incoming, catalog=self.catalog, areas=self._areas,
                    settings=self._settings, now=now, coverage=self._coverage,
                    first_contact=created)
        step_before, dialog_before = conversation.step, conversation.dialog
        # An action refused is answered and the update completes: it is never run again.
        replies = await answered(route(turn))
        if turn.restarted is not None:
            return await self._restarted(work, turn, replies)
        conversation.updated_at = now
        # The person wrote: the contact is theirs now, no longer only the one a proxy's
        # question made (the step saw it as it was: the answer to that question may
        # forget it).
        contact.proxy_typed_at = None
        await work.flush()
        if (contact.language, contact.verified_phone, contact.opted_out_at,
                contact.last_inbound_at, contact.platform_user_id,
                contact.proxy_typed_at) != contact_before:
            await save_contact(connection, contact)
        if contact.verified_phone and contact.verified_phone != contact_before[1]:
            # The same number on another app: the same person.
            await link_by_phone(work.session, contact.id, contact.verified_phone, now)
        if release and await release_held(connection, contact.id, now):
            # News held until the person wrote (outside WhatsApp's window) goes now.
            work.outbox_due = True
        # Kept even though the commit is still to come: any failure evicts it (handle).
        self._keep_state(contact, conversation)
        went = dialog_outcome(turn.completed, dialog_before, step_before, conversation) \
            if dialog_before else None
        # Kinds and steps only: what people wrote never goes into the logs.
        log.debug("%s %s update at %s/%s -> %s/%s, %d replies", incoming.channel,
                  incoming.kind.value, dialog_before or "-", step_before or "-",
                  conversation.dialog or "-", conversation.step or "-", len(replies))
        handled = Handled(replies, contact_id=contact.id, chat_id=contact.chat_id,
                          language=contact.language)
        return handled, conversation, (dialog_before, went) if dialog_before and went else None

    async def _restarted(self, work: UnitOfWork, turn: Turn, replies: list[Reply]
                         ) -> tuple[Handled, Conversation, None]:
        """The person's data was erased in this turn: their contacts (on every app) are
        tombstones now, and the chat goes on as the new contact the turn made. Nothing
        of the old contact or conversation is written back, nor kept in memory."""
        assert turn.restarted is not None
        contact, conversation = turn.restarted
        await work.flush()
        erased = {turn.contact.id}
        if turn.contact.person_id is not None:
            erased.add(turn.contact.person_id)
        for key, (cached, _) in list(self._states.items()):
            if cached.id in erased or cached.person_id in erased:
                del self._states[key]
        self._keep_state(contact, conversation)
        log.debug("%s update erased a person's data", turn.incoming.channel)
        # The new conversation is the one the step ends by saving.
        return Handled(replies, contact_id=contact.id, chat_id=contact.chat_id,
                       language=contact.language), conversation, None

    async def _take_user_id(self, work: UnitOfWork, contact: Contact, user_id: str) -> None:
        """The platform's user id is this contact's now. A contact that held it is the
        same person, known earlier by another address (by the user id alone, say, before
        the platform gave the number that this contact has): the two are linked."""
        others = await release_user_id(work.connection, contact.channel, user_id,
                                       contact.id)
        contact.platform_user_id = user_id
        if others:
            await link_contacts(work.connection, contact.id, others)
            for key, (cached, _) in list(self._states.items()):
                if cached.id in others:
                    del self._states[key]

    def _first_language(self, incoming: Incoming) -> str:
        hint = (incoming.language_hint or "").lower()[:2]
        # The app's language decides the first welcome: English only when it is English.
        return "en" if hint == "en" else self._settings.default_language

    def now(self) -> datetime:
        """The time by this entry point's clock (the web pages keep the same time)."""
        return self._clock()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def forget(self, channel: str, chat_id: str) -> None:
        """Drop what this process keeps of a chat, changed elsewhere in the database."""
        self._states.pop((channel, chat_id), None)

    @property
    def default_language(self) -> str:
        return self._settings.default_language

    def command_menu(self, language: str) -> list[tuple[str, str]]:
        return [(name, self.catalog.text(language, key)) for name, key in command_menu(language)]


def dialog_outcome(completed: bool, dialog_before: str, step_before: str | None,
                   conversation: Conversation) -> str | None:
    """What a turn did to the dialog it found: its end reached, a question answered, the
    dialog left before its end; None when it stayed on its question (a wrong answer)."""
    if completed:
        return "completed"
    if conversation.dialog != dialog_before:
        return "abandoned"
    return "step" if conversation.step != step_before else None


async def route(turn: Turn) -> list[Reply]:
    incoming = turn.incoming
    conversation = turn.conversation
    form = FORMS.get(conversation.dialog or "")
    if conversation.dialog and form is None:
        conversation.reset()  # a dialog this version no longer has
    if form is not None:
        await forms.prepare(turn, form)
    if form is None or incoming.kind == Kind.COMMAND or incoming.context == MENU_CONTEXT:
        # The menu and /help show what the person's roles allow; in a form, a typed
        # answer goes to the question and needs none of it.
        await load_roles(turn)
    if incoming.kind == Kind.TEXT and len(incoming.text) > turn.settings.max_text_length:
        return [_current(turn, form, turn.t("input.too_long",
                                            max=turn.settings.max_text_length))]
    if incoming.kind == Kind.COMMAND:
        return await _on_command(turn, form)
    if incoming.kind == Kind.CHOICE and incoming.context == MENU_CONTEXT:
        return await _on_menu(turn, form, incoming.option or "")
    if incoming.kind == Kind.CHOICE and incoming.context == LANGUAGE_CONTEXT:
        return _set_language(turn, form, incoming.option or "")
    if incoming.kind == Kind.CHOICE and incoming.context == support.PERSON_CONTEXT:
        return await _on_support_button(turn, form, incoming.option or "")
    if incoming.kind == Kind.CHOICE and form is not None and \
            incoming.option == forms.TALK and \
            incoming.context == form.context(conversation.step or ""):
        return await support.start(turn, in_form=True)
    if incoming.kind == Kind.TEXT and support.asks_for_person(turn, incoming.text):
        return await support.start(turn, in_form=form is not None)
    if support.is_talking(turn):
        if incoming.kind == Kind.CHOICE:
            # A button of the bot's own questions: the person is back with them.
            support.stop_talking(turn)
        else:
            replies = await support.on_message(turn, in_form=form is not None)
            if replies is not None:
                return replies
            return [Reply(text=turn.t("support.ended")), _current(turn, form)]
    if incoming.kind == Kind.CHOICE and incoming.context == status.REQUEST_CONTEXT:
        action, _, reference = (incoming.option or "").partition(":")
        if action == status.CANCEL and reference:
            return await status.ask_cancel(turn, reference)
        return [_current(turn, form, turn.t("button.invalid"))]
    question = QUESTIONS.get(str(conversation.scratch.get("overlay")))
    if question is not None:
        replies = await question[0](turn, incoming)
        if replies is not None:
            return replies
        _end_overlay(conversation)
    if incoming.kind == Kind.CHOICE and incoming.context in BUTTONS:
        return await BUTTONS[incoming.context](turn, incoming.option or "")
    if incoming.kind == Kind.CHOICE and any(
            incoming.context == context for _, context in QUESTIONS.values()):
        return [_current(turn, form, turn.t("button.stale"))]
    if conversation.scratch.get("overlay") == status.CONFIRM_OVERLAY:
        answer = status.confirmation_answer(turn, incoming)
        if answer is not None:
            replies = await answered(status.confirm_cancel(turn, incoming, answer))
            return [*replies, _current(turn, form)]
        _end_overlay(conversation)
    elif incoming.kind == Kind.CHOICE and incoming.context == status.CONFIRM_CONTEXT:
        return [_current(turn, form, turn.t("button.stale"))]
    if conversation.scratch.get("overlay") == LANGUAGE_OVERLAY:
        _end_overlay(conversation)
        code = _typed_language(turn, incoming)
        if code is not None:
            return _set_language(turn, form, code)
    if turn.first_contact:
        return [_welcome(turn)]
    if form is not None:
        away = turn.now - conversation.updated_at
        tapped_current = (incoming.kind == Kind.CHOICE
                          and incoming.context == form.context(conversation.step or ""))
        if away > turn.settings.resume_after and not tapped_current:
            # After a long pause the message is a greeting, not an answer to a question
            # the person may have forgotten: show the question again.
            return [forms.question(turn, form, prefix=turn.t("dialog.welcome_back"))]
        return await forms.step(turn, form)
    if incoming.kind == Kind.TEXT:
        choices = [forms.Choice(item, f"menu.{item}") for item in menu_items(turn)]
        item = match_choice(turn, incoming.text, choices)
        if item is not None:
            return await _on_menu(turn, form, item)
    if incoming.kind == Kind.CHOICE:
        return [menu_reply(turn, prefix=turn.t("button.stale"))]
    return [menu_reply(turn, prefix=turn.t("menu.unknown"))]


def _end_overlay(conversation: Conversation) -> None:
    """Forget a question asked outside a form (language, confirmation, reason)."""
    if conversation.scratch.get("overlay"):
        conversation.forget(*OVERLAY_KEYS)


def _welcome(turn: Turn) -> Reply:
    return menu_reply(turn, prefix=turn.t("welcome"))


def _current(turn: Turn, form: Form | None, prefix: str | None = None) -> Reply:
    """Ask the current question again, or show the menu when there is none."""
    if form is not None:
        return forms.question(turn, form, prefix=prefix)
    return menu_reply(turn, prefix=prefix)


async def _on_command(turn: Turn, form: Form | None) -> list[Reply]:
    incoming = turn.incoming
    command = resolve_command(incoming.command or "")
    conversation = turn.conversation
    # A command leaves any question asked outside a form (a reason, a confirmation): what
    # is typed next must not be taken as its answer.
    _end_overlay(conversation)
    if command in LEAVE_SUPPORT:
        support.stop_talking(turn)
    if command == "person":
        return await support.start(turn, in_form=form is not None)
    if command == "continue":
        return [_current(turn, form, turn.t("support.resumed"))]
    if command == "start":
        # Start means one thing: the welcome and the menu (or the question left open).
        # Reminders stopped stay stopped until /resume; the person is reminded how.
        stopped = turn.t("notifications.still_stopped") \
            if turn.contact.opted_out_at is not None else None
        if form is not None:
            prefix = "\n\n".join(filter(None, (stopped, turn.t("dialog.continue"))))
            return [forms.question(turn, form, prefix=prefix)]
        return [menu_reply(turn, prefix="\n\n".join(filter(None, (turn.t("welcome"),
                                                                    stopped))))]
    if command == "resume":
        resumed = turn.contact.opted_out_at is not None
        turn.contact.opted_out_at = None
        key = "notifications.resumed" if resumed else "notifications.not_stopped"
        return [Reply(text=turn.t(key)), _current(turn, form)]
    if command == "stop":
        if turn.contact.opted_out_at is None:
            turn.contact.opted_out_at = turn.now
        return [Reply(text=turn.t("notifications.stopped")), _current(turn, form)]
    if command in SCREENS:
        return await SCREENS[command](turn)
    if command == "volunteer":
        return await volunteer.sign_up(turn, incoming.args)
    if command == "proxy":
        return await proxy.sign_up(turn, incoming.args)
    if command == "join":
        return [*await staff.join(turn, incoming.args), _current(turn, form)]
    if command == "cancel_request":
        return [*await status.ask_cancel(turn), *([forms.question(turn, form)] if form else [])]
    if command == "menu":
        kept = turn.t("menu.draft_kept") if form is not None else None
        return [menu_reply(turn, prefix=kept)]
    if command in ("request", "donate"):
        return await _on_menu(turn, form, command)
    if command == "status":
        replies = await status.status_replies(turn)
        return replies + ([forms.question(turn, form)] if form is not None else [])
    if command == "language":
        code = incoming.args.strip().lower()
        if code in LANGUAGE_NAMES:
            return _set_language(turn, form, code)
        return _ask_language(turn)
    if command == "cancel":
        if form is None:
            return [menu_reply(turn, prefix=turn.t("dialog.nothing_to_cancel"))]
        conversation.reset()
        return [Reply(text=turn.t("dialog.cancelled"), remove_keyboard=True), menu_reply(turn)]
    if command == "back":
        if form is None:
            return [menu_reply(turn)]
        return forms.go_back(turn, form)
    if command == "help":
        return [help_reply(turn), _current(turn, form)]
    return [_current(turn, form, turn.t("command.unknown",
                                         command="/" + (incoming.command or "")[:32]))]


async def _on_menu(turn: Turn, form: Form | None, item: str) -> list[Reply]:
    if item == "request":
        if form is HOUSEHOLD_REQUEST:
            return [forms.question(turn, form, prefix=turn.t("dialog.continue"))]
        return await forms.begin(turn, HOUSEHOLD_REQUEST)
    if item == "donate":
        if form is DONOR_PLEDGE:
            return [forms.question(turn, form, prefix=turn.t("dialog.continue"))]
        return await forms.begin(turn, DONOR_PLEDGE)
    if item == "volunteer":
        if form is volunteer.VOLUNTEER_SIGNUP:
            return [forms.question(turn, form, prefix=turn.t("dialog.continue"))]
        return [_current(turn, form, turn.t("volunteer.how"))]
    if item == "status":
        replies = await status.status_replies(turn)
        return [*replies, _current(turn, form)]
    if item == "language":
        return _ask_language(turn)
    if item == "help":
        return [help_reply(turn), _current(turn, form)]
    if item == "person":
        return await support.start(turn, in_form=form is not None)
    if item in menu_items(turn) and item in SCREENS:
        # A role's own screen (the volunteer's tasks, the staff's queue...).
        return await SCREENS[item](turn)
    return [_current(turn, form, turn.t("button.invalid"))]


async def _on_support_button(turn: Turn, form: Form | None, option: str) -> list[Reply]:
    """The person's buttons of a support conversation: talk to a person, or go back to
    the form (or the menu)."""
    if option == support.OPEN:
        return await support.start(turn, in_form=form is not None)
    if option == support.RESUME:
        support.stop_talking(turn)
        return [_current(turn, form, turn.t("support.resumed"))]
    return [_current(turn, form, turn.t("button.invalid"))]


def _ask_language(turn: Turn) -> list[Reply]:
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": LANGUAGE_OVERLAY}
    return [language_reply(turn)]


def _typed_language(turn: Turn, incoming: Incoming) -> str | None:
    if incoming.kind != Kind.TEXT:
        return None
    choices = [forms.Choice(code, label=name) for code, name in LANGUAGE_NAMES.items()]
    return match_choice(turn, incoming.text, choices)


def _set_language(turn: Turn, form: Form | None, code: str) -> list[Reply]:
    if code not in LANGUAGE_NAMES:
        return [_current(turn, form, turn.t("button.invalid"))]
    turn.contact.language = code
    _end_overlay(turn.conversation)
    reply = _welcome(turn) if turn.first_contact else \
        _current(turn, form, turn.t("language.changed"))
    return [dataclasses.replace(reply, language_chosen=code)]
