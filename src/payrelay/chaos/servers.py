"""Private server instances for a chaos run: a PostgreSQL cluster and a RabbitMQ node of
the run's own, on free loopback ports, in temporary directories removed afterwards.

Why: the faults that take a server down (the broker app stopped, every connection closed,
the cluster stopped, a database refusing connections) must never disturb anything else on
the machine, so they only ever hit servers the run started itself.

Both run as their own OS user when the harness runs as root: `initdb` refuses root, and
RabbitMQ's files belong to its user. The cluster trusts every local connection (it listens
on 127.0.0.1 only and lives for one run). The RabbitMQ node gets its own Erlang port mapper
(epmd) on a free port, its own cookie, config and plugins file (none enabled), so nothing
of a system-wide RabbitMQ is read, written or joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from payrelay.chaos.processes import OwnedProcess, free_port

__all__ = ["PrivatePostgres", "PrivateRabbitMQ", "ServerCommandFailed", "missing_programs",
           "private_postgres", "private_rabbitmq"]

POSTGRES_USER = "postgres"
RABBITMQ_USER = "rabbitmq"
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
PROGRAMS = ("initdb", "pg_ctl", "rabbitmq-server", "rabbitmqctl", "epmd")
# fsync off: a run crashes processes, never the machine, and a killed PostgreSQL still
# finds every committed WAL record in the page cache. synchronous_commit stays on, so an
# acknowledged commit is never lost to a crash, which payrelay could not defend against.
POSTGRES_SETTINGS = ("listen_addresses=127.0.0.1", "max_connections=400", "fsync=off",
                     "full_page_writes=off")


class ServerCommandFailed(RuntimeError):
    """A server program (initdb, pg_ctl, rabbitmqctl...) failed; carries its output."""


def _program(name: str) -> str | None:
    """RabbitMQ's real scripts first (Debian's /usr/sbin wrappers log into the system
    node's files), then PATH, then PostgreSQL's versioned directories, newest first."""
    candidates = [str(RABBITMQ_BIN / name), shutil.which(name) or "",
                  *sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def missing_programs() -> list[str]:
    """The server programs this machine lacks (empty: private servers can start)."""
    return [name for name in PROGRAMS if _program(name) is None]


def _require(name: str) -> str:
    if (path := _program(name)) is None:
        raise ServerCommandFailed(f"{name} not found: install the server, or run against "
                                  "given servers (--postgres-url / --rabbitmq-url)")
    return path


def _as_user(user: str) -> tuple[str, ...]:
    """The prefix that runs a command as `user` when the harness is root (else nothing);
    `-p` keeps the environment, HOME included, which the RabbitMQ cookie lives under."""
    return ("runuser", "-p", "-u", user, "--") if os.geteuid() == 0 else ()


def _owned_dir(prefix: str, user: str) -> Path:
    """A new temporary directory the server's user owns (root's own are closed to it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


async def run_command(args: tuple[str, ...], *, env: dict[str, str] | None = None,
                      timeout: float = 60.0) -> str:
    """Run to completion: its stdout, or ServerCommandFailed with what it said."""
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)  # a Ctrl+C reaches the harness, which then cleans up
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except BaseException:  # timed out or cancelled: leave no process behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    if process.returncode != 0:
        said = (err or out).decode(errors="replace").strip()[-1500:]
        raise ServerCommandFailed(f"{' '.join(args[-4:])} exited {process.returncode}: {said}")
    return out.decode(errors="replace")


@dataclass
class PrivatePostgres:
    """A cluster made with `initdb`, run by `pg_ctl`; `stop` and `start` for outages."""

    root: Path
    port: int
    started_in: float = 0.0
    """Seconds `initdb` and the first start took together."""

    @property
    def url(self) -> str:
        """The maintenance database, for creating databases and terminating backends."""
        return f"postgresql+asyncpg://{POSTGRES_USER}@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> tuple[str, ...]:
        return (*_as_user(POSTGRES_USER), _require("pg_ctl"), "-D", str(self.root / "data"),
                *args)

    async def initdb(self) -> None:
        await run_command((*_as_user(POSTGRES_USER), _require("initdb"), "-D",
                           str(self.root / "data"), "-U", POSTGRES_USER, "--auth=trust",
                           "-E", "UTF8", "--no-sync", "--no-instructions"), timeout=120)

    async def start(self) -> None:
        options = " ".join([f"-p {self.port}", f"-c unix_socket_directories={self.root}",
                            *(f"-c {s}" for s in POSTGRES_SETTINGS)])
        await run_command(self._pg_ctl("-l", str(self.root / "postgres.log"), "-w", "-t",
                                       "60", "-o", options, "start"), timeout=90)

    async def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash (recovery on the next start); `fast` a clean stop."""
        await run_command(self._pg_ctl("-m", mode, "-w", "-t", "60", "stop"), timeout=90)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(host="127.0.0.1", port=self.port, user=POSTGRES_USER,
                                     database="postgres")

    async def create_databases(self, names: list[str]) -> list[str]:
        """New databases in the cluster, as URLs (gone with the cluster: no drop needed)."""
        conn = await self.connect()
        try:
            for name in names:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return [self.url.rsplit("/", 1)[0] + f"/{name}" for name in names]

    def kill_leftover(self) -> None:
        """SIGKILL the postmaster if `pg_ctl stop` could not (its children follow it)."""
        pid_file = self.root / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


@contextlib.asynccontextmanager
async def private_postgres(log_dir: Path) -> AsyncIterator[PrivatePostgres]:
    """A running private cluster; stopped and deleted afterwards (its log kept in
    `log_dir`), whatever happened, cancellation included."""
    cluster = PrivatePostgres(_owned_dir("payrelay-chaos-pg-", POSTGRES_USER), free_port())
    began = time.monotonic()
    try:
        await cluster.initdb()
        await cluster.start()
        cluster.started_in = time.monotonic() - began
        yield cluster
    finally:
        try:
            await cluster.stop("immediate")  # its data goes anyway: no checkpoint needed
        except (ServerCommandFailed, TimeoutError):
            cluster.kill_leftover()  # already stopped (an outage cut short), or stuck
        finally:
            with contextlib.suppress(OSError):
                shutil.copy(cluster.root / "postgres.log", log_dir / "private-postgres.log")
            shutil.rmtree(cluster.root, ignore_errors=True)


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
            (*_as_user(RABBITMQ_USER), _require("rabbitmqctl"), "-q", "-n", self.node, *args),
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
    root, port = _owned_dir("payrelay-chaos-mq-", RABBITMQ_USER), free_port()
    name = f"chaos-{uuid.uuid4().hex[:8]}@localhost"
    env = {**os.environ, **_rabbitmq_files(root, port), "RABBITMQ_NODENAME": name}
    node = PrivateRabbitMQ(root, name, port, env)
    # Its own epmd, in the foreground: one a node starts itself daemonizes and outlives it.
    epmd = OwnedProcess("epmd", (_require("epmd"), "-port", env["ERL_EPMD_PORT"], "-address",
                                 "127.0.0.1"), log_dir / "private-epmd.log", env)
    server = OwnedProcess("rabbitmq", (*_as_user(RABBITMQ_USER), _require("rabbitmq-server")),
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
    """`rabbitmqctl stop`, then SIGKILL to the whole process group of what is left (the
    Erlang VM runs below runuser and the script, which a kill of the leader would miss)."""
    group = server.pid
    with contextlib.suppress(ServerCommandFailed, TimeoutError):
        await node.ctl("stop", timeout=60)
    await server.finish(timeout=20)
    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
