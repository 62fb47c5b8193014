"""/allocate: staff give stock of one category to the verified households first in
priority order, each shown with the parts of its score.

The steps: choose the category (and aggregator, for staff of several), the quantity per
household, then the proposal: confirm it, skip a household (with a reason), or add one
by its reference out of order (with a reason; this is also how the cool-down is
overridden). The state lives in the conversation's scratch under "al"; every step checks
on the server that the person is staff of the aggregator and that the households are in
its area.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.handlers.plain import as_typed
from gotong.handlers.staff import actor, coverage, not_staff, refuse
from gotong.handlers.staff_actions import confirm_allocation
from gotong.handlers.stock import parse_count, quantity_text
from gotong.handlers.turn import Turn
from gotong.handlers.validators import Invalid, parse_id, parse_short_text
from gotong.models.aggregator import covered_areas, get_aggregator
from gotong.models.allocation import propose
from gotong.models.audit import audit
from gotong.models.help_request import HelpRequest, served_since
from gotong.models.pledge import CATEGORIES
from gotong.models.priority import score_parts
from gotong.models.request_status import RequestStatus
from gotong.models.stock import stock_of

CONTEXT = "al"
OVERLAY = "allocate"
CATEGORY, PER, CONFIRM, SKIP, ADD, STOP = "c", "n", "ok", "s", "add", "x"
MAX_REASON = 200
# Quick answers to "how many per household?" for goods (money is typed).
QUICK_QUANTITIES = (1, 2, 3)


def _state(turn: Turn) -> dict[str, Any]:
    state = turn.conversation.scratch.get("al")
    return dict(state) if isinstance(state, dict) else {}


def _keep(turn: Turn, state: dict[str, Any]) -> None:
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": OVERLAY, "al": state}


def _end(turn: Turn) -> None:
    turn.conversation.forget("overlay", "al")


async def start(turn: Turn) -> list[Reply]:
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "allocate")
    options: list[Option] = []
    several = len(staff.aggregator_ids) > 1
    for aggregator_id in staff.aggregator_ids:
        stock = await stock_of(turn.session, [aggregator_id])
        name = (await get_aggregator(turn.session, aggregator_id)).name if several else ""
        for category in CATEGORIES:
            if stock.get(category, 0) > 0:
                label = turn.t(f"category.{category}") + \
                    f" ({quantity_text(turn, category, stock[category])})"
                options.append(Option(f"{CATEGORY}:{aggregator_id}:{category}",
                                      f"{name}: {label}" if name else label,
                                      number=len(options) + 1))
    if not options:
        return [Reply(text=turn.t("allocate.no_stock"))]
    _keep(turn, {})
    return [Reply(text=turn.t("allocate.category"), options=tuple(options), hint=Hint.SINGLE,
                  context=CONTEXT)]


async def on_button(turn: Turn, option: str) -> list[Reply]:
    state = _state(turn)
    action, _, rest = option.partition(":")
    if turn.conversation.scratch.get("overlay") != OVERLAY:
        return [Reply(text=turn.t("button.stale"))]
    if action == CATEGORY:
        return await _chose_category(turn, rest)
    if "per" not in state and action == PER and "category" in state:
        return await _chose_per(turn, state, rest)
    if "per" not in state:
        return [Reply(text=turn.t("button.stale"))]
    if action == STOP:
        _end(turn)
        return [Reply(text=turn.t("allocate.stopped"))]
    if action == CONFIRM:
        return await _confirm(turn, state)
    if action == SKIP and rest in state.get("proposed", []):
        _keep(turn, {**state, "awaiting": f"skip:{rest}"})
        request = await turn.session.get(HelpRequest, int(rest))
        return [Reply(text=turn.t("allocate.skip_why",
                                  reference=request.reference if request else ""))]
    if action == ADD:
        _keep(turn, {**state, "awaiting": "reference"})
        return [Reply(text=turn.t("allocate.add_which"))]
    return [Reply(text=turn.t("button.invalid"))]


async def _chose_category(turn: Turn, rest: str) -> list[Reply]:
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "allocate")
    aggregator, _, category = rest.partition(":")
    if parse_id(aggregator) not in staff.aggregator_ids:
        return refuse(turn, "allocate", "not their aggregator", "allocate.not_yours",
                      staff.aggregator_ids[0])
    if category not in CATEGORIES:
        return [Reply(text=turn.t("button.invalid"))]
    state = {"aggregator": parse_id(aggregator), "category": category}
    _keep(turn, state)
    options = () if category == "money" else tuple(
        Option(f"{PER}:{n}", str(n), number=i + 1) for i, n in enumerate(QUICK_QUANTITIES))
    return [Reply(text=turn.t("allocate.per_household", unit=turn.t(f"unit.{category}")),
                  options=options, hint=Hint.SINGLE if options else Hint.NONE,
                  context=CONTEXT)]


async def _chose_per(turn: Turn, state: dict[str, Any], text: str) -> list[Reply]:
    # One household's share: an example of one, or a modest sum of money.
    parsed = parse_count(turn, text, state["category"],
                         None if state["category"] == "money" else 1)
    if isinstance(parsed, Invalid):
        return [Reply(text=turn.t(parsed.reason, **parsed.params))]
    return await _proposal(turn, {**state, "per": parsed, "skipped": {}, "added": {}})


async def _villages(turn: Turn, aggregator_id: int) -> set[int]:
    covered = await covered_areas(turn.session, [aggregator_id])
    return turn.areas.villages_under(covered.get(aggregator_id, []))


async def _proposal(turn: Turn, state: dict[str, Any], prefix: str | None = None
                    ) -> list[Reply]:
    """The households stock would go to now: those added by hand, then in order."""
    category, per = state["category"], state["per"]
    in_stock = (await stock_of(turn.session, [state["aggregator"]])).get(category, 0)
    room = min(turn.settings.allocation_size, in_stock // per)
    added = [r for r in [await turn.session.get(HelpRequest, int(i)) for i in state["added"]
                         if i not in state["skipped"]]
             if r is not None and r.status == RequestStatus.VERIFIED][:room]
    skip = {int(i) for i in state["skipped"]} | {r.id for r in added}
    ordered = await propose(turn.session, await _villages(turn, state["aggregator"]),
                            room - len(added), turn.now, turn.settings.cooldown, skip)
    households = [*added, *ordered]
    state = {**state, "proposed": [str(r.id) for r in households], "awaiting": None}
    _keep(turn, state)
    head = [prefix] if prefix else []
    if not households:
        key = "allocate.nobody" if room else "allocate.too_little"
        return [Reply(text="\n\n".join([*head, turn.t(key, stock=quantity_text(
            turn, category, in_stock))]), options=(
                Option(f"{ADD}:", turn.t("allocate.add"), number=1),
                Option(f"{STOP}:", turn.t("allocate.stop"), number=2)),
            hint=Hint.SINGLE, context=CONTEXT)]
    cooling = await served_since(turn.session, added, turn.now - turn.settings.cooldown)
    lines = [turn.t("allocate.proposal", count=len(households),
                    each=quantity_text(turn, category, per),
                    total=quantity_text(turn, category, per * len(households)),
                    stock=quantity_text(turn, category, in_stock))]
    for i, request in enumerate(households):
        lines.append(f"{i + 1}. {_household_line(turn, request)}")
        if request.id in cooling:
            lines.append("   " + turn.t("allocate.cooldown_override"))
        if str(request.id) in state["added"]:
            lines.append("   " + turn.t("allocate.added_because",
                                        reason=state["added"][str(request.id)]))
    options = [Option(f"{CONFIRM}:", turn.t("allocate.confirm"), number=1)]
    options += [Option(f"{SKIP}:{r.id}", turn.t("allocate.skip", n=i + 1),
                       number=len(options) + 1) for i, r in enumerate(households)]
    options += [Option(f"{ADD}:", turn.t("allocate.add"), number=len(options) + 1),
                Option(f"{STOP}:", turn.t("allocate.stop"), number=len(options) + 2)]
    return [Reply(text="\n\n".join([*head, "\n".join(lines)]), options=tuple(options),
                  hint=Hint.SINGLE, context=CONTEXT)]


def _household_line(turn: Turn, request: HelpRequest) -> str:
    parts = score_parts(request.household_size, request.vulnerabilities, request.created_at,
                        turn.now, request.served_before)
    place = turn.areas.place(request.village_id)
    return turn.t("allocate.household", reference=request.reference,
                  name=as_typed(request.head_name),
                  place=place.display() if place else "", size=request.household_size,
                  score=f"{sum(parts.values()):g}",
                  parts=", ".join(f"{turn.t(f'score.{k}')} {v:g}"
                                  for k, v in parts.items() if v))


async def on_text(turn: Turn, incoming: Incoming) -> list[Reply] | None:
    """Typed answers: the quantity per household, a reason, a reference; None if the
    message is not one (the overlay then ends)."""
    state = _state(turn)
    if incoming.kind == Kind.CHOICE and incoming.context == CONTEXT:
        return await on_button(turn, incoming.option or "")
    if incoming.kind != Kind.TEXT:
        return None
    if "category" in state and "per" not in state:
        return await _chose_per(turn, state, incoming.text)
    awaiting = str(state.get("awaiting") or "")
    if not awaiting:
        return None
    if awaiting == "reference":
        return await _added(turn, state, incoming.text)
    reason = parse_short_text(incoming.text, MAX_REASON)
    if isinstance(reason, Invalid):
        return [Reply(text=turn.t("allocate.reason_needed"))]
    kind, _, request_id = awaiting.partition(":")
    request = await turn.session.get(HelpRequest, int(request_id))
    reference = request.reference if request else ""
    if kind == "skip":
        audit(turn.session, turn.now, "allocate_skip", "done", contact_id=turn.contact.id,
              aggregator_id=state["aggregator"], detail=f"{reference}: {reason}")
        state = {**state, "skipped": {**state["skipped"], request_id: reason}}
        return await _proposal(turn, state, turn.t("allocate.skipped", reference=reference))
    state = {**state, "added": {request_id: reason, **state["added"]},
             "skipped": {k: v for k, v in state["skipped"].items() if k != request_id}}
    return await _proposal(turn, state, turn.t("allocate.added", reference=reference))


async def _added(turn: Turn, state: dict[str, Any], text: str) -> list[Reply]:
    """A reference typed to add a household out of order: it must be verified and in the
    aggregator's area."""
    reference = text.strip().upper().replace(" ", "")
    if reference and not reference.startswith("GT-"):
        reference = "GT-" + reference.removeprefix("GT")
    request = await _by_reference(turn, reference)
    if request is None or request.village_id not in await _villages(turn,
                                                                    state["aggregator"]):
        if request is not None:
            audit(turn.session, turn.now, "allocate_add", "outside area",
                  contact_id=turn.contact.id, aggregator_id=state["aggregator"])
        return [Reply(text=turn.t("allocate.unknown_reference"))]
    if request.status != RequestStatus.VERIFIED:
        return [Reply(text=turn.t("allocate.not_verified", reference=request.reference,
                                  status=turn.t(f"status.{request.status}")))]
    _keep(turn, {**state, "awaiting": f"add:{request.id}"})
    return [Reply(text=turn.t("allocate.add_why", reference=request.reference))]


async def _by_reference(turn: Turn, reference: str) -> HelpRequest | None:
    return await turn.session.scalar(
        select(HelpRequest).where(HelpRequest.reference == reference[:12]))


async def _confirm(turn: Turn, state: dict[str, Any]) -> list[Reply]:
    staff = await coverage(turn)
    aggregator_id = state["aggregator"]
    outcome = await confirm_allocation(
        actor(turn, staff), aggregator_id, state["category"], state["per"],
        [int(i) for i in state.get("proposed", [])], state["added"], turn.settings.cooldown)
    if outcome is None:
        _end(turn)
        return [Reply(text=turn.t("allocate.not_yours"))]
    _end(turn)
    category = state["category"]
    references = {}
    for request_id, _ in outcome.refused:
        request = await turn.session.get(HelpRequest, request_id)
        references[request_id] = request.reference if request else "?"
    lines = [turn.t("allocate.done", count=len(outcome.deliveries),
                    each=quantity_text(turn, category, state["per"]))]
    lines += [turn.t(f"allocate.refused.{why}", reference=references[request_id])
              for request_id, why in outcome.refused]
    left = (await stock_of(turn.session, [aggregator_id])).get(category, 0)
    lines.append(turn.t("allocate.stock_left", stock=quantity_text(turn, category, left)))
    return [Reply(text="\n".join(lines))]
