"""One client slows everyone?  /healthz while strangers flood the dashboard and hold sockets.

Gotong's web app (the pages, on a new SQLite database, behind the server `gotong run` uses)
runs in a process of its own (``--serve``).  This process first asks its /healthz for a
while with nothing else going on (the baseline), then again while it is attacked:

* 32 connections posting anonymous multipart bodies of 1,000 parts to dashboard routes, as
  fast as the server takes them, about 1 MB a second in all (a body is sent in pieces, a
  piece every few milliseconds);
* 200 connections trickling a request's header lines, one every 5 seconds, never ending it.

Each /healthz is a new connection, one after another; the wait from sending it to its
answer is recorded.  Printed: the p50 and p99 of each phase, the server's memory (resident
set) before and after the attack, and the attack's own figures (bodies refused, slow
sockets the server closed)::

    .venv/bin/python benchmarks/slow_clients.py [--seconds S]

The bar: /healthz under attack within 100 ms at p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gotong.bot.config import Config, DatabaseConfig, PrivacyConfig, WebConfig, validate
from gotong.bot.logs import setup_logging
from gotong.bot.services import open_services
from gotong.bot.web.app import create_web_app
from gotong.bot.web.server import WebServer

FLOODERS = 32
SLOW_SOCKETS = 200
PARTS = 1000
# Bytes a second all flooders send together, and the piece each sends at once.
FLOOD_RATE = 1_000_000
PIECE = 4096
SLOW_EVERY = 5.0
BAR_SECONDS = 0.100


async def serve(port: int, directory: str) -> None:
    """The web app on `port` until killed."""
    setup_logging("WARNING")
    config = Config(database=DatabaseConfig(url=f"sqlite+aiosqlite:///{directory}/g.sqlite3"),
                    privacy=PrivacyConfig(nik_hash_key="benchmark-nik-hash-key-" + "k" * 32),
                    web=WebConfig(port=port, playground="off"))
    validate(config)
    services = await open_services(config, migrate=True)
    server = WebServer(create_web_app(services=services), config.web)
    await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def resident_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def healthz(port: int) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = await reader.readline()
        await reader.read()
    finally:
        writer.close()
    if b" 200 " not in status:
        raise RuntimeError(f"/healthz answered {status!r}")
    return time.perf_counter() - started


async def probe(port: int, seconds: float) -> list[float]:
    waits: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        waits.append(await healthz(port))
        await asyncio.sleep(0.02)
    return waits


def multipart_body() -> bytes:
    parts = [b"--x\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n" % i
             for i in range(PARTS)]
    return b"".join(parts) + b"--x--\r\n"


class Attack:
    def __init__(self, port: int) -> None:
        self.port = port
        self.refused = 0
        self.closed_slow = 0
        self._stop = asyncio.Event()

    async def flood(self, number: int) -> None:
        body = multipart_body()
        pause = PIECE / (FLOOD_RATE / FLOODERS)
        while not self._stop.is_set():
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    writer.write(b"POST /dashboard/requests/%d/verify HTTP/1.1\r\n"
                                 b"Host: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                                 b"boundary=x\r\nContent-Length: %d\r\n\r\n"
                                 % (number, len(body)))
                    for start in range(0, len(body), PIECE):
                        if reader.at_eof() or self._stop.is_set():
                            break
                        writer.write(body[start:start + PIECE])
                        await writer.drain()
                        await asyncio.sleep(pause)
                    status = await asyncio.wait_for(reader.readline(), 5)
                    if status and b" 200 " not in status:
                        self.refused += 1
                finally:
                    writer.close()

    async def slow(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    while not self._stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            if await asyncio.wait_for(reader.read(100), SLOW_EVERY) == b"":
                                self.closed_slow += 1
                                break
                        writer.write(b"X-Slow: 1\r\n")
                        await writer.drain()
                finally:
                    writer.close()

    async def run(self, seconds: float) -> list[float]:
        tasks = [asyncio.create_task(self.flood(n)) for n in range(FLOODERS)]
        tasks += [asyncio.create_task(self.slow()) for _ in range(SLOW_SOCKETS)]
        await asyncio.sleep(1.0)  # the attack under way
        try:
            return await probe(self.port, seconds)
        finally:
            self._stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(waits: Sequence[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(waits, n=100, method="inclusive")
    return statistics.median(waits), cuts[98]


async def measure(seconds: float) -> int:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gotong-bench-") as directory:
        server = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", str(port), directory,
            stdout=asyncio.subprocess.PIPE)
        try:
            assert server.stdout is not None
            if (await server.stdout.readline()).strip() != b"ready":
                print("benchmark failed: the server did not start", file=sys.stderr)
                return 1
            await probe(port, 1.0)  # warm-up
            idle = await probe(port, seconds)
            before = resident_kb(server.pid)
            attack = Attack(port)
            attacked = await attack.run(seconds)
            after = resident_kb(server.pid)
        finally:
            server.terminate()
            await server.wait()
    idle_p50, idle_p99 = percentiles(idle)
    p50, p99 = percentiles(attacked)
    print(f"healthz idle: p50={idle_p50 * 1000:.1f} ms p99={idle_p99 * 1000:.1f} ms "
          f"({len(idle)} calls)")
    print(f"healthz under attack: p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms "
          f"({len(attacked)} calls; {FLOODERS} flooders, {attack.refused} bodies refused; "
          f"{SLOW_SOCKETS} slow sockets, {attack.closed_slow} closed by the server)")
    print(f"server memory: {before // 1024} MB before, {after // 1024} MB after")
    print(f"attack/idle p99 ratio={p99 / idle_p99:.1f} (bar: p99 under "
          f"{BAR_SECONDS * 1000:.0f} ms: {'met' if p99 < BAR_SECONDS else 'NOT met'})")
    return 0 if p99 < BAR_SECONDS else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds each phase asks /healthz (default 10)")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DIRECTORY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(int(args.serve[0]), args.serve[1]))
        return 0
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(measure(args.seconds))


if __name__ == "__main__":
    sys.exit(main())
