"""Private server instances for a chaos run: a PostgreSQL cluster (here) and a RabbitMQ
node (`rabbitmq_node.py`) of the run's own, on free loopback ports, in temporary
directories removed afterwards; and the running of their programs.

Why: the faults that take a server down (the broker app stopped, every connection closed,
the cluster stopped, a database refusing connections) must never disturb anything else on
the machine, so they only ever hit servers the run started itself.

Both run as their own OS user when the harness runs as root: `initdb` refuses root, and
RabbitMQ's files belong to its user. The cluster trusts every local connection: it
listens on 127.0.0.1 only and lives for one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from payrelay.chaos.processes import free_port

__all__ = ["PrivatePostgres", "ServerCommandFailed", "as_user", "missing_programs",
           "owned_dir", "private_postgres", "require_program", "run_command"]

POSTGRES_USER = "postgres"
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


def require_program(name: str) -> str:
    if (path := _program(name)) is None:
        raise ServerCommandFailed(f"{name} not found: install the server, or run against "
                                  "given servers (--postgres-url / --rabbitmq-url)")
    return path


def as_user(user: str) -> tuple[str, ...]:
    """The prefix that runs a command as `user` when the harness is root (else nothing);
    `-p` keeps the environment, HOME included, which the RabbitMQ cookie lives under."""
    return ("runuser", "-p", "-u", user, "--") if os.geteuid() == 0 else ()


def owned_dir(prefix: str, user: str) -> Path:
    """A new temporary directory the server's user owns (root's own are closed to it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


async def run_command(args: tuple[str, ...], *, env: dict[str, str] | None = None,
                      timeout: float = 60.0) -> str:
    """Run to completion: its stdout, or ServerCommandFailed with what it said.

    Output goes to files, not pipes: under uvloop a daemon the command leaves running
    (`pg_ctl start`'s postmaster) keeps a pipe open, and reading to its end never ends.
    """
    with tempfile.TemporaryFile() as output:
        process = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True)  # a Ctrl+C reaches the harness, which then cleans up
        try:
            async with asyncio.timeout(timeout):
                await process.wait()
        except BaseException:  # timed out or cancelled: leave no process behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        output.seek(0)
        said = output.read().decode(errors="replace")
    if process.returncode != 0:
        raise ServerCommandFailed(
            f"{' '.join(args[-4:])} exited {process.returncode}: {said.strip()[-1500:]}")
    return said


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
        return (*as_user(POSTGRES_USER), require_program("pg_ctl"), "-D", str(self.root / "data"),
                *args)

    async def initdb(self) -> None:
        await run_command((*as_user(POSTGRES_USER), require_program("initdb"), "-D",
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
    cluster = PrivatePostgres(owned_dir("payrelay-chaos-pg-", POSTGRES_USER), free_port())
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
