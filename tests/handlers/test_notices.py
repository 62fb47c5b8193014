"""Direct replies stored in the outbox come back exactly as they were rendered."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gotong.handlers.messages import Hint, Option, Reply
from gotong.handlers.notices import replies_from_body, replies_to_body

options = st.builds(Option, id=st.text(max_size=10), label=st.text(max_size=20),
                    number=st.one_of(st.none(), st.integers(1, 99)), selected=st.booleans())
replies = st.builds(
    Reply, text=st.text(max_size=50), options=st.tuples(*[options] * 2),
    controls=st.lists(options, max_size=3).map(tuple), hint=st.sampled_from(list(Hint)),
    context=st.one_of(st.none(), st.text(max_size=10)),
    contact_label=st.one_of(st.none(), st.text(max_size=10)), remove_keyboard=st.booleans(),
    edit=st.booleans(), page=st.integers(0, 5), pages=st.integers(1, 6),
    language_chosen=st.one_of(st.none(), st.sampled_from(["id", "en"])),
    extra=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


@given(st.lists(replies, max_size=3), st.one_of(st.none(), st.integers(1, 10**9)))
def test_replies_survive_the_outbox(stored: list[Reply], edit: int | None) -> None:
    # Through JSON, as the database keeps them.
    body = json.loads(json.dumps(replies_to_body(stored, edit)))
    assert replies_from_body(body) == stored
    assert body["edit"] == edit


def test_a_plain_reply_is_stored_small() -> None:
    body = replies_to_body([Reply(text="Halo")], None)
    assert body == {"replies": [{"text": "Halo"}], "edit": None}
