"""/incoming: staff receive donors' pledges into stock, counting what arrived; /stock:
what the aggregator holds per category.

A pledge is received by tapping it and then typing (or tapping) the quantity counted,
which may differ from the pledge. Every step checks on the server that the person is
staff of the pledge's aggregator and that the pledge still waits.
"""

from __future__ import annotations

from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.handlers.plain import as_typed
from gotong.handlers.staff import actor, coverage, not_staff
from gotong.handlers.staff_actions import Actor, Refusal, pledge_to_receive, receive
from gotong.handlers.turn import Turn
from gotong.handlers.validators import Invalid, parse_quantity
from gotong.models.pledge import CATEGORIES, Handover, Pledge, PledgeStatus, max_quantity
from gotong.models.stock import incoming_pledges, stock_of

INCOMING_CONTEXT = "inc"
COUNT_CONTEXT = "incq"
# Scratch key of a pledge waiting for the quantity counted.
COUNT_OVERLAY = "count"
RECEIVE = "p"
AS_PLEDGED = "all"
# Counts given as examples in a hint: a sensible gift of goods, and of money.
EXAMPLE_ITEMS = 10
EXAMPLE_MONEY = 50_000


def _thousands(quantity: int) -> str:
    """1000 as "1.000": thousands marked the Indonesian way."""
    return f"{quantity:,}".replace(",", ".")


def quantity_text(turn: Turn, category: str, quantity: int) -> str:
    """"1.000 packages", "50.000 rupiah": the count and its unit, for where the category
    is named already (a stock line, a prompt about the category chosen)."""
    unit = turn.t(f"unit_one.{category}") if quantity == 1 else turn.t(f"unit.{category}")
    return turn.t("stock.quantity", quantity=_thousands(quantity), unit=unit)


def amount_text(turn: Turn, category: str, quantity: int) -> str:
    """"1 paket sembako", "3 staple food packages": the count with what it counts, for a
    line about one pledge or delivery. One message per category, as joining a unit to
    the category's name repeats the unit ("1 paket Paket sembako")."""
    return turn.t(f"amount.{category}", quantity=_thousands(quantity))


def pledge_state_key(status: str, handover: str) -> str:
    """The words for where a pledge stands. One not yet handed over waits to be brought
    to the posko or to be picked up: "not received" would read as if it were lost."""
    if status == PledgeStatus.PLEDGED:
        return "pledge.awaiting_pickup" if handover == Handover.PICKUP \
            else "pledge.awaiting_drop"
    return f"pledge.{status}"
def parse_count(turn: Turn, text: str, category: str, example: int | None = None
                ) -> int | Invalid:
    """A count of a category's unit as typed ("10", "10 paket", "Rp 50.000", "50rb"); a
    refusal names the unit expected and gives an example of it."""
    if example is None:
        example = EXAMPLE_MONEY if category == "money" else EXAMPLE_ITEMS
    return parse_quantity(text, max_quantity(category), unit=turn.t(f"unit.{category}"),
                          example=example)


def _pledge_line(turn: Turn, pledge: Pledge) -> str:
    handover = turn.t("incoming.drop") if pledge.handover == Handover.DROP else turn.t(
        "incoming.pickup", address=as_typed(pledge.pickup_address),
        window=as_typed(pledge.pickup_window))
    return turn.t("incoming.pledge", code=pledge.code,
                  quantity=amount_text(turn, pledge.category, pledge.quantity),
                  donor=as_typed(pledge.donor_name), phone=pledge.phone, handover=handover)


async def show_incoming(turn: Turn, prefix: str | None = None) -> list[Reply]:
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "incoming")
    pledges = await incoming_pledges(turn.session, staff.aggregator_ids,
                                     turn.settings.page_size)
    head = [prefix] if prefix else []
    if not pledges:
        return [Reply(text="\n\n".join([*head, turn.t("incoming.none")]))]
    lines = [turn.t("incoming.title"), *(f"{i + 1}. {_pledge_line(turn, p)}"
                                         for i, p in enumerate(pledges))]
    options = tuple(Option(f"{RECEIVE}:{p.id}", turn.t("incoming.receive", code=p.code),
                           number=i + 1) for i, p in enumerate(pledges))
    return [Reply(text="\n\n".join([*head, "\n".join(lines)]), options=options,
                  hint=Hint.SINGLE, context=INCOMING_CONTEXT)]


async def _authorized(turn: Turn, pledge_id: object, action: str
                      ) -> tuple[Actor | None, Pledge | None, list[Reply]]:
    """The pledge, if this person may receive it now; else the refusal to send."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return None, None, not_staff(turn, action)
    acting = actor(turn, staff)
    pledge, refusal = await pledge_to_receive(acting, pledge_id, action)
    if refusal == Refusal.NOT_YOURS or pledge is None:
        return None, None, [Reply(text=turn.t("incoming.not_yours"))]
    if refusal == Refusal.ALREADY_DONE:
        return None, None, [Reply(text=turn.t("incoming.already_done", code=pledge.code))]
    return acting, pledge, []


async def on_incoming_button(turn: Turn, option: str) -> list[Reply]:
    """A pledge tapped in the incoming list: ask how much arrived."""
    action, _, pledge_id = option.partition(":")
    if action != RECEIVE:
        return [Reply(text=turn.t("button.invalid"))]
    _, pledge, refusal = await _authorized(turn, pledge_id, "receive")
    if pledge is None:
        return refusal
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": COUNT_OVERLAY,
                                 "pledge": pledge.id}
    quick = Option(f"{AS_PLEDGED}:{pledge.id}", turn.t(
        "incoming.as_pledged", quantity=quantity_text(turn, pledge.category, pledge.quantity)),
        number=1)
    # "How many packages of GP-…": what is counted is named, the pledge is where from.
    return [Reply(text=turn.t("incoming.count", code=pledge.code,
                              unit=turn.t(f"unit.{pledge.category}"),
                              quantity=amount_text(turn, pledge.category, pledge.quantity)),
                  options=(quick,), hint=Hint.SINGLE, context=COUNT_CONTEXT)]


async def on_count(turn: Turn, incoming: Incoming) -> list[Reply] | None:
    """The answer to "how much arrived?"; None if the message is not one."""
    scratch = dict(turn.conversation.scratch)
    pledge_id = scratch.get("pledge")
    if incoming.kind == Kind.CHOICE and incoming.context == COUNT_CONTEXT:
        action, _, tapped = (incoming.option or "").partition(":")
        if action != AS_PLEDGED or tapped != str(pledge_id):
            return [Reply(text=turn.t("button.stale"))]
    elif incoming.kind != Kind.TEXT:
        return None
    acting, pledge, refusal = await _authorized(turn, pledge_id, "receive")
    if acting is None or pledge is None:
        _forget(turn)
        return refusal
    counted = pledge.quantity
    if incoming.kind == Kind.TEXT:
        parsed = parse_count(turn, incoming.text, pledge.category)
        if isinstance(parsed, Invalid):
            return [Reply(text=turn.t(parsed.reason, **parsed.params))]
        counted = parsed
    _forget(turn)
    if await receive(acting, pledge, counted) is not None:
        return [Reply(text=turn.t("incoming.already_done", code=pledge.code))]
    done = turn.t("incoming.received", code=pledge.code,
                  quantity=quantity_text(turn, pledge.category, counted))
    return await show_incoming(turn, prefix=done)


def _forget(turn: Turn) -> None:
    turn.conversation.forget("overlay", "pledge")


async def show_stock(turn: Turn) -> list[Reply]:
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "stock")
    stock = await stock_of(turn.session, staff.aggregator_ids)
    lines = [turn.t("stock.title")]
    lines += [f"- {turn.t(f'category.{c}')}: {quantity_text(turn, c, stock.get(c, 0))}"
              for c in CATEGORIES]
    return [Reply(text="\n".join(lines))]
