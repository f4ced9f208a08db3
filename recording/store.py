"""The recording store: where recordings are kept, behind one small interface.

:class:`RecordingStore` is what the recorder, the redaction renderer, retention and (later) the gateway's
replay use; :class:`LocalStore` (files under ``{data_dir}/recordings``) is the implementation. Keys are
``/``-separated (callscribe/recording/keys.py). The local store writes the original recording in place while
the call runs (``create``), so a crash leaves the audio written so far exactly where the manifest says it is.

Every file is 0600 and every folder 0700: recordings are the most sensitive data callscribe keeps. Errors are
:class:`~callscribe.errors.RecordingStoreError` (I/O) and :class:`~callscribe.errors.RecordingNotFound`.

:class:`~callscribe.recording.s3.S3Store` implements the same interface on an S3-compatible server
(``recording_store``): ``create`` spools to a local file uploaded when the call ends (S3 objects cannot be
appended to), ``read_range`` is a ranged GET. :func:`open_store` picks one from the config.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from callscribe.errors import RecordingNotFound, RecordingStoreError

from .keys import prefix_day


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    modified_s: float
    """Epoch seconds of the last write."""


@runtime_checkable
class RecordingStore(Protocol):
    def create(self, key: str) -> BinaryIO:
        """A new object, written progressively (the live recording); fails if it exists."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write a whole object at once, replacing any old one atomically (manifests)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Read an object from its start (seekable)."""
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from byte ``start`` (HTTP range requests)."""
        ...

    def stat(self, key: str) -> StoredObject: ...

    def delete_object(self, key: str) -> None:
        """Delete one object; missing is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object of one call; returns how many. Missing is not an error."""
        ...

    def list_older_than(self, cutoff_s: float) -> Iterator[str]:
        """Call prefixes whose newest object was written before epoch second ``cutoff_s`` (retention)."""
        ...

    def recent_prefixes(self, days: int) -> Iterator[str]:
        """Call prefixes of calls started in the last ``days`` UTC days, oldest day first (tools, tests)."""
        ...

    def resume_uploads(self) -> list[str]:
        """Finish what a crash left half-stored (an object store's spooled live recordings); returns keys."""
        ...


class LocalStore:
    """Recordings as files under ``root`` (created 0700)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
        except OSError as exc:
            raise RecordingStoreError(f"recording store {self.root} cannot be created: {exc.strerror or exc} "
                                      "(check recording_dir / data_dir)") from exc

    # --- keys -> paths ---------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file of ``key``; a key that would leave the root is refused (ValueError)."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
            raise ValueError(f"not a recording key: {key!r}")
        return self.root.joinpath(*parts)

    def _mkdirs(self, path: Path) -> None:
        missing = []
        p = path
        while not p.exists() and p != self.root:
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir(mode=0o700)
            except FileExistsError:
                pass
            os.chmod(d, 0o700)

    # --- objects -------------------------------------------------------------------------------------
    def create(self, key: str) -> BinaryIO:
        path = self.path(key)
        try:
            self._mkdirs(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise RecordingStoreError(f"cannot create recording {key}: {exc.strerror or exc}") from exc
        return os.fdopen(fd, "wb", buffering=0)  # unbuffered: every page the muxer writes reaches the OS at once

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        tmp = None
        try:
            self._mkdirs(path.parent)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)  # mkstemp: 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            raise RecordingStoreError(f"cannot write {key}: {exc.strerror or exc}") from exc
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise RecordingNotFound(f"no recording object {key}") from exc
        except OSError as exc:
            raise RecordingStoreError(f"cannot read {key}: {exc.strerror or exc}") from exc

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("range start and length must be >= 0")
        with self.open(key) as f:
            f.seek(start)
            return f.read(length)

    def stat(self, key: str) -> StoredObject:
        try:
            st = self.path(key).stat()
        except FileNotFoundError as exc:
            raise RecordingNotFound(f"no recording object {key}") from exc
        except OSError as exc:
            raise RecordingStoreError(f"cannot stat {key}: {exc.strerror or exc}") from exc
        return StoredObject(key, st.st_size, st.st_mtime)

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except ValueError:
            return False

    def delete_object(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RecordingStoreError(f"cannot delete {key}: {exc.strerror or exc}") from exc
        self._remove_empty_parents(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        path = self.path(prefix)
        if not path.exists():
            return 0
        n = sum(1 for p in path.rglob("*") if p.is_file())
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise RecordingStoreError(f"cannot delete {prefix}: {exc.strerror or exc}") from exc
        self._remove_empty_parents(path.parent)
        return n

    def _remove_empty_parents(self, parent: Path) -> None:
        """Empty call / day / month / year folders go too."""
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    return
                raise RecordingStoreError(f"cannot delete {parent}: {exc.strerror or exc}") from exc
            parent = parent.parent

    # --- listing -------------------------------------------------------------------------------------
    def _call_dirs(self, newest_day: _dt.date | None = None, oldest_day: _dt.date | None = None) -> Iterator[str]:
        for year in sorted(self._subdirs(self.root)):
            for month in sorted(self._subdirs(self.root / year)):
                for day in sorted(self._subdirs(self.root / year / month)):
                    date = prefix_day(f"{year}/{month}/{day}")
                    if date is None:
                        continue
                    if (newest_day and date > newest_day) or (oldest_day and date < oldest_day):
                        continue
                    for call in sorted(self._subdirs(self.root / year / month / day)):
                        yield f"{year}/{month}/{day}/{call}"

    @staticmethod
    def _subdirs(path: Path) -> list[str]:
        try:
            return [e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    def list_older_than(self, cutoff_s: float) -> Iterator[str]:
        # a call started on day D wrote nothing before D 00:00 UTC: later days cannot hold an old enough call
        newest = _dt.datetime.fromtimestamp(max(0.0, cutoff_s), _dt.timezone.utc).date()
        for prefix in self._call_dirs(newest_day=newest):
            try:
                mtimes = [e.stat().st_mtime for e in os.scandir(self.path(prefix)) if e.is_file()]
            except FileNotFoundError:
                continue
            if max(mtimes, default=0.0) < cutoff_s:
                yield prefix

    def resume_uploads(self) -> list[str]:
        return []  # the live recording is written in place: nothing is ever left half-stored

    def recent_prefixes(self, days: int) -> Iterator[str]:
        oldest = _dt.datetime.now(_dt.timezone.utc).date() - _dt.timedelta(days=days)
        return self._call_dirs(oldest_day=oldest)


def open_store(cfg) -> RecordingStore:
    """The store ``cfg`` names: ``recording_store`` (S3-compatible), else files under ``recording_dir`` or
    ``{data_dir}/recordings``. Creates the local folders (blocking: call it off the event loop)."""
    if cfg.recording_store:
        from .s3 import S3Location, S3Store

        return S3Store(S3Location.parse(cfg.recording_store), cfg.data_path / "recordings-spool")
    return LocalStore(cfg.recording_dir or cfg.data_path / "recordings")


__all__ = ["RecordingStore", "LocalStore", "StoredObject", "open_store"]
