"""The person's answer to "your number was just linked to <app>" (models/person.py):
"this was not me" takes that app's contact apart from them again.

The button names the contact linked and the secret its notice carried; the model checks
both, and that the tap comes from one of the person's other contacts, so a forged,
stale or foreign button changes nothing. The operator finds each link and each undoing in
the audit log (`gotong audit`), and the log says an undoing happened.
"""

from __future__ import annotations

import logging

from gotong.handlers.messages import Reply
from gotong.handlers.turn import Turn
from gotong.handlers.validators import parse_id
from gotong.models.person import LINK_CONTEXT, UNDO, UnlinkRefused, unlink

log = logging.getLogger(__name__)

CONTEXT = LINK_CONTEXT


async def on_link_button(turn: Turn, option: str) -> list[Reply]:
    """"This was not me": the contact linked leaves the person, for good."""
    action, _, rest = option.partition(":")
    contact_id, _, token = rest.partition(":")
    key = parse_id(contact_id)
    if action != UNDO or key is None or not token:
        return [Reply(text=turn.t("button.invalid"))]
    try:
        staying = await unlink(turn.session, turn.contact.id, key, token, turn.now)
    except UnlinkRefused:
        return [Reply(text=turn.t("link.not_yours"))]
    # Ids only: which contacts, never whose number.
    log.warning("a person said the link of their number to another app was not theirs: "
                "contact %d taken apart from contacts %s (see gotong audit)", key, staying)
    return [Reply(text=turn.t("link.undone"))]
