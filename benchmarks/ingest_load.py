"""Signed webhooks per second that the payments API takes in, 32 connections at a time (issue 10).

Starts the embedded payments API (SQLite in `--data-dir`, by default under /dev/shm so the
disk is not what is measured; intake only, no workers) in a process of its own, run the way
payrelay's CLI runs its event loop, then sends signed, valid webhooks, each for a new
payment id, from `--connections` keep-alive connections (aiohttp) for `--seconds`. Prints
webhooks/s, p50/p99 and the answers. `--profile FILE` records the server with py-spy
(raw collapsed stacks) during the measured phase.

    .venv/bin/python benchmarks/ingest_load.py [--seconds 10] [--connections 32]
        [--profile /tmp/ingest.txt]

To compare with an older commit, export its src and put it first on PYTHONPATH for the
server: `git archive REV src | tar -x -C /tmp/rev && SERVER_PYTHONPATH=/tmp/rev/src ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

from payrelay.domain.signature import signature_header


async def _serve(data_dir: str) -> None:
    from payrelay.entrypoints.embedded import embedded_settings, run_embedded

    settings = embedded_settings(Path(data_dir))
    async with run_embedded(settings, roles=()) as stack:
        ready = {"url": stack.payments_url, "secret": settings.webhook_secret_list()[0],
                 "pid": os.getpid()}
        print(json.dumps(ready), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _serve_main(data_dir: str) -> None:
    try:  # payrelay's own runner (uvloop where installed), when this commit has one
        from payrelay.entrypoints.event_loop import run
    except ImportError:
        run = asyncio.run
    run(_serve(data_dir))


async def load(url: str, secret: str, *, connections: int, seconds: float,
               first_id: int) -> tuple[list[float], Counter[str]]:
    ids = itertools.count(first_id)
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def sender() -> None:
            while time.perf_counter() < deadline:
                payment_id = str(next(ids))
                request_id = str(uuid.uuid4())
                header = signature_header(secret, data_id=payment_id, request_id=request_id,
                                          ts=int(time.time()))
                body = {"type": "payment", "action": "payment.updated",
                        "data": {"id": payment_id}}
                started = time.perf_counter()
                async with http.post(
                    f"{url}/webhooks/mercadopago", data=json.dumps(body),
                    params={"data.id": payment_id, "type": "payment"},
                    headers={"x-signature": header, "x-request-id": request_id,
                             "content-type": "application/json"},
                ) as response:
                    await response.read()
                    answers[str(response.status)] += 1
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(sender() for _ in range(connections)))
    return latencies, answers


def report(latencies: list[float], answers: Counter[str], seconds: float) -> None:
    cuts = statistics.quantiles(latencies, n=100)
    print(f"webhooks/s {len(latencies) / seconds:.0f}  p50 {cuts[49] * 1e3:.1f} ms  "
          f"p99 {cuts[98] * 1e3:.1f} ms  answers {dict(answers)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve_main(args.serve)
        return
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 (a private mkdtemp)
    with tempfile.TemporaryDirectory(dir=args.data_dir or shm) as data_dir:
        env = dict(os.environ)
        if os.environ.get("SERVER_PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["SERVER_PYTHONPATH"]
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", data_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        try:
            assert server.stdout is not None
            ready = json.loads(server.stdout.readline())
            asyncio.run(load(ready["url"], ready["secret"], connections=args.connections,
                             seconds=1, first_id=10**9))
            spy = None
            if args.profile:
                spy = subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "-r", "200",
                     "-f", "raw", "-o", args.profile, "-d", str(int(args.seconds)),
                     "-p", str(ready["pid"])], stdout=subprocess.DEVNULL,
                )
            latencies, answers = asyncio.run(load(
                ready["url"], ready["secret"], connections=args.connections,
                seconds=args.seconds, first_id=2 * 10**9,
            ))
            report(latencies, answers, args.seconds)
            if spy is not None:
                spy.wait(timeout=60)
        finally:
            assert server.stdin is not None
            server.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=20)


if __name__ == "__main__":
    main()
