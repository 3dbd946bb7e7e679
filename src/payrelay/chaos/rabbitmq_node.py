"""The chaos run's private RabbitMQ node (see `servers.py` for why private).

It gets its own node name, AMQP and distribution ports, its own Erlang port mapper (epmd,
on a free port, started by the harness in the foreground), its own cookie, config, env
and plugins file (none enabled: no management listener), data and log directories; so
nothing of a system-wide RabbitMQ is read, written or joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from payrelay.chaos.processes import OwnedProcess, free_port
from payrelay.chaos.servers import (
    ServerCommandFailed,
    as_user,
    owned_dir,
    require_program,
    run_command,
)

__all__ = ["PrivateRabbitMQ", "private_rabbitmq"]

RABBITMQ_USER = "rabbitmq"


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node of its own name, ports, files and epmd; `ctl` runs rabbitmqctl
    against it (`stop_app`, `start_app`, `close_all_connections` for outages)."""

    root: Path
    node: str
    port: int
    env: dict[str, str]
    started_in: float = 0.0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    async def ctl(self, *args: str, timeout: float = 60.0) -> str:
        return await run_command(
            (*as_user(RABBITMQ_USER), require_program("rabbitmqctl"), "-q", "-n", self.node, *args),
            env=self.env, timeout=timeout)


def _rabbitmq_files(root: Path, port: int) -> dict[str, str]:
    """Its config, plugins list, cookie and directories, all under `root`; the env that
    points the node and rabbitmqctl at them (and at nothing system-wide)."""
    (root / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n")
    (root / "enabled_plugins").write_text("[].\n")  # no management plugin, no port of its own
    (root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's NODENAME
    cookie = root / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16).upper())
    cookie.chmod(0o400)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RABBITMQ_USER)
        for path in root.iterdir():
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return {
        "HOME": str(root),  # the cookie, for the node and rabbitmqctl alike
        "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),  # absent: none
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
        "RABBITMQ_LOG_BASE": str(root / "log"),
        "RABBITMQ_PID_FILE": str(root / "rabbit.pid"),
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "ERL_EPMD_PORT": str(free_port()),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }


@contextlib.asynccontextmanager
async def private_rabbitmq(log_dir: Path) -> AsyncIterator[PrivateRabbitMQ]:
    """A running private node; stopped (its epmd too) and deleted afterwards (its log
    kept in `log_dir`), whatever happened, cancellation included."""
    root, port = owned_dir("payrelay-chaos-mq-", RABBITMQ_USER), free_port()
    name = f"chaos-{uuid.uuid4().hex[:8]}@localhost"
    env = {**os.environ, **_rabbitmq_files(root, port), "RABBITMQ_NODENAME": name}
    node = PrivateRabbitMQ(root, name, port, env)
    # Its own epmd, in the foreground: one a node starts itself daemonizes and outlives it.
    epmd = OwnedProcess("epmd", (require_program("epmd"), "-port", env["ERL_EPMD_PORT"], "-address",
                                 "127.0.0.1"), log_dir / "private-epmd.log", env)
    server = OwnedProcess("rabbitmq", (*as_user(RABBITMQ_USER), require_program("rabbitmq-server")),
                          log_dir / "private-rabbitmq.log", env)
    began = time.monotonic()
    try:
        await epmd.start()
        # Listening before the node looks for it: one that finds no epmd starts its own.
        await _listening(int(env["ERL_EPMD_PORT"]), epmd)
        await server.start()
        await _started(node, server)
        node.started_in = time.monotonic() - began
        yield node
    finally:
        await _stop_rabbitmq(node, server)
        await epmd.stop(timeout=5)
        shutil.rmtree(root, ignore_errors=True)


async def _listening(port: int, proc: OwnedProcess, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while proc.running and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise ServerCommandFailed(f"{proc.name} not listening on {port}: {proc.log_tail()}")


async def _started(node: PrivateRabbitMQ, server: OwnedProcess) -> None:
    """Until the node's app runs (`rabbitmqctl wait`), or fail at once if the server exits."""
    waiting = asyncio.create_task(
        node.ctl("wait", str(node.root / "rabbit.pid"), "--timeout", "120", timeout=150))
    try:
        while not waiting.done():
            if not server.running:
                raise ServerCommandFailed(f"rabbitmq-server exited: {server.log_tail()}")
            await asyncio.wait({waiting}, timeout=0.5)
        await waiting
    finally:
        waiting.cancel()


async def _stop_rabbitmq(node: PrivateRabbitMQ, server: OwnedProcess) -> None:
    """`rabbitmqctl stop`, then SIGKILL to its whole process group: the Erlang VM runs
    below runuser and the script, which a kill of the leader alone would miss."""
    group = server.pid
    with contextlib.suppress(ServerCommandFailed, TimeoutError):
        await node.ctl("stop", timeout=60)
    await server.finish(timeout=20)
    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
