"""What one `GET /v1/payments/{id}` costs the caller, client by client (issue 10).

Starts the bundled simulator in a process of its own (uvloop and httptools there when
installed, so the server is the same for every client), creates `--payments` approved
payments in it, then, in this process, fetches them round-robin with each client in turn,
with 1 and with 32 callers at a time, `--rounds` times interleaved so that a noisy machine
hurts every client alike. For each it prints GET/s, p50/p99 latency and the client
process's CPU per call (the figure that matters on a shared 2-core machine: the processor
pays it for every fetch).

Clients:
- `httpx-today`: `MercadoPagoGateway.fetch_payment` over `httpx.AsyncClient(base_url=...,
  timeout=...)`, as bootstrap built it before issue 10 (through `HttpxWire` now);
- `httpx-tuned`: the same over httpx with trust_env=False, HTTP/1.1 only, explicit
  limits and the Authorization header on the client;
- `aiohttp`: one `ClientSession` on a keep-alive `TCPConnector`, JSON read as the adapter
  does (simplejson, Decimal-exact);
- `adapter`: `MercadoPagoGateway.fetch_payment` over the wire bootstrap builds since
  issue 10 (`AiohttpWire`);
- `raw`: a hand-written keep-alive HTTP/1.1 client on asyncio streams, the floor.

Usage:

    .venv/bin/python benchmarks/gateway_client.py [--requests 3000] [--rounds 2]
        [--loop asyncio|uvloop] [--clients httpx-today,httpx-tuned,aiohttp,adapter,raw]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import simplejson

TOKEN = "bench-gateway-token"
Fetch = Callable[[str], Awaitable[object]]


# -- the simulator, in its own process ---------------------------------------------------

async def _serve(payments: int) -> None:
    from payrelay.simulator import GatewaySimulator, create_app
    from payrelay.simulator.serving import EmbeddedServer

    sim = GatewaySimulator(access_token=TOKEN, webhook_secret="unused", approve_delay=0)
    ids = []
    for n in range(payments):
        item = {"title": "Mate", "quantity": 1, "unit_price": "10.10", "currency_id": "BRL"}
        pref = sim.create_preference({"items": [item], "external_reference": f"order-{n}"})
        ids.append(str(await sim.pay(str(pref["id"]))))
    async with EmbeddedServer(create_app(sim)) as server:
        print(json.dumps({"base_url": server.base_url, "ids": ids}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _serve_main(payments: int) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(payments))
    else:
        uvloop.run(_serve(payments))


# -- the clients ---------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def httpx_today(base_url: str) -> Any:
    import httpx

    from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
    from payrelay.adapters.gateways.wire import HttpxWire

    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        yield MercadoPagoGateway(HttpxWire(client), access_token=TOKEN).fetch_payment


@contextlib.asynccontextmanager
async def httpx_tuned(base_url: str) -> Any:
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=httpx.Timeout(10.0), limits=limits, http1=True,
        http2=False, trust_env=False, headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        async def fetch(payment_id: str) -> object:
            response = await client.get(f"/v1/payments/{payment_id}")
            return simplejson.loads(response.content, use_decimal=True)
        yield fetch


@contextlib.asynccontextmanager
async def aiohttp_session(base_url: str) -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=64, ttl_dns_cache=None, keepalive_timeout=30)
    async with aiohttp.ClientSession(
        base_url, connector=connector, timeout=aiohttp.ClientTimeout(total=10.0),
        headers={"Authorization": f"Bearer {TOKEN}"}, skip_auto_headers=("User-Agent",),
        auto_decompress=False,
    ) as session:
        async def fetch(payment_id: str) -> object:
            async with session.get(f"/v1/payments/{payment_id}") as response:
                return simplejson.loads(await response.read(), use_decimal=True)
        yield fetch


@contextlib.asynccontextmanager
async def adapter(base_url: str) -> Any:
    from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
    from payrelay.adapters.gateways.wire import AiohttpWire

    wire = AiohttpWire(base_url, timeout=10.0)
    try:
        yield MercadoPagoGateway(wire, access_token=TOKEN).fetch_payment
    finally:
        await wire.aclose()


@contextlib.asynccontextmanager
async def raw(base_url: str) -> Any:
    host, port = base_url.removeprefix("http://").split(":")
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def fetch(payment_id: str) -> object:
        reader, writer = idle.pop() if idle else await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /v1/payments/{payment_id} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        idle.append((reader, writer))
        return simplejson.loads(body, use_decimal=True)

    try:
        yield fetch
    finally:
        for _, writer in idle:
            writer.close()


CLIENTS = {
    "httpx-today": httpx_today, "httpx-tuned": httpx_tuned, "aiohttp": aiohttp_session,
    "adapter": adapter, "raw": raw,
}


# -- measuring -------------------------------------------------------------------------------

async def measure(fetch: Fetch, ids: list[str], *, requests: int, callers: int
                  ) -> dict[str, float]:
    for payment_id in ids[:callers]:  # connections open before the clock starts
        await fetch(payment_id)
    pending = itertools.islice(itertools.cycle(ids), requests)
    latencies: list[float] = []

    async def caller() -> None:
        for payment_id in pending:
            started = time.perf_counter()
            await fetch(payment_id)
            latencies.append(time.perf_counter() - started)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cuts = statistics.quantiles(latencies, n=100)
    return {"rps": requests / wall, "p50_ms": cuts[49] * 1e3, "p99_ms": cuts[98] * 1e3,
            "cpu_us": cpu / requests * 1e6}


async def bench(args: argparse.Namespace, base_url: str, ids: list[str]) -> None:
    names = args.clients.split(",")
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _round, callers, name in itertools.product(range(args.rounds), (1, 32), names):
        async with CLIENTS[name](base_url) as fetch:
            figures = await measure(fetch, ids, requests=args.requests, callers=callers)
        results.setdefault((name, callers), []).append(figures)
    print(f"loop={args.loop} requests={args.requests} rounds={args.rounds} (best round)")
    print(f"{'client':<12} {'callers':>7} {'GET/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU us/GET':>10} {'vs today':>8}")
    for (name, callers), rounds in results.items():
        best = max(rounds, key=lambda r: r["rps"])
        today = results.get(("httpx-today", callers))
        ratio = best["rps"] / max(r["rps"] for r in today) if today else float("nan")
        print(f"{name:<12} {callers:>7} {best['rps']:>8.0f} {best['p50_ms']:>8.2f} "
              f"{best['p99_ms']:>8.2f} {best['cpu_us']:>10.0f} {ratio:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--clients", default="httpx-today,httpx-tuned,aiohttp,raw")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve_main(args.payments)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--payments", str(args.payments)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        run = bench(args, ready["base_url"], ready["ids"])
        if args.loop == "uvloop":
            import uvloop
            uvloop.run(run)
        else:
            asyncio.run(run)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
