"""The priority score: who gets aid first among verified households.

score = 2 x (people in the household, at most 10)
      + 10 for an elderly member, 10 for a member with a disability, 8 for a pregnancy,
        8 for a child under five, 6 for a chronic illness, 8 for lost income
      + 1 per day waiting since the request was made
      + 15 if the household (same NIK, phone, or name and address) has never been
        allocated aid before

The days-waiting part grows alike for everyone, so the order it gives is the order of
`rank = score_without_waiting - created_day`: that rank is fixed when the request is
submitted (and again when it is verified, for the part "no aid yet") and indexed, so the
queue and the allocation proposal are one index scan at any size. (The rank counts
waiting time exactly; the score shown to staff counts whole days.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

PER_PERSON = 2.0
MAX_COUNTED_PEOPLE = 10
VULNERABILITY_WEIGHTS = {
    "elderly": 10.0,
    "disability": 10.0,
    "pregnant": 8.0,
    "under_five": 8.0,
    "chronic": 6.0,
    "lost_income": 8.0,
}
PER_DAY_WAITING = 1.0
NO_AID_YET = 15.0
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def score_parts(household_size: int, vulnerabilities: Sequence[str], created_at: datetime,
                now: datetime, served_before: bool = False) -> dict[str, float]:
    """Each part of the score, named, for staff to see why a household comes first."""
    parts = {"household_size": PER_PERSON * min(household_size, MAX_COUNTED_PEOPLE)}
    for vulnerability in vulnerabilities:
        if vulnerability in VULNERABILITY_WEIGHTS:
            parts[vulnerability] = VULNERABILITY_WEIGHTS[vulnerability]
    parts["days_waiting"] = PER_DAY_WAITING * max((now - created_at).days, 0)
    parts["no_aid_yet"] = 0.0 if served_before else NO_AID_YET
    return parts


def queue_rank(household_size: int, vulnerabilities: Sequence[str],
               created_at: datetime, served_before: bool = False) -> float:
    """A fixed number that orders requests as their scores do, at any later time."""
    fixed = sum(v for k, v in score_parts(household_size, vulnerabilities, created_at,
                                          created_at, served_before).items()
                if k != "days_waiting")
    return fixed - PER_DAY_WAITING * (created_at - _EPOCH).total_seconds() / 86_400
