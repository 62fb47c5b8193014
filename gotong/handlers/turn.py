"""What a handler has at hand while it handles one inbound update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gotong.handlers.catalog import Catalog
from gotong.handlers.messages import Incoming, Reply
from gotong.models.area import AreaDirectory
from gotong.models.contact import Contact
from gotong.models.conversation import Conversation
from gotong.models.coverage import CoverageSnapshot
from gotong.models.number_asks import AskLimits
from gotong.models.outbox import OUTBOX_WRITTEN
from gotong.models.rules import NotAllowed

T = TypeVar("T")


@dataclass(frozen=True)
class HandlerSettings:
    """The part of the configuration the conversations need."""

    nik_key: bytes
    default_language: str = "id"
    timezone: str = "Asia/Jakarta"
    resume_after: timedelta = timedelta(minutes=60)
    max_invalid_attempts: int = 3
    max_text_length: int = 1000
    page_size: int = 8
    duplicate_window: timedelta = timedelta(days=90)
    # How long a direct reply is this process's to send before the dispatcher sends it.
    reply_lease: timedelta = timedelta(seconds=30)
    cooldown: timedelta = timedelta(days=14)
    allocation_size: int = 10
    # Failed deliveries after which a request goes back to the queue.
    max_delivery_failures: int = 3
    # Deliveries a volunteer may have under way at once (also bounded by what they carry).
    max_open_tasks: int = 3
    # How long a task failed after pick-up counts among the volunteer's open tasks.
    failed_hold: timedelta = timedelta(hours=24)
    # Households a proxy may have registered and still being helped at once.
    max_proxy_households: int = 30
    # How long a number's "no" keeps it from being asked again, and how many questions
    # a number gets a day (proxy.declined_days, proxy.max_questions_per_day).
    number_asks: AskLimits = field(default_factory=AskLimits)
    # Where staff sign in to the dashboard (the web app's /dashboard), and for how long
    # a sign-in link sent in chat works.
    dashboard_url: str = "http://127.0.0.1:8080/dashboard"
    dashboard_link_valid: timedelta = timedelta(minutes=10)
    # How long personal data is kept, as /my_data tells the person: a closed request's
    # or pledge's (privacy.retention_days), updates received (inbound.keep_days) and
    # messages sent (notifications.keep_days).
    retention: timedelta = timedelta(days=365)
    keep_inbound: timedelta = timedelta(days=7)
    keep_messages: timedelta = timedelta(days=30)
    # Staff hear of new pledges in their digest rather than at once.
    staff_pledge_digest: bool = False


class UnitOfWork:
    """The transaction of one update: a connection, and an ORM session on it when needed.

    Most updates only move a conversation along, which takes two prepared statements on
    the connection; the session is opened the first time a handler asks for it.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self._session: AsyncSession | None = None
        # Outbox rows made due without the session (news released for the person).
        self.outbox_due = False

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            # Joins the connection's transaction; the caller commits or rolls it back.
            self._session = AsyncSession(bind=self.connection, expire_on_commit=False,
                                         join_transaction_mode="rollback_only")
        return self._session

    async def flush(self) -> None:
        """Write what the session holds; the transaction itself is the caller's."""
        if self._session is not None:
            await self._session.flush()

    @property
    def wrote_outbox(self) -> bool:
        """Whether the unit of work added outbox rows (for the dispatcher to wake)."""
        return self.outbox_due or (self._session is not None
                                   and bool(self._session.info.get(OUTBOX_WRITTEN)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass
class Turn:
    work: UnitOfWork
    contact: Contact
    conversation: Conversation
    incoming: Incoming
    catalog: Catalog
    areas: AreaDirectory
    settings: HandlerSettings
    now: datetime
    # The coverage this process last read, for advisory notes (see CoverageSnapshot).
    coverage: CoverageSnapshot
    first_contact: bool = False
    # What a form read for this update before computing its options (Form.prepare).
    loaded: dict[str, Any] = field(default_factory=dict)
    # Whether this update brought its dialog to its end (the summary submitted).
    completed: bool = False
    # The person had their data erased: their contact is no more, and the chat goes on
    # as this new contact and conversation.
    restarted: tuple[Contact, Conversation] | None = None

    def restart(self, contact: Contact, conversation: Conversation) -> None:
        self.restarted = (contact, conversation)

    @property
    def session(self) -> AsyncSession:
        return self.work.session

    @property
    def language(self) -> str:
        return self.contact.language

    def t(self, key: str, **params: object) -> str:
        return self.catalog.text(self.contact.language, key, **params)

    def format_time(self, moment: datetime) -> str:
        return str(format_datetime(moment, "d MMM yyyy, HH:mm", locale=self.language,
                                   tzinfo=ZoneInfo(self.settings.timezone)))


class Refused(Exception):
    """The answer to an action refused below the handler that can answer it."""

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__("refused")
        self.replies = replies


# The words of a refusal, or how to find them once the refusal is known (when they show
# the thing acted on as it is now).
Answer = list[Reply] | Callable[[], Awaitable[list[Reply]]]


async def refusing(operation: Awaitable[T], answer: Answer) -> T:
    """The outcome of a domain operation; if the rules refuse it at the moment of writing
    (someone acted on the same thing since the handler's check read it), the update is
    answered with `answer`, the words of that check, and completes like any other."""
    try:
        return await operation
    except NotAllowed:
        raise Refused(answer if isinstance(answer, list) else await answer()) from None


async def answered(handling: Awaitable[list[Reply]]) -> list[Reply]:
    """A handler's replies, or its answer to an action refused within it."""
    try:
        return await handling
    except Refused as refused:
        return refused.replies
