"""/status: a person's requests with their current status and history."""

from __future__ import annotations

from gotong.handlers.messages import Reply
from gotong.handlers.turn import Turn
from gotong.models.help_request import requests_of


async def status_replies(turn: Turn) -> list[Reply]:
    requests = await requests_of(turn.session, turn.contact.id)
    if not requests:
        return [Reply(text=turn.t("status.none"))]
    blocks = []
    for request in requests:
        lines = [turn.t("status.request", reference=request.reference,
                        status=turn.t(f"status.{request.status}"))]
        lines.extend(
            turn.t("status.event", status=turn.t(f"status.{event.status}"),
                   at=turn.format_time(event.at))
            for event in request.events
        )
        blocks.append("\n".join(lines))
    return [Reply(text="\n\n".join(blocks))]
