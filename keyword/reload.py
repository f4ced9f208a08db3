"""Files reloaded when they change: the one mechanism behind rule packs and scenario packs.

``get()`` is cheap (it looks at the files' mtime and size at most every ``check_every_s``) and always returns
a usable value: a reload that fails validation logs the error and keeps serving the previous one, so a typo in
an edited YAML file never stops a running worker. ``generation`` is bumped on every successful reload so
compiled forms can cache against it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Reloading(Generic[T]):
    """``load()`` once now and again whenever a file of ``files()`` changes; ``errors`` are the exceptions a
    bad file raises (logged, previous value kept); ``what`` names the value in logs, ``describe`` sums it up."""

    def __init__(self, files: Callable[[], list[Path]], load: Callable[[], T], errors: tuple[type[BaseException], ...],
                 what: str, describe: Callable[[T], str] = lambda value: "", check_every_s: float = 2.0) -> None:
        self._files = files
        self._load = load
        self._errors = errors
        self._what = what
        self._describe = describe
        self._check_every_s = check_every_s
        self._stamp = self._fingerprint()
        self._value = load()
        self._checked = time.monotonic()
        self.generation = 0
        """Bumped on every successful reload."""

    def _fingerprint(self) -> tuple[tuple[str, float, int], ...]:
        stamp = []
        for f in self._files():
            try:
                st = f.stat()
                stamp.append((str(f), st.st_mtime, st.st_size))
            except OSError:
                stamp.append((str(f), -1.0, -1))
        return tuple(stamp)

    def get(self) -> T:
        now = time.monotonic()
        if now - self._checked >= self._check_every_s:
            self._checked = now
            self.reload_if_changed()
        return self._value

    def reload_if_changed(self) -> bool:
        """Reload when any file changed; True when the new value is in force."""
        stamp = self._fingerprint()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            value = self._load()
        except self._errors as exc:
            log.error("%s not reloaded, keeping the previous ones: %s", self._what, exc)
            return False
        self._value = value
        self.generation += 1
        log.info("%s reloaded: %s", self._what, self._describe(value))
        return True


__all__ = ["Reloading"]
