"""The priority score, and the fixed rank that orders the queue as the score does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gotong.models.priority import VULNERABILITY_WEIGHTS, queue_rank, score_parts

START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def test_the_parts_of_a_score() -> None:
    parts = score_parts(12, ["elderly", "under_five", "unknown"], START,
                        START + timedelta(days=3, hours=5))
    assert parts == {"household_size": 20.0, "elderly": 10.0, "under_five": 8.0,
                     "days_waiting": 3.0, "no_aid_yet": 15.0}
    served = score_parts(1, [], START, START, served_before=True)
    assert served == {"household_size": 2.0, "days_waiting": 0.0, "no_aid_yet": 0.0}


households = st.tuples(st.integers(1, 30), st.lists(st.sampled_from(sorted(VULNERABILITY_WEIGHTS)),
                                                    unique=True),
                       st.integers(0, 60 * 24 * 90), st.booleans())


@given(st.lists(households, min_size=2, max_size=8), st.integers(0, 60 * 24 * 30))
def test_the_rank_orders_households_as_their_scores_do_at_any_later_time(
        people: list[tuple[int, list[str], int, bool]], later: int) -> None:
    created = [START + timedelta(minutes=m) for _, _, m, _ in people]
    now = max(created) + timedelta(minutes=later)
    # Days waiting counts whole days; the rank counts them exactly, so compare the score
    # with exact days too.
    scores = [sum(v for k, v in score_parts(size, vuln, c, c, served).items())
              + (now - c).total_seconds() / 86_400
              for (size, vuln, _, served), c in zip(people, created, strict=True)]
    ranks = [queue_rank(size, vuln, c, served)
             for (size, vuln, _, served), c in zip(people, created, strict=True)]
    for i in range(len(people)):
        for j in range(len(people)):
            if scores[i] > scores[j] + 1e-6:
                assert ranks[i] > ranks[j]
