"""A number's "no" counts for proxy.declined_days and its questions per day are capped;
then both are forgotten, the row dropped by housekeeping."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.number_asks import (
    AskLimits,
    NumberAsked,
    Verdict,
    forget_old,
    may_ask,
    note_answer,
    number_key,
)

KEY = b"k" * 32
LIMITS = AskLimits(declined_for=timedelta(days=30), per_day=2)


async def test_a_no_counts_for_its_days_and_the_questions_for_a_day(
        services: Services) -> None:
    now = utcnow()
    number = number_key("+6281311112222", KEY)
    assert number != number_key("+6281311112223", KEY)
    async with services.sessions() as session, session.begin():
        assert await may_ask(session, number, [7], now, LIMITS) is Verdict.ASK
        assert await may_ask(session, number, [8], now, LIMITS) is Verdict.ASK
        assert await may_ask(session, number, [7], now, LIMITS) is Verdict.NOT_NOW
        # A day later the count starts again.
        later = now + timedelta(days=1)
        assert await may_ask(session, number, [7], later, LIMITS) is Verdict.ASK
        await note_answer(session, number, None, True, later)
        assert await may_ask(session, number, [7], later, LIMITS) is Verdict.NOT_NOW
        # Past the refusal's days, asked again; housekeeping keeps it until then.
        assert await forget_old(session, later + timedelta(days=29), LIMITS.declined_for) \
            == 0
        gone = later + timedelta(days=30)
        assert await may_ask(session, number, [7], gone, LIMITS) is Verdict.ASK
        assert await forget_old(session, gone + timedelta(days=2), LIMITS.declined_for) \
            == 1
        assert await session.scalar(select(func.count()).select_from(NumberAsked)) == 0
