"""Outbox rows as replies: notices rendered in the recipient's language, and direct
replies stored as they were rendered."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from gotong.handlers.catalog import Catalog
from gotong.handlers.messages import Hint, Option, Reply
from gotong.handlers.plain import as_typed
from gotong.models.broadcast import BROADCAST_KEY
from gotong.models.outbox import Claimed, Notice


def _param(catalog: Catalog, language: str, value: Any, typed: bool) -> Any:
    if isinstance(value, dict) and set(value) == {"key"}:
        return catalog.text(language, str(value["key"]))
    # A notice's own words come from the catalog; the strings in its parameters are what
    # people typed (a reason, a first name) or codes, and show as typed.
    return as_typed(value) if typed and isinstance(value, str) else value


def render_notice(catalog: Catalog, language: str, key: str, params: Mapping[str, Any],
                  actions: Sequence[Sequence[str]] = ()) -> Reply:
    # A broadcast is the operator's own text, formatting included.
    typed = key != BROADCAST_KEY
    text = catalog.text(language, key, **{name: _param(catalog, language, v, typed)
                                          for name, v in params.items()})
    if not actions:
        return Reply(text=text)
    # All actions of one notice answer the same question (a menu, say).
    context = actions[0][0]
    options = tuple(Option(option, catalog.text(language, label))
                    for _, option, label in actions)
    return Reply(text=text, options=options, hint=Hint.SINGLE, context=context)


def notice_reply(catalog: Catalog, language: str, notice: Notice) -> Reply:
    """A notice for the person who caused it, as part of their direct reply."""
    return render_notice(catalog, language, notice.key, notice.params, notice.actions)


def claimed_replies(catalog: Catalog, row: Claimed) -> tuple[list[Reply], int | None]:
    """What to send for a claimed row, and the message a stored reply edits."""
    if row.body is not None:
        return replies_from_body(row.body), row.body.get("edit")
    params = dict(row.params)
    if row.message_key == BROADCAST_KEY:
        params["text"] = row.broadcast_text or ""
    return [render_notice(catalog, row.language, row.message_key or "", params,
                          row.actions)], None


# --- direct replies as stored rows -------------------------------------------------


def replies_to_body(replies: Sequence[Reply], edit_message_id: int | None) -> dict[str, Any]:
    return {"replies": [_reply_to_json(r) for r in replies], "edit": edit_message_id}


def replies_from_body(body: Mapping[str, Any]) -> list[Reply]:
    return [_reply_from_json(r) for r in body.get("replies", ())]


_REPLY_FIELDS = tuple((f.name, f.default) for f in dataclasses.fields(Reply)
                      if f.name not in ("text", "options", "controls", "extra"))


def _reply_to_json(reply: Reply) -> dict[str, Any]:
    # Written on every update: fields at their defaults are left out, by hand (asdict
    # deep-copies every option).
    data: dict[str, Any] = {"text": reply.text}
    for name, default in _REPLY_FIELDS:
        value = getattr(reply, name)
        if value != default:
            data[name] = value
    for name in ("options", "controls"):
        options = getattr(reply, name)
        if options:
            data[name] = [_option_to_json(o) for o in options]
    if reply.extra:
        data["extra"] = dict(reply.extra)
    return data


def _option_to_json(option: Option) -> dict[str, Any]:
    data: dict[str, Any] = {"id": option.id, "label": option.label}
    if option.number is not None:
        data["number"] = option.number
    if option.selected:
        data["selected"] = True
    return data


def _reply_from_json(data: Mapping[str, Any]) -> Reply:
    fields = dict(data)
    for name in ("options", "controls"):
        fields[name] = tuple(Option(**o) for o in fields.get(name, ()))
    if "hint" in fields:
        fields["hint"] = Hint(fields["hint"])
    return Reply(**fields)
