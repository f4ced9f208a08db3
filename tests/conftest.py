"""Shared fixtures. Real components: the Whisper model from the installed weight packages, real audio
from tests/data/audio (copied from shared/audio, credited in tests/data/README.md)."""

from __future__ import annotations

import csv
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from callscribe.stream.server import free_port

AUDIO_DIR = Path(__file__).parent / "data" / "audio"

# A bare Config() puts data in the per-user data home (XDG); tests must never write into the real one.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="callscribe-tests-xdg-")


def load_manifest() -> list[dict[str, str]]:
    with open(AUDIO_DIR / "manifest.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def load_clip(name: str) -> np.ndarray:
    import soundfile as sf

    audio, rate = sf.read(AUDIO_DIR / name, dtype="float32")
    assert rate == 16000
    return audio


@pytest.fixture(scope="session")
def asr_config(tmp_path_factory):
    from callscribe.config import Config

    # the joined whisper-base model is cached under data_dir; share one across the session. Ingest
    # authentication (on by default) is off for the tests of other features: tests/test_ingest_auth.py and
    # tests/test_faults.py run with it on.
    return Config(data_dir=str(tmp_path_factory.mktemp("var")), partials=False, sip=False, analytics=False, web=False,
                  ingest_auth=False)


@pytest.fixture(scope="session")
def engine(asr_config):
    """whisper-base, CPU int8, shared by every test that decodes (loading it once)."""
    from callscribe.asr.engine import WhisperEngine

    eng = WhisperEngine(asr_config)
    eng.warmup()
    return eng


@pytest.fixture
def redis_server(tmp_path):
    """A real Redis-protocol server (the bundled valkey-server) on a free port, AOF on."""
    from callscribe.stream import EmbeddedRedis

    server = EmbeddedRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def _postgres_bindir() -> Path | None:
    """The PostgreSQL server binaries: ``pg_config --bindir`` (when it belongs to a server install), else the
    newest Debian/Ubuntu ``/usr/lib/postgresql/*/bin``."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "postgres", "pg_ctl", "pg_isready")):
            return bindir
    return None


def _no_postgres(reason: str) -> None:
    """Skip, or fail where CI sets CALLSCRIBE_REQUIRE_POSTGRES (there a missing server must not pass quietly)."""
    if os.environ.get("CALLSCRIBE_REQUIRE_POSTGRES"):
        pytest.fail(f"{reason} (CALLSCRIBE_REQUIRE_POSTGRES is set)", pytrace=False)
    pytest.skip(f"{reason}; install postgresql to run the PostgreSQL store tests")


@pytest.fixture(scope="session")
def postgres_dsn():
    """A real, throwaway PostgreSQL server for the session: initdb into a temp dir, ``postgres`` on a free
    127.0.0.1 port (socket in the same dir), trust auth, fsync off. initdb and postgres refuse to run as
    root, so as root they run as the ``postgres`` system user (the Debian package creates it), which owns
    the dir. Yields the DSN of the ``postgres`` database; tests isolate themselves with a schema each."""
    bindir = _postgres_bindir()
    if bindir is None:
        _no_postgres("PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)")
    base = Path(tempfile.mkdtemp(prefix="callscribe-pg-"))  # not pytest's tmp_path: its parents are root-only
    data, log = base / "data", base / "postgres.log"
    server = None
    try:
        as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                _no_postgres("running as root and there is no 'postgres' user to run PostgreSQL as")
            os.chown(base, owner.pw_uid, owner.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        init = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                               "-E", "UTF8", "--locale=C", "--no-sync"], capture_output=True, text=True, check=False)
        if init.returncode:
            raise RuntimeError(f"initdb failed:\n{init.stdout}{init.stderr}")
        port = free_port()
        with open(log, "wb") as out:
            server = subprocess.Popen([*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(base),
                                       "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                                       "-c", "full_page_writes=off"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        while subprocess.run(ready, check=False).returncode:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if server is not None:
            for mode in ("fast", "immediate"):  # immediate only if a fast shutdown hangs
                subprocess.run([*as_user, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", mode, "-w"],
                               capture_output=True, check=False)
                try:
                    server.wait(10)
                    break
                except subprocess.TimeoutExpired:
                    continue
        shutil.rmtree(base, ignore_errors=True)
