"""`/healthz`: the process is alive (it answers). `/readyz`: it can do its work: the
database answers and its schema is this version's, and each chat app's API answered within
the last minute (or answers a probe now). 200 or 503, with a JSON body naming each part's
state, for a load balancer or an orchestrator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gotong.models.migrate import schema_state

# What keeps a part from working (None when it works).
Check = Callable[[], Awaitable[str | None]]
CHECKS = web.AppKey("readiness_checks", dict)
# A part that does not answer within this long is not ready.
CHECK_SECONDS = 5.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> str | None:
        try:
            state = await schema_state(engine)
        except Exception as exc:
            return f"unreachable ({type(exc).__name__})"
        if not state.up_to_date:
            return f"schema {state.current or 'empty'}, needs {state.head}"
        return None

    return check


async def _state(check: Check) -> str:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            problem = await check()
    except TimeoutError:
        return f"no answer within {CHECK_SECONDS:.0f} s"
    except Exception as exc:
        return f"failed ({type(exc).__name__})"
    return problem or "ok"


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, Check] = request.app[CHECKS]
    states = await asyncio.gather(*(_state(check) for check in checks.values()))
    parts = dict(zip(checks, states, strict=True))
    ready = all(state == "ok" for state in states)
    return web.json_response({"status": "ready" if ready else "not ready", "parts": parts},
                             status=200 if ready else 503)


def add_routes(app: web.Application, checks: Mapping[str, Check]) -> None:
    app[CHECKS] = dict(checks)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
