"""The embedded payments API alone (SQLite, no workers) in a process of its own, for ingest.

`payrelay serve` on the local transport refuses anything short of every role, and with
every role the processor would spend the CPU fetching payments the gateway never had.

    python -m benchmarks.ingest_server DATA_DIR PORT_FILE      (settings from PAYRELAY_*)
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from payrelay.entrypoints.embedded import embedded_settings, run_embedded


async def serve(data_dir: Path, port_file: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with run_embedded(embedded_settings(data_dir), roles=()) as stack:
        port_file.write_text(stack.payments_url.rsplit(":", 1)[1])
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), Path(sys.argv[2])))
