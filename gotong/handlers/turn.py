"""What a handler has at hand while it handles one inbound update."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.handlers.catalog import Catalog
from gotong.handlers.messages import Incoming, Reply
from gotong.models.area import AreaDirectory
from gotong.models.contact import Contact
from gotong.models.conversation import Conversation


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


@dataclass
class Turn:
    session: AsyncSession
    contact: Contact
    conversation: Conversation
    incoming: Incoming
    catalog: Catalog
    areas: AreaDirectory
    settings: HandlerSettings
    now: datetime
    first_contact: bool = False
    replies: list[Reply] = field(default_factory=list)

    @property
    def language(self) -> str:
        return self.contact.language

    def t(self, key: str, **params: object) -> str:
        return self.catalog.text(self.contact.language, key, **params)

    def format_time(self, moment: datetime) -> str:
        return str(format_datetime(moment, "d MMM yyyy, HH:mm", locale=self.language,
                                   tzinfo=ZoneInfo(self.settings.timezone)))
