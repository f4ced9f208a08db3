"""An S3-compatible recording store: AWS S3, SeaweedFS, MinIO, Ceph RGW, ... (``recording_store``).

Path-style requests (``{endpoint}/{bucket}/{key}``, what every S3-compatible server takes) signed with AWS
Signature Version 4 (:func:`sigv4_headers`, pure, checked against AWS's published example), over httpx (already
a dependency), so no SDK is needed.

S3 objects cannot be appended to, so a live recording is written to a local spool file
(``{data_dir}/recordings-spool/<key>``, 0600) exactly as the local store writes it, and uploaded when the call
ends (one PUT: a recording is about 150 KB a minute). A crash leaves the spool file; :meth:`S3Store.resume_uploads`
uploads it at the next start, before the recorder closes interrupted recordings, so crash safety is the same
as with the local store. Manifests are PUT directly.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import hmac
import io
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx

from callscribe.errors import RecordingNotFound, RecordingStoreError

from .keys import prefix_day
from .store import LocalStore, StoredObject

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where the store lives: ``s3+http(s)://ACCESS_KEY:SECRET_KEY@host[:port]/bucket[/prefix][?region=...]``."""

    endpoint: str
    bucket: str
    prefix: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @classmethod
    def parse(cls, url: str) -> "S3Location":
        u = urlsplit(url)
        if u.scheme not in ("s3+http", "s3+https"):
            raise ValueError("must start with s3+http:// or s3+https://")
        if not u.hostname:
            raise ValueError("needs a host")
        if not (u.username and u.password):
            raise ValueError("needs ACCESS_KEY:SECRET_KEY@ before the host")
        parts = [p for p in u.path.split("/") if p]
        if not parts:
            raise ValueError("needs a bucket: s3+http://KEY:SECRET@host:port/bucket")
        query = dict(parse_qsl(u.query))
        port = f":{u.port}" if u.port else ""
        prefix = "/".join(parts[1:])
        return cls(f"{u.scheme[3:]}://{u.hostname}{port}", parts[0], prefix + "/" if prefix else "",
                   unquote(u.username), unquote(u.password), query.get("region", "us-east-1"))


def _uri(path: str) -> str:
    """SigV4 canonical URI: every byte but unreserved characters percent-encoded, ``/`` kept."""
    return quote(path, safe="/-_.~")


def sigv4_headers(method: str, host: str, path: str, query: dict[str, str], headers: dict[str, str], payload_sha256: str,
                  access_key: str, secret_key: str, region: str, now: _dt.datetime, service: str = "s3") -> dict[str, str]:
    """The headers to add to a request (``x-amz-date``, ``x-amz-content-sha256``, ``Authorization``) for AWS
    Signature Version 4. ``path`` is the URI path before encoding; ``headers`` are the other headers to sign."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed.update({"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date})
    names = sorted(signed)
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    canonical = "\n".join([method, _uri(path), canonical_query, "".join(f"{n}:{signed[n]}\n" for n in names),
                           ";".join(names), payload_sha256])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_sha256,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, "
                         f"Signature={signature}",
    }


class _SpoolFile(io.FileIO):
    """The live recording's local file; closing it uploads it and removes it (kept when the upload fails)."""

    def __init__(self, path: Path, upload) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        super().__init__(fd, "wb", closefd=True)
        self._path = path
        self._upload = upload

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._upload(self._path)


class S3Store:
    """The recording store on an S3-compatible server. Thread-safe (one HTTP client per thread)."""

    def __init__(self, location: S3Location, spool_dir: str | os.PathLike[str], timeout_s: float = 30.0) -> None:
        self.location = location
        self.spool = LocalStore(spool_dir)
        self.timeout_s = timeout_s
        self._local = threading.local()
        u = urlsplit(location.endpoint)
        self._host = u.netloc

    # --- HTTP ----------------------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=self.timeout_s)
        return client

    def _request(self, method: str, key: str | None, query: dict[str, str] | None = None, content: bytes | BinaryIO = b"",
                 headers: dict[str, str] | None = None, payload_sha256: str | None = None) -> httpx.Response:
        loc = self.location
        path = f"/{loc.bucket}" + (f"/{loc.prefix}{key}" if key is not None else "")
        query = query or {}
        if payload_sha256 is None:
            payload_sha256 = hashlib.sha256(content).hexdigest() if isinstance(content, bytes) else "UNSIGNED-PAYLOAD"
        extra = dict(headers or {})
        signed = sigv4_headers(method, self._host, path, query, extra, payload_sha256, loc.access_key, loc.secret_key,
                               loc.region, _dt.datetime.now(_dt.timezone.utc))
        url = loc.endpoint + _uri(path)
        try:
            return self._client().request(method, url, params=query or None, content=content or None,
                                          headers={**extra, **signed})
        except httpx.HTTPError as exc:
            raise RecordingStoreError(f"recording store {loc.endpoint}/{loc.bucket} unreachable ({method} {key}): {exc}") from exc

    def _check(self, response: httpx.Response, what: str, key: str) -> httpx.Response:
        if response.status_code == 404:
            raise RecordingNotFound(f"no recording object {key}")
        if response.status_code >= 300:
            raise RecordingStoreError(f"recording store refused {what} {key}: HTTP {response.status_code} "
                                      f"{response.text[:200]}")
        return response

    def create_bucket(self) -> None:
        """Create the bucket (tests, first set-up); an existing bucket of ours is fine."""
        r = self._request("PUT", None)
        if r.status_code >= 300 and "BucketAlreadyOwnedByYou" not in r.text:
            raise RecordingStoreError(f"cannot create bucket {self.location.bucket}: HTTP {r.status_code} {r.text[:200]}")

    # --- objects -------------------------------------------------------------------------------------
    def create(self, key: str) -> BinaryIO:
        path = self.spool.path(key)
        try:
            self.spool._mkdirs(path.parent)
            return _SpoolFile(path, lambda p, key=key: self._upload_spool(key, p))
        except OSError as exc:
            raise RecordingStoreError(f"cannot create recording {key} (spool {path}): {exc.strerror or exc}") from exc

    def _upload_spool(self, key: str, path: Path) -> None:
        size = path.stat().st_size
        with open(path, "rb") as f:
            self._check(self._request("PUT", key, content=f, headers={"content-length": str(size)},
                                      payload_sha256="UNSIGNED-PAYLOAD"), "PUT", key)
        self.spool.delete_object(key)

    def resume_uploads(self) -> list[str]:
        """Upload the spool files a crash (or a failed upload) left; returns their keys."""
        done = []
        root = self.spool.root
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")):
            key = path.relative_to(root).as_posix()
            self._upload_spool(key, path)
            done.append(key)
        return done

    def put(self, key: str, data: bytes) -> None:
        self._check(self._request("PUT", key, content=data), "PUT", key)

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self._check(self._request("GET", key), "GET", key).content)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("range start and length must be >= 0")
        if length == 0:
            return b""
        r = self._request("GET", key, headers={"range": f"bytes={start}-{start + length - 1}"})
        if r.status_code == 416:  # starts past the end
            return b""
        return self._check(r, "GET", key).content

    def stat(self, key: str) -> StoredObject:
        r = self._check(self._request("HEAD", key), "HEAD", key)
        modified = email.utils.parsedate_to_datetime(r.headers["last-modified"]).timestamp()
        return StoredObject(key, int(r.headers.get("content-length", 0)), modified)

    def delete_object(self, key: str) -> None:
        r = self._request("DELETE", key)
        if r.status_code >= 300 and r.status_code != 404:
            self._check(r, "DELETE", key)

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k, _, _ in self._list(prefix.rstrip("/") + "/")]
        for k in keys:
            self.delete_object(k)
        return len(keys)

    # --- listing ---------------------------------------------------------------------------------------
    def _list(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """(key, size, modified epoch s) of every object under ``prefix`` (ListObjectsV2, paged)."""
        token = ""
        base = self.location.prefix
        while True:
            query = {"list-type": "2", "prefix": base + prefix}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(self._check(self._request("GET", None, query), "LIST", prefix).content)
            for item in root.iter(f"{_NS}Contents"):
                key = item.findtext(f"{_NS}Key", "")[len(base):]
                modified = _dt.datetime.fromisoformat(item.findtext(f"{_NS}LastModified", "").replace("Z", "+00:00"))
                yield key, int(item.findtext(f"{_NS}Size", "0")), modified.timestamp()
            if root.findtext(f"{_NS}IsTruncated", "false") != "true":
                return
            token = root.findtext(f"{_NS}NextContinuationToken", "")

    def _calls(self, prefix: str) -> dict[str, float]:
        """Call prefix -> newest object time, for the calls under ``prefix``."""
        calls: dict[str, float] = {}
        for key, _, modified in self._list(prefix):
            parts = key.split("/")
            if len(parts) >= 5 and prefix_day("/".join(parts[:3])) is not None:
                call = "/".join(parts[:4])
                calls[call] = max(calls.get(call, 0.0), modified)
        return calls

    def list_older_than(self, cutoff_s: float) -> Iterator[str]:
        for call, newest in sorted(self._calls("").items()):
            if newest < cutoff_s:
                yield call

    def recent_prefixes(self, days: int) -> Iterator[str]:
        today = _dt.datetime.now(_dt.timezone.utc).date()
        for back in range(days, -1, -1):
            day = today - _dt.timedelta(days=back)
            yield from sorted(self._calls(f"{day:%Y/%m/%d}/"))


__all__ = ["S3Store", "S3Location", "sigv4_headers"]
