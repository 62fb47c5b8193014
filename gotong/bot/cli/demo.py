"""`gotong demo load|clear`: the playground's fictional aid organisation, staff member and
volunteer, loaded only into a database without real data, and removed again without
touching anything real."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from gotong.bot.config import Config
from gotong.bot.services import open_services
from gotong.models.base import utcnow
from gotong.models.demo import AGGREGATOR_NAME, MixedData, RealData, clear_demo, seed_demo


def add_demo_parser(commands: Any) -> None:
    demo = commands.add_parser("demo", help="the playground's fictional demo data: load it "
                               "(only into a database without real data) or clear it")
    demo.add_argument("action", choices=["load", "clear"])


async def run_demo(config: Config, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    services = await open_services(config)
    try:
        async with services.sessions() as session, session.begin():
            if args.action == "load":
                if not await seed_demo(session, services.areas, utcnow(),
                                       config.i18n.default_language):
                    print("the demo data is loaded already", file=out)
                    return 0
                print(f"loaded the demo data: {AGGREGATOR_NAME}, its staff member and its "
                      "volunteer (the playground's screens); `gotong demo clear` removes "
                      "them", file=out)
                return 0
            cleared = await clear_demo(session)
        print(f"cleared the demo data: {cleared.aggregators} aggregators, "
              f"{cleared.contacts} playground people, {cleared.requests} requests and "
              f"{cleared.pledges} pledges; nothing else was touched", file=out)
        return 0
    except RealData:
        print("gotong: this database holds real data (aggregators added by the operator, "
              "or people who wrote from a chat app): demo data is not loaded into it. Use a "
              "database of its own to try Gotong (database.url)", file=sys.stderr)
        return 2
    except MixedData:
        print("gotong: real aid is tied to the demo data (a real household served by the "
              "demo organisation, or a real donor's pledge to it): nothing was cleared",
              file=sys.stderr)
        return 2
    finally:
        await services.close()
