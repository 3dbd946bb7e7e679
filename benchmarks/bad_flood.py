"""Does a flood of bad requests cost good webhooks their latency? (issue 8)

Runs the embedded payments API (SQLite, no workers: intake only), then measures signed,
valid webhooks' latency twice: alone, and while a second process floods the same public
listener from another loopback address (127.0.0.2) with

- back-to-back webhooks with a wrong signature, malformed IPN ids and oversize bodies,
- garbage that is not HTTP,
- connections that send their headers, or their body, one byte at a time (slowloris),
- optionally (`--deep-json`) 1,000-deep JSON bodies.

It prints p50/p99 for both phases and their ratio, and exits 1 if the flood moved the good
p99 by more than `--max-ratio` (default 2). Usage:

    .venv/bin/python benchmarks/bad_flood.py [--seconds 8] [--concurrency 4]    # make bench-flood
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from payrelay.domain.signature import signature_header
from payrelay.entrypoints.embedded import embedded_settings, run_embedded

SECRET = "payrelay-simulator-webhook-secret"
ATTACKER = "127.0.0.2"


def signed(payment_id: str, secret: str = SECRET) -> dict[str, object]:
    request_id = str(uuid.uuid4())
    header = signature_header(secret, data_id=payment_id, request_id=request_id,
                              ts=int(time.time()))
    body = {"type": "payment", "action": "payment.updated", "data": {"id": payment_id}}
    return {
        "params": {"data.id": payment_id, "type": "payment"},
        "headers": {"x-signature": header, "x-request-id": request_id},
        "content": json.dumps(body),
    }


# -- the good client -------------------------------------------------------------------

async def good_latencies(url: str, *, seconds: float, concurrency: int, first_id: int
                         ) -> list[float]:
    """Latency of each signed, valid webhook sent over `seconds`, `concurrency` at a time."""
    latencies: list[float] = []
    ids = itertools.count(first_id)
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as http:
        async def worker() -> None:
            while time.monotonic() < until:
                payment_id = next(ids)
                parts = signed(str(payment_id))
                started = time.perf_counter()
                response = await http.post(f"{url}/webhooks/mercadopago", **parts)  # type: ignore[arg-type]
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def summary(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


# -- the flood (its own process) -------------------------------------------------------

class Deadline:
    """When the flood stops: after its seconds, or at once on SIGTERM."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.now)

    def now(self) -> None:
        self.at = 0.0

    def passed(self) -> bool:
        return time.monotonic() >= self.at


async def flood(url: str, *, seconds: float, deep_json: bool, senders: int, slow: int,
                garbage: int) -> Counter[str]:
    answers: Counter[str] = Counter()
    stop = Deadline(seconds)
    transport = httpx.AsyncHTTPTransport(local_address=ATTACKER, retries=0)
    async with httpx.AsyncClient(timeout=10, transport=transport) as http:
        bodies: list[dict[str, object]] = [
            signed("1000000999", secret="not-the-secret"),
            {"params": {"topic": "payment", "id": "0123"}},
            {**signed("1000000998"), "content": "x" * 100_000},
        ]
        if deep_json:
            bodies.append({**signed("1000000997", secret="not-the-secret"),
                           "content": "[" * 1000 + "]" * 1000})

        async def sender(parts: dict[str, object]) -> None:
            while not stop.passed():
                try:
                    response = await http.post(f"{url}/webhooks/mercadopago", **parts)  # type: ignore[arg-type]
                    answers[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    answers[type(exc).__name__] += 1

        kinds = ("garbage",) * garbage + ("slow-header",) * slow + ("slow-body",) * slow
        await asyncio.gather(
            *(sender(bodies[i % len(bodies)]) for i in range(senders)),
            *(raw_loop(url, kind, stop, answers) for kind in kinds),
        )
    return answers


async def raw_loop(url: str, kind: str, stop: Deadline, answers: Counter[str]) -> None:
    parts = urlsplit(url)
    head = (b"POST /webhooks/mercadopago?data.id=1&type=payment HTTP/1.1\r\nhost: x\r\n"
            b"content-length: 1000\r\n\r\n")
    while not stop.passed():
        try:
            reader, writer = await asyncio.open_connection(
                parts.hostname, parts.port, local_addr=(ATTACKER, 0)
            )
        except OSError:
            answers[f"{kind}: connect failed"] += 1
            await asyncio.sleep(0.1)
            continue
        try:
            if kind == "garbage":
                writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")
                await reader.read()
                answers[f"{kind}: closed by server"] += 1
            else:
                answers[await drip(kind, head, writer, stop)] += 1
        except (ConnectionError, OSError):
            answers[f"{kind}: closed by server"] += 1
        finally:
            writer.close()


async def drip(kind: str, head: bytes, writer: asyncio.StreamWriter, stop: Deadline) -> str:
    """Send the headers (or the body) a byte every 0.5 s; say who ended it."""
    if kind == "slow-body":
        writer.write(head)
    for byte in head if kind == "slow-header" else b"{" * 1000:
        if stop.passed():
            return f"{kind}: still open at the end"
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.5)
    return f"{kind}: sent in full"


# -- the run ---------------------------------------------------------------------------

async def measure(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = embedded_settings(Path(data_dir))
        async with run_embedded(settings, roles=()) as stack:
            url = stack.payments_url
            await good_latencies(url, seconds=1, concurrency=args.concurrency, first_id=1)
            alone = await good_latencies(url, seconds=args.seconds,
                                         concurrency=args.concurrency, first_id=10**9)
            flooder = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--flood", url,
                "--seconds", str(args.seconds + args.ramp_seconds + 30),
                "--senders", str(args.senders), "--slow", str(args.slow),
                "--garbage", str(args.garbage), *(["--deep-json"] if args.deep_json else []),
                stdout=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(args.ramp_seconds)  # let the slow connections pile up
            try:
                flooded = await good_latencies(url, seconds=args.seconds,
                                               concurrency=args.concurrency,
                                               first_id=2 * 10**9)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    flooder.terminate()
                out, _ = await flooder.communicate()
            rejected = dict(stack.rejections.counts)
    (p50_a, p99_a), (p50_f, p99_f) = summary(alone), summary(flooded)
    ratio = p99_f / p99_a
    print(f"good webhooks: {args.seconds:g} s per phase ({len(alone)} alone, {len(flooded)}"
          f" during the flood), {args.concurrency} at a time")
    print(f"  alone:        p50 {p50_a:7.2f} ms   p99 {p99_a:7.2f} ms")
    print(f"  during flood: p50 {p50_f:7.2f} ms   p99 {p99_f:7.2f} ms")
    print(f"  p99 ratio: {ratio:.2f} (limit {args.max_ratio})")
    print(f"flood answers seen by the attacker: {out.decode().strip() or 'killed first'}")
    print(f"rejections counted by the server: {rejected}")
    return 0 if ratio <= args.max_ratio else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="how long each phase sends good webhooks")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--ramp-seconds", type=float, default=2.0)
    parser.add_argument("--max-ratio", type=float, default=2.0)
    parser.add_argument("--senders", type=int, default=12,
                        help="connections sending bad webhooks back to back")
    parser.add_argument("--slow", type=int, default=300,
                        help="slow-header connections, and as many slow-body ones")
    parser.add_argument("--garbage", type=int, default=2,
                        help="connections sending bytes that are not HTTP, back to back")
    parser.add_argument("--deep-json", action="store_true",
                        help="also send 1,000-deep JSON bodies (needs the intake's depth limit)")
    parser.add_argument("--flood", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        answers = asyncio.run(flood(
            args.flood, seconds=args.seconds, deep_json=args.deep_json, senders=args.senders,
            slow=args.slow, garbage=args.garbage,
        ))
        print(json.dumps(dict(answers)))
        return 0
    return asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())
