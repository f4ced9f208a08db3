"""SIP messages (RFC 3261 section 7): bytes in, typed requests and responses out, and back to bytes.

Sans-I/O: nothing here touches a socket or the event loop. :func:`parse_message` takes one UDP datagram,
:class:`StreamFramer` cuts a TCP/TLS byte stream into messages (RFC 3261 section 18.3), and
:func:`make_response` builds the response a UAS owes a request (RFC 3261 section 8.2.6).

Contract for bad input: every parser here raises :class:`~callscribe.errors.SipParseError` (never
IndexError, ValueError, UnicodeError, ...), with ``status``/``reason`` set to the response to send when the
request can be answered (400 by default, 505 for another SIP version, 513 for an oversized message). The
message names the offending header or line so that the log line is enough to find the sender's bug.

What we validate at parse time is what the transaction and dialog layers read without a ``try``: the
start-line, Via (the top one), From, To, Call-ID, CSeq (number below 2**31), Max-Forwards (0-255),
Content-Length (0 to the message size limit), and in requests Expires, Session-Expires and Min-SE
(delta-seconds below 2**32). The reason phrase names what failed ("Bad CSeq", "Bad Content-Length", ...),
so the peer's log says it too. Everything else is kept as text and parsed on demand
(:func:`parse_name_addr`, :func:`parse_uri`, :func:`parse_via`). :func:`error_response` answers a request
that did not parse, from its raw header lines, when it carries what a response needs.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Iterable, Iterator
from urllib.parse import unquote

from callscribe.errors import SipParseError

# RFC 3261 section 7.3.3 plus the later compact forms registered with IANA.
COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event", "u": "Allow-Events",
    "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires", "a": "Accept-Contact", "j": "Reject-Contact",
    "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info",
}

_KNOWN_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info",
    "Event", "Expires", "From", "History-Info", "Identity", "Identity-Info", "In-Reply-To", "Max-Forwards",
    "Min-Expires", "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity", "P-Preferred-Identity",
    "Path", "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck",
    "Reason", "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Remote-Party-ID", "Replaces",
    "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server", "Service-Route",
    "Session-Expires", "Session-ID", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)
_CANONICAL = {n.lower(): n for n in _KNOWN_NAMES}

# Headers whose grammar is a comma-separated list, so that several header lines and one comma-joined line
# are the same thing (RFC 3261 section 7.3.1). get_all() splits these.
_LIST_HEADERS = frozenset(n.lower() for n in (
    "Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require", "Proxy-Require",
    "Unsupported", "Allow-Events", "Accept", "Accept-Encoding", "Accept-Language", "Path", "Service-Route",
    "P-Asserted-Identity", "History-Info", "Alert-Info", "Call-Info", "Error-Info", "In-Reply-To",
))
_SINGLETONS = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type")
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")

_TOKEN = r"[A-Za-z0-9.!%*_+`'~-]+"
_TOKEN_RE = re.compile(rf"{_TOKEN}\Z")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_REQUEST_LINE_RE = re.compile(rf"({_TOKEN}) ([^\s]+) ([Ss][Ii][Pp]/[0-9]{{1,3}}\.[0-9]{{1,3}})\Z")
_STATUS_LINE_RE = re.compile(r"([Ss][Ii][Pp]/[0-9]{1,3}\.[0-9]{1,3}) ([0-9]{3})(?:[ \t](.*))?\Z", re.S)
_CSEQ_RE = re.compile(rf"[ \t]*([0-9]+)[ \t]+({_TOKEN})[ \t]*\Z")
_DIGITS_RE = re.compile(r"[ \t]*([0-9]+)[ \t]*\Z")
_VIA_RE = re.compile(rf"\s*({_TOKEN})\s*/\s*({_TOKEN})\s*/\s*({_TOKEN})\s+(.*)\Z", re.S)
_HOSTPORT_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?\Z")
_HOSTPORT_STRICT_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?\Z")
_TEL_RE = re.compile(r"\+?[0-9A-Fa-f*#().-]*[0-9A-Fa-f*#][0-9A-Fa-f*#().-]*\Z")
_HEAD_END_RE = re.compile(rb"\r?\n\r?\n")
_LINE_RE = re.compile(r"\r?\n")
# Characters an unquoted display-name may not contain (RFC 3261: it is a run of tokens and LWS). We let
# non-ASCII through because some PBXes send UTF-8 names unquoted.
_DISPLAY_BAD = set('"<>,;:@\\/[]?={}()') | {chr(c) for c in range(0x20)} | {"\x7f"}

MAX_CSEQ = 2**31 - 1  # RFC 3261 section 8.1.1.5: the sequence number MUST be less than 2**31
MAX_DELTA_SECONDS = 2**32 - 1  # RFC 3261 section 20.19 (Expires) and RFC 4028 (Session-Expires, Min-SE)
MAX_SIZE = 65535  # the default largest message, and so the largest Content-Length, we accept


def canonical_name(name: str) -> str:
    """The spelling we write a header name in: compact forms expanded, known names in RFC case
    ("call-id" -> "Call-ID"), unknown names (X-..., vendor headers) exactly as received."""
    n = name.strip()
    low = n.lower()
    if len(low) == 1 and low in COMPACT:
        return COMPACT[low]
    return _CANONICAL.get(low, n)


def _key(name: str) -> str:
    return canonical_name(name).lower()


def _check_header_text(name: str, value: str) -> None:
    if any(ch in name for ch in "\r\n:") or not name.strip():
        raise ValueError(f"invalid SIP header name {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"SIP header {name} value contains CR/LF (header injection?): {value[:80]!r}")


def _split_top_level(value: str, sep: str, angles: bool) -> tuple[list[str], bool]:
    """Split ``value`` at ``sep`` where it is not inside a quoted string (backslash escapes honoured)
    and, with ``angles``, not inside <...>. Returns the pieces and whether a quoted string was left open."""
    parts: list[str] = []
    start = 0
    in_quote = escape = False
    angle = 0
    for i, ch in enumerate(value):
        if in_quote:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif angles and ch == "<":
            angle += 1
        elif angles and ch == ">":
            angle = max(0, angle - 1)
        elif ch == sep and angle == 0:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts, in_quote


def _split_commas(value: str) -> list[str]:
    """Split a list-valued header at top-level commas: not inside a quoted string, not inside <...>.
    Empty elements (``a,,b``) are dropped."""
    parts, _ = _split_top_level(value, ",", angles=True)
    return [p.strip() for p in parts if p.strip()]


class Headers:
    """Ordered (name, value) header fields of one message.

    Names are case-insensitive and compact forms are the same header as their long form (``v`` is Via);
    names are stored in canonical spelling (see :func:`canonical_name`). Order is kept because it carries
    meaning for Via, Route and Record-Route. Values are unfolded, trimmed text.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value. For list headers (Via, Contact, Route, ...) the first list element even when
        the sender comma-joined several into one line (so ``get("Via")`` is always the top Via)."""
        key = _key(name)
        if key in _LIST_HEADERS:
            present = False
            for n, v in self._items:
                if _key(n) == key:
                    present = True
                    parts = _split_commas(v)
                    if parts:
                        return parts[0]
            return "" if present else default
        for n, v in self._items:
            if _key(n) == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value, in order. List headers are split on top-level commas (quotes and <...> respected),
        except ``Contact: *``, which is returned as ``["*"]``."""
        key = _key(name)
        values = [v for n, v in self._items if _key(n) == key]
        if key not in _LIST_HEADERS:
            return values
        out: list[str] = []
        for v in values:
            out.extend(_split_commas(v))
        return out

    def add(self, name: str, value: str) -> None:
        """Append a field. Raises ValueError for CR/LF in the value: that is a caller bug (or an injection
        attempt), never something a parsed message can contain."""
        value = str(value)
        _check_header_text(name, value)
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, at the position of the first (or at the end)."""
        value = str(value)
        _check_header_text(name, value)
        key = _key(name)
        pos = next((i for i, (n, _) in enumerate(self._items) if _key(n) == key), len(self._items))
        self._items = [(n, v) for n, v in self._items if _key(n) != key]
        self._items.insert(min(pos, len(self._items)), (canonical_name(name), value))

    def remove(self, name: str) -> None:
        key = _key(name)
        self._items = [(n, v) for n, v in self._items if _key(n) != key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        return any(_key(n) == key for n, _ in self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def copy(self) -> "Headers":
        h = Headers()
        h._items = list(self._items)
        return h

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


# --- addresses -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Via:
    """One Via element (RFC 3261 section 20.42). ``host`` is the bare address (IPv6 without brackets);
    ``params`` has lower-cased names, ``None`` for a flag such as a bare ``rport``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict, hash=False)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch") or None

    @property
    def received(self) -> str | None:
        return self.params.get("received") or None

    @property
    def rport_requested(self) -> bool:
        """The client asked for symmetric response routing (RFC 3581): answer to the source port."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The ``rport`` value a proxy filled in, else None (also None for a bare ``;rport`` flag)."""
        v = self.params.get("rport")
        return int(v) if v and v.isascii() and v.isdigit() and len(v) <= 5 else None

    @property
    def sent_by(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{_format_params(self.params)}"


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact/Route style address (RFC 3261 section 20.10): optional display name (unquoted,
    escapes resolved), the URI as text, and the header parameters (lower-cased names; ``tag`` lives here)."""

    display: str | None
    uri: str
    params: dict[str, str | None] = field(default_factory=dict, hash=False)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag") or None

    def __str__(self) -> str:
        disp = ""
        if self.display:
            disp = '"' + self.display.replace("\\", "\\\\").replace('"', '\\"') + '" '
        return f"{disp}<{self.uri}>{_format_params(self.params)}"


@dataclass(frozen=True)
class SipUri:
    """A parsed sip:, sips: or tel: URI (RFC 3261 section 19.1, RFC 3966).

    ``user`` is percent-decoded (``sip:%2B4930@h`` has user ``+4930``); for tel: it is the number and
    ``host`` is empty. ``host`` is the bare address (IPv6 without brackets). Parameter and header names are
    lower-cased and their values percent-decoded; a flag parameter (``;lr``) maps to None.
    """

    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict, hash=False)
    password: str | None = None
    headers: dict[str, str] = field(default_factory=dict, hash=False)


def _format_params(params: dict[str, str | None]) -> str:
    out = []
    for k, v in params.items():
        if v is None:
            out.append(f";{k}")
        elif v == "" or not _TOKEN_RE.match(v) and not _is_host_like(v):
            out.append(f';{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(f";{k}={v}")
    return "".join(out)


def _is_host_like(v: str) -> bool:
    return bool(re.fullmatch(r"\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+", v))


def _read_quoted(s: str, i: int) -> tuple[str, int]:
    """Read the quoted-string starting at s[i] == '"'. Returns (unescaped text, index after the closing
    quote). RFC 3261 quoted-pair: a backslash escapes any character but CR/LF."""
    out = []
    j = i + 1
    n = len(s)
    while j < n:
        ch = s[j]
        if ch == "\\":
            if j + 1 >= n:
                break
            out.append(s[j + 1])
            j += 2
            continue
        if ch == '"':
            return "".join(out), j + 1
        out.append(ch)
        j += 1
    raise SipParseError(f"unterminated quoted string in {s[:80]!r}")


def _split_semis(s: str) -> list[str]:
    """Split at ';' outside quoted strings."""
    parts, unterminated = _split_top_level(s, ";", angles=False)
    if unterminated:
        raise SipParseError(f"unterminated quoted string in parameters {s[:80]!r}")
    return parts


def _parse_params(s: str, what: str) -> dict[str, str | None]:
    """Header parameters (generic-param, RFC 3261 section 25.1), ``s`` being the text after the first
    ';'. LWS is allowed around ';' and '='; values may be tokens, hosts or quoted strings."""
    params: dict[str, str | None] = {}
    for piece in _split_semis(s):
        piece = piece.strip(" \t")
        if not piece:
            raise SipParseError(f"empty parameter in {what}")
        name, eq, value = piece.partition("=")
        name = name.strip(" \t")
        if not _TOKEN_RE.match(name):
            raise SipParseError(f"invalid parameter name {name[:40]!r} in {what}")
        val: str | None = None
        if eq:
            value = value.strip(" \t")
            if value.startswith('"'):
                val, end = _read_quoted(value, 0)
                if value[end:].strip(" \t"):
                    raise SipParseError(f"text after quoted value of parameter {name!r} in {what}")
            elif not value or any(ch in value for ch in ' \t"'):
                raise SipParseError(f"invalid value for parameter {name!r} in {what}")
            else:
                val = value
        params.setdefault(name.lower(), val)
    return params


def _parse_hostport(s: str, what: str, *, lws: bool) -> tuple[str, int | None]:
    m = (_HOSTPORT_RE if lws else _HOSTPORT_STRICT_RE).match(s.strip(" \t") if lws else s)
    if not m:
        raise SipParseError(f"invalid host[:port] {s[:80]!r} in {what}")
    host, port = m.group(1), m.group(2)
    if host.startswith("["):
        host = host[1:-1]
    p = int(port) if port is not None else None
    if p is not None and p > 65535:
        raise SipParseError(f"port {p} out of range in {what}")
    return host, p


def parse_via(value: str) -> Via:
    """Parse one Via element (use ``Headers.get_all("Via")`` to split comma-joined ones). LWS is allowed
    around '/' ':' ';' '=' as RFC 3261 permits (RFC 4475 section 3.1.1.1)."""
    m = _VIA_RE.match(value)
    if not m:
        raise SipParseError(f"malformed Via {value[:80]!r}")
    proto, version, transport, rest = m.groups()
    if proto.upper() != "SIP" or version != "2.0":
        raise SipParseError(f"Via protocol is not SIP/2.0: {value[:80]!r}")
    sent_by, semi, params = rest.partition(";")
    host, port = _parse_hostport(sent_by, "Via", lws=True)
    return Via(transport.upper(), host, port, _parse_params(params, "Via") if semi else {})


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Display" <uri>;params``, ``Display <uri>``, ``<uri>`` or the bare ``uri;params`` form.

    In the bare form everything after the first ';' is a header parameter (RFC 3261 section 20.10), so
    ``sip:a@b;tag=x`` has the tag as a parameter, not as a URI parameter. Whitespace inside <...> is
    refused (RFC 4475 3.1.2.14 "badaspec" allows rejecting it), as are unquoted display names with
    separators such as ``Bell, Alexander <...>`` (3.1.2.15 "baddn").
    """
    s = value.strip(" \t")
    if not s:
        raise SipParseError("empty address")
    display: str | None = None
    if s[0] == '"':
        display, end = _read_quoted(s, 0)
        rest = s[end:].lstrip(" \t")
        if not rest.startswith("<"):
            raise SipParseError(f"quoted display name not followed by <URI> in {s[:80]!r}")
        lt = len(s) - len(rest)
    else:
        lt = s.find("<")
        if lt >= 0:
            disp = s[:lt].strip(" \t")
            if any(ch in _DISPLAY_BAD for ch in disp):
                raise SipParseError(f"display name must be quoted: {disp[:80]!r}")
            display = " ".join(disp.split()) or None
    if lt >= 0:
        gt = s.find(">", lt)
        if gt < 0:
            raise SipParseError(f"missing '>' in address {s[:80]!r}")
        uri = s[lt + 1:gt]
        rest = s[gt + 1:].strip(" \t")
        if rest and not rest.startswith(";"):
            raise SipParseError(f"unexpected text after '>' in address {s[:80]!r}")
        params = _parse_params(rest[1:], "address") if rest else {}
    else:
        uri, semi, rest = s.partition(";")
        uri = uri.strip(" \t")
        params = _parse_params(rest, "address") if semi else {}
    if not uri or any(ch.isspace() for ch in uri) or not _SCHEME_RE.match(uri):
        raise SipParseError(f"invalid URI {uri[:80]!r} in address")
    return NameAddr(display, uri, params)


def _uri_params(s: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for piece in s.split(";"):
        if not piece:
            continue
        name, eq, value = piece.partition("=")
        out.setdefault(unquote(name, errors="replace").lower(), unquote(value, errors="replace") if eq else None)
    return out


def parse_uri(value: str) -> SipUri:
    """Parse a sip:, sips: or tel: URI (also accepted wrapped in <...>). Other schemes raise
    SipParseError: we only ever need to read numbers and hosts out of these three."""
    s = value.strip(" \t")
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1]
    m = _SCHEME_RE.match(s)
    if not m or any(ch.isspace() for ch in s):
        raise SipParseError(f"invalid URI {s[:80]!r}")
    scheme = m.group(0)[:-1].lower()
    rest = s[m.end():]
    if scheme == "tel":
        number, semi, params = rest.partition(";")
        if not _TEL_RE.match(number):
            raise SipParseError(f"invalid tel: number {number[:40]!r}")
        return SipUri("tel", number, "", None, _uri_params(params) if semi else {})
    if scheme not in ("sip", "sips"):
        raise SipParseError(f"unsupported URI scheme {scheme!r} (we read sip:, sips: and tel:)")
    at = rest.rfind("@")
    userinfo, hostpart = (rest[:at], rest[at + 1:]) if at >= 0 else (None, rest)
    q = hostpart.find("?")
    headers_part = hostpart[q + 1:] if q >= 0 else ""
    hostpart = hostpart[:q] if q >= 0 else hostpart
    hostport, semi, params = hostpart.partition(";")
    host, port = _parse_hostport(hostport, "URI", lws=False)
    user = password = None
    if userinfo is not None:
        u, colon, pw = userinfo.partition(":")
        if not u:
            raise SipParseError(f"empty user part in URI {s[:80]!r}")
        user = unquote(u, errors="replace")
        password = unquote(pw, errors="replace") if colon else None
    headers: dict[str, str] = {}
    for piece in headers_part.split("&") if q >= 0 else ():
        if piece:
            name, _, val = piece.partition("=")
            headers.setdefault(unquote(name, errors="replace").lower(), unquote(val, errors="replace"))
    return SipUri(scheme, user, host, port, _uri_params(params) if semi else {}, password, headers)


# --- messages ------------------------------------------------------------------------------------------


def _bounded_int(digits: str, limit: int) -> int | None:
    """The value of a run of ASCII digits, or None when it is above ``limit``. Never converts a huge digit
    string (int() of thousands of digits is slow, and over 4300 raises ValueError)."""
    d = digits.lstrip("0") or "0"
    if len(d) > len(str(limit)):
        return None
    n = int(d)
    return n if n <= limit else None


def _parse_cseq(value: str | None) -> tuple[int, str]:
    if value is None:
        raise SipParseError("missing CSeq header", reason="Bad CSeq")
    m = _CSEQ_RE.match(value)
    if not m:
        raise SipParseError(f"malformed CSeq {value[:80]!r} (want '<number> <METHOD>')", reason="Bad CSeq")
    num = _bounded_int(m.group(1), MAX_CSEQ)
    if num is None:
        raise SipParseError(f"CSeq number {m.group(1)[:40]} is not below 2**31", reason="Bad CSeq")
    return num, m.group(2)


class _MessageMixin:
    """Accessors shared by requests and responses. They raise SipParseError when the header is missing or
    malformed; :func:`parse_message` already checked them, so that only happens on hand-built messages."""

    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        v = self.headers.get("Call-ID")
        if not v:
            raise SipParseError("missing Call-ID header")
        return v

    @property
    def cseq(self) -> tuple[int, str]:
        return _parse_cseq(self.headers.get("CSeq"))

    def _tag(self, name: str) -> str | None:
        v = self.headers.get(name)
        return parse_name_addr(v).tag if v else None

    @property
    def from_tag(self) -> str | None:
        return self._tag("From")

    @property
    def to_tag(self) -> str | None:
        return self._tag("To")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        v = self.headers.get("Via")
        if not v:
            raise SipParseError("missing Via header")
        return parse_via(v)

    @property
    def branch(self) -> str | None:
        return self.top_via.branch if self.headers.get("Via") else None

    @property
    def content_type(self) -> str | None:
        """Media type of the body, lower-cased, without parameters (``multipart/mixed``), or None."""
        v = self.headers.get("Content-Type")
        if not v:
            return None
        return v.split(";", 1)[0].strip(" \t").lower() or None

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        for name, value in self.headers.items():
            if _key(name) == "content-length":
                continue
            _check_header_text(name, value)
            lines.append(f"{canonical_name(name)}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + bytes(self.body)


@dataclass
class SipRequest(_MessageMixin):
    method: str
    uri: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def to_bytes(self) -> bytes:
        """Wire form: canonical header names, CRLF line ends, Content-Length always from ``len(body)``."""
        if not _TOKEN_RE.match(self.method) or not self.uri or any(ch.isspace() for ch in self.uri):
            raise ValueError(f"cannot write request line {self.method!r} {self.uri!r}")
        return self._serialize(f"{self.method} {self.uri} {self.version}")


@dataclass
class SipResponse(_MessageMixin):
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def to_bytes(self) -> bytes:
        """Wire form: canonical header names, CRLF line ends, Content-Length always from ``len(body)``."""
        if not 100 <= self.status <= 699 or "\r" in self.reason or "\n" in self.reason:
            raise ValueError(f"cannot write status line {self.status!r} {self.reason!r}")
        return self._serialize(f"{self.version} {self.status} {self.reason}")


def _show(line: str) -> str:
    return repr(line[:80]) + ("..." if len(line) > 80 else "")


def _parse_start_line(line: str) -> tuple[str, str, str]:
    """('request', method, uri) or ('response', status, reason) after checking the version.
    Trailing whitespace is tolerated (RFC 4475 3.1.2.10 "trws" lets an element be liberal here); URI
    headers in a sip: Request-URI are refused (3.1.2.11 "escruri")."""
    line = line.rstrip(" \t")
    if line[:4].upper() == "SIP/":
        m = _STATUS_LINE_RE.match(line)
        if not m:
            raise SipParseError(f"malformed status line {_show(line)}")
        version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
        if version.upper() != "SIP/2.0":
            raise SipParseError(f"unsupported SIP version in {_show(line)}", 505, "Version Not Supported")
        if not 100 <= status <= 699:
            raise SipParseError(f"status code {status} out of range")
        return "response", str(status), reason.strip(" \t")
    m = _REQUEST_LINE_RE.match(line)
    if not m:
        raise SipParseError(f"malformed request line {_show(line)} (want 'METHOD uri SIP/2.0')",
                            reason="Bad Request-Line")
    method, uri, version = m.groups()
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"unsupported SIP version {version}", 505, "Version Not Supported")
    if not _SCHEME_RE.match(uri):
        raise SipParseError(f"Request-URI {uri[:80]!r} is not an absolute URI", reason="Bad Request-URI")
    if uri.split(":", 1)[0].lower() in ("sip", "sips"):
        try:
            parsed = parse_uri(uri)
        except SipParseError as e:
            raise SipParseError(f"Request-URI: {e}", reason="Bad Request-URI") from None
        if parsed.headers:
            raise SipParseError(f"Request-URI must not carry URI headers (RFC 3261 19.1.1): {uri[:80]!r}",
                                reason="Bad Request-URI")
    return "request", method, uri


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """Start-line and unfolded (canonical name, value) fields of a header block (without the blank line)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SipParseError(f"header bytes are not UTF-8 (offset {e.start})", reason="Bad Header Encoding") from None
    lines = _LINE_RE.split(text)
    start = lines[0]
    if "\r" in start:
        raise SipParseError(f"stray CR in start line {_show(start)}", reason="Bad Request-Line")
    fields: list[list[str]] = []
    for line in lines[1:]:
        if "\r" in line:
            raise SipParseError(f"stray CR in header line {_show(line)}", reason="Bad Header")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipParseError(f"continuation line before any header: {_show(line)}", reason="Bad Header")
            # RFC 3261 7.3.1: a fold (CRLF + LWS) is equivalent to a single space
            prev = fields[-1]
            prev[1] = (prev[1] + " " + line.strip(" \t")).strip(" \t")
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN_RE.match(name):
            raise SipParseError(f"malformed header line {_show(line)}", reason="Bad Header")
        fields.append([canonical_name(name), value.strip(" \t")])
    return start, [(n, v) for n, v in fields]


def _skip_leading_crlf(data: bytes) -> int:
    """RFC 3261 section 7.5: CRLFs before the start-line are ignored."""
    i = 0
    n = len(data)
    while i < n and data[i] in (0x0D, 0x0A):
        i += 1
    return i


def _content_length(headers: Headers, max_size: int = MAX_SIZE) -> int | None:
    """The Content-Length, checked to be one number in 0..``max_size`` (a larger body could never fit)."""
    values = {v.strip(" \t") for v in headers.get_all("Content-Length")}
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError(f"conflicting Content-Length headers: {', '.join(sorted(values))[:80]}",
                            reason="Bad Content-Length")
    (v,) = values
    m = _DIGITS_RE.match(v)
    if not m:
        raise SipParseError(f"invalid Content-Length {v[:40]!r}", reason="Bad Content-Length")
    n = _bounded_int(m.group(1), max_size)
    if n is None:
        raise SipParseError(f"Content-Length {m.group(1)[:40]} is over the {max_size}-byte message limit",
                            reason="Bad Content-Length")
    return n


def _delta_seconds(headers: Headers, name: str, minimum: int = 0) -> None:
    """Expires, Session-Expires, Min-SE: delta-seconds (``minimum``..2**32-1), parameters allowed after
    ';' for the last two. Answered 400 "Bad <name>" otherwise (RFC 3261 20.19, RFC 4028 4 and 5)."""
    values = headers.get_all(name)
    if not values:
        return
    if len(values) > 1:
        raise SipParseError(f"more than one {name} header", reason=f"Bad {name}")
    v = values[0]
    number = v.split(";", 1)[0] if name != "Expires" else v
    m = _DIGITS_RE.match(number)
    n = _bounded_int(m.group(1), MAX_DELTA_SECONDS) if m else None
    if n is None or n < minimum:
        raise SipParseError(f"invalid {name} {v[:40]!r} (want {minimum}..{MAX_DELTA_SECONDS} seconds)",
                            reason=f"Bad {name}")


def _validate(headers: Headers, method: str | None) -> None:
    missing = [n for n in _MANDATORY if not headers.get(n)]
    if missing:
        raise SipParseError(f"missing mandatory header(s): {', '.join(missing)}", reason=f"Missing {missing[0]}")
    for name in _SINGLETONS:
        if len(headers.get_all(name)) > 1:
            raise SipParseError(f"more than one {name} header", reason=f"Bad {name}")
    num, cseq_method = _parse_cseq(headers.get("CSeq"))
    if method is not None and cseq_method != method:
        raise SipParseError(f"CSeq method {cseq_method!r} does not match the request method {method!r}",
                            reason="Bad CSeq")
    try:
        parse_via(headers.get("Via") or "")
    except SipParseError as e:
        raise SipParseError(str(e), reason="Bad Via") from None
    for name in ("From", "To"):
        try:
            parse_name_addr(headers.get(name) or "")
        except SipParseError as e:
            raise SipParseError(f"malformed {name} header: {e}", reason=f"Bad {name}") from None
    mf = headers.get("Max-Forwards")
    if mf is not None:
        m = _DIGITS_RE.match(mf)
        if not m or _bounded_int(m.group(1), 255) is None:
            raise SipParseError(f"invalid Max-Forwards {mf[:40]!r} (want 0-255)", reason="Bad Max-Forwards")
    if method is not None:
        _delta_seconds(headers, "Expires")
        _delta_seconds(headers, "Session-Expires", minimum=1)
        _delta_seconds(headers, "Min-SE")


def parse_message(data: bytes, max_size: int = 65535) -> SipRequest | SipResponse:
    """Parse one complete SIP message, e.g. a UDP datagram (RFC 3261 section 7).

    Content-Length, when present, bounds the body: bytes after it are ignored (RFC 3261 18.3 for UDP) and
    a shorter body is an error (a truncated datagram). Without Content-Length the body is the rest of the
    datagram. Header bytes must be UTF-8; the body is returned as bytes, untouched.
    Raises SipParseError (status 513 when ``data`` is over ``max_size``).
    """
    data = bytes(data)
    if len(data) > max_size:
        raise SipParseError(f"message of {len(data)} bytes is over the {max_size}-byte limit", 513,
                            "Message Too Large")
    start = _skip_leading_crlf(data)
    m = _HEAD_END_RE.search(data, start)
    if not m:
        raise SipParseError("no empty line after the headers (truncated or not SIP)")
    start_line, fields = _parse_head(data[start:m.start()])
    kind, a, b = _parse_start_line(start_line)
    headers = Headers()
    headers._items = fields  # already canonical and free of CR/LF
    body = data[m.end():]
    cl = _content_length(headers, max_size)
    if cl is not None:
        if cl > len(body):  # RFC 3261 18.3: over UDP this MUST be answered 400
            raise SipParseError(f"body is shorter than Content-Length ({len(body)} < {cl} bytes)",
                                reason="Bad Content-Length")
        body = body[:cl]
    version = "SIP/2.0"
    if kind == "request":
        _validate(headers, a)
        return SipRequest(a, b, headers, body, version)
    _validate(headers, None)
    return SipResponse(int(a), b, headers, body, version)


class StreamFramer:
    """Cuts a TCP/TLS byte stream into SIP messages (RFC 3261 section 18.3). Sans-I/O: feed it what the
    socket gave you, get back the complete messages.

    - Content-Length is mandatory on streams (it is the only framing); a missing one is an error.
    - CRLF keep-alives (RFC 5626 section 3.5.1) between messages are skipped: each double CRLF "ping"
      increments :attr:`pings` (answer each with a single CRLF "pong"); lone CRLFs are skipped silently.
    - Errors come in two kinds. Framing errors (garbage start-line, no/invalid Content-Length, over
      ``max_size``) set :attr:`broken`: the stream can no longer be cut, close the connection (every
      later feed() raises again). A message that frames fine but does not parse (e.g. no Call-ID) is
      consumed and raised with ``broken`` still False: the caller may log it, close, or keep reading; any
      messages that came before it in the same chunk are returned by the next feed() (``feed(b"")``).
    """

    def __init__(self, max_size: int = 65535) -> None:
        self.max_size = max_size
        self.pings = 0
        self.broken = False
        self._buf = bytearray()
        self._scan = 0  # where the search for the blank line resumes (avoids rescanning on byte dribbles)
        self._need: int | None = None  # total length of the message whose head we already read
        self._start_checked = False
        self._pending: list[SipRequest | SipResponse] = []
        self._error: SipParseError | None = None
        self.error_data: bytes = b""
        """The bytes of the message behind the last error raised (its head when framing was lost), so the
        caller can still answer it (e.g. 400 Bad Content-Length) before closing."""

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)

    def take_pings(self) -> int:
        """The pings seen since the last call (and reset the count): how many pongs to send."""
        n, self.pings = self.pings, 0
        return n

    def _fail(self, message: str, status: int = 400, reason: str = "Bad Request") -> SipParseError:
        self.broken = True
        self._error = SipParseError(message, status, reason)
        self._buf.clear()
        return self._error

    def _skip_keepalives(self) -> None:
        buf = self._buf
        while buf:
            if buf.startswith(b"\r\n\r\n"):
                del buf[:4]
                self.pings += 1
            elif buf.startswith(b"\r\n"):
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    return  # maybe the first half of a ping: wait for more
                del buf[:2]
            elif buf[0] == 0x0A:  # a bare LF keep-alive from a sloppy client
                del buf[:1]
            else:
                return

    def feed(self, data: bytes) -> list[SipRequest | SipResponse]:
        if self._error is not None:
            raise SipParseError(f"stream framing already lost: {self._error}", self._error.status,
                                self._error.reason)
        self._buf += data
        out, self._pending = self._pending, []
        buf = self._buf
        while True:
            if self._need is None:
                self._skip_keepalives()
                if not buf or (len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf))):
                    break
                m = _HEAD_END_RE.search(buf, max(0, self._scan - 3))
                if m is None:
                    self._scan = len(buf)
                    if not self._start_checked:
                        nl = buf.find(b"\n")
                        if nl >= 0:
                            try:
                                _parse_start_line(bytes(buf[:nl]).rstrip(b"\r").decode("utf-8"))
                            except (SipParseError, UnicodeDecodeError) as e:
                                raise self._fail(f"not a SIP start-line: {e}") from None
                            self._start_checked = True
                    if len(buf) > self.max_size:
                        raise self._fail(f"no end of headers within {self.max_size} bytes", 513,
                                         "Message Too Large")
                    break
                try:
                    start_line, fields = _parse_head(bytes(buf[:m.start()]))
                    _parse_start_line(start_line)
                    cl = _content_length(Headers(fields), self.max_size)
                except SipParseError as e:
                    self.error_data = bytes(buf[:m.end()])
                    raise self._fail(str(e), e.status, e.reason) from None
                if cl is None:
                    self.error_data = bytes(buf[:m.end()])
                    raise self._fail("Content-Length is required on stream transports (RFC 3261 18.3)",
                                     reason="Missing Content-Length")
                self._need = m.end() + cl
                if self._need > self.max_size:
                    raise self._fail(f"message of {self._need} bytes is over the {self.max_size}-byte limit",
                                     513, "Message Too Large")
            if len(buf) < self._need:
                break
            raw = bytes(buf[:self._need])
            del buf[:self._need]
            self._need = None
            self._scan = 0
            self._start_checked = False
            try:
                out.append(parse_message(raw, self.max_size))
            except SipParseError:
                self.error_data = raw
                self._pending = out
                raise
        return out


# --- building responses --------------------------------------------------------------------------------

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    199: "Early Dialog Terminated", 200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    580: "Precondition Failure", 600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
_CLASS_REASONS = {1: "Provisional", 2: "OK", 3: "Redirection", 4: "Client Error", 5: "Server Error",
                  6: "Global Failure"}
# Requests whose 1xx (with To tag) / 2xx responses create a dialog: those copy Record-Route (RFC 3261 12.1.1)
_DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=", re.I)


def _has_tag(addr: str) -> bool:
    try:
        return parse_name_addr(addr).tag is not None
    except SipParseError:
        return bool(_TAG_RE.search(addr))


def make_response(request: SipRequest, status: int, reason: str | None = None, *, to_tag: str | None = None,
                  headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
                  content_type: str | None = None) -> SipResponse:
    """The response to ``request`` per RFC 3261 section 8.2.6.2: all Via in order, From, To (with
    ``;tag=to_tag`` added if To has none yet, never on 100 Trying), Call-ID and CSeq copied; Timestamp
    echoed on 100 (8.2.6.1); Record-Route copied into dialog-creating 101-299 responses to INVITE,
    SUBSCRIBE, REFER and NOTIFY (12.1.1) unless ``headers`` brings its own. ``headers`` are appended after
    those; ``content_type`` adds Content-Type. ``reason`` defaults to the RFC phrase for ``status``.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"SIP status {status} out of range 100-699")
    if reason is None:
        reason = REASONS.get(status, _CLASS_REASONS[status // 100])
    if to_tag is not None and not _TOKEN_RE.match(to_tag):
        raise ValueError(f"To tag {to_tag!r} is not a SIP token")
    extra = list(headers)
    extra_keys = {_key(n) for n, _ in extra}
    h = Headers()
    for name, value in request.headers.items():
        if _key(name) == "via":
            h.add("Via", value)
    if 100 < status < 300 and request.method in _DIALOG_METHODS and "record-route" not in extra_keys:
        for name, value in request.headers.items():
            if _key(name) == "record-route":
                h.add("Record-Route", value)
    frm = request.headers.get("From")
    if frm is not None:
        h.add("From", frm)
    to = request.headers.get("To")
    if to is not None:
        if to_tag and status != 100 and not _has_tag(to):
            to = f"{to};tag={to_tag}"
        h.add("To", to)
    for name in ("Call-ID", "CSeq"):
        v = request.headers.get(name)
        if v is not None:
            h.add(name, v)
    if status == 100 and "timestamp" not in extra_keys:
        ts = request.headers.get("Timestamp")
        if ts:
            h.add("Timestamp", ts)
    for name, value in extra:
        h.add(name, value)
    if content_type and "content-type" not in extra_keys:
        h.add("Content-Type", content_type)
    return SipResponse(status, reason, h, bytes(body))


_RAW_HEADER_RE = re.compile(rb"(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*(.*?)[ \t]*\Z", re.I | re.S)
_RAW_REQUEST_LINE_RE = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]+ [^ \t\r\n]")
_RAW_VIA_RE = re.compile(rf"SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*{_TOKEN}[ \t]+[^ \t;,]", re.I)
_RAW_CSEQ_RE = re.compile(rf"[^ \t]+[ \t]+({_TOKEN})\Z")
_RAW_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=", re.I)
_RAW_LONG = {b"v": "via", b"f": "from", b"t": "to", b"i": "call-id"}
MAX_RAW_LINE = 8192


def error_response(data: bytes, status: int, reason: str, *, to_tag: str | None = None,
                   headers: Iterable[tuple[str, str]] = ()) -> bytes | None:
    """``status reason`` for a request that did not parse, built from its raw header lines (RFC 3261
    8.2.6.2 copies Via, From, To, Call-ID and CSeq; a client matches the response by the top Via's branch
    and the CSeq method). Returns None when ``data`` cannot be answered: not a request (a response, not
    SIP), an ACK (never answered), or missing any of Via (of the form ``SIP/2.0/<transport> <host>``),
    From, To, Call-ID, or a CSeq that ends in a method. Header values are echoed as received, so one with
    a bad number (``CSeq: 1099511627776 OPTIONS``) still matches the client's transaction."""
    if not 100 <= status <= 699 or any(ch in reason for ch in "\r\n"):
        raise ValueError(f"cannot write status line {status!r} {reason!r}")
    data = bytes(data[_skip_leading_crlf(data):])
    m = _HEAD_END_RE.search(data)
    lines = _RAW_LINE_SPLIT_RE.split(data[:m.start()] if m else data)
    first = lines[0]
    if first[:4].upper() == b"SIP/" or not _RAW_REQUEST_LINE_RE.match(first) or first.split(b" ", 1)[0] == b"ACK":
        return None
    found: dict[str, list[str]] = {}
    for line in lines[1:]:
        hm = _RAW_HEADER_RE.match(line)
        if hm is None:
            continue
        if len(line) > MAX_RAW_LINE or b"\r" in line:
            return None
        try:
            value = hm.group(2).decode("utf-8")
        except UnicodeDecodeError:
            return None
        name = hm.group(1).lower()
        found.setdefault(_RAW_LONG.get(name, name.decode()), []).append(value)
    vias = [v for v in found.get("via", []) if v]
    frm, to, call_id, cseq = (found.get(n, [""])[0] for n in ("from", "to", "call-id", "cseq"))
    cm = _RAW_CSEQ_RE.match(cseq)
    if not vias or not _RAW_VIA_RE.match(vias[0]) or not frm or not to or not call_id or not cm or cm.group(1) == "ACK":
        return None
    if to_tag and not _RAW_TAG_RE.search(to):
        to = f"{to};tag={to_tag}"
    out = [f"SIP/2.0 {status} {reason}"] + [f"Via: {v}" for v in vias]
    out += [f"From: {frm}", f"To: {to}", f"Call-ID: {call_id}", f"CSeq: {cseq}"]
    for name, value in headers:
        _check_header_text(name, value)
        out.append(f"{canonical_name(name)}: {value}")
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode("utf-8")


_RAW_LINE_SPLIT_RE = re.compile(rb"\r?\n")


def new_tag() -> str:
    """A From/To tag: 64 random bits (RFC 3261 19.3 asks for at least 32), hex."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A Via branch with the RFC 3261 magic cookie, unique across space and time (96 random bits)."""
    return "z9hG4bK" + secrets.token_hex(12)


__all__ = [
    "COMPACT", "Headers", "SipRequest", "SipResponse", "parse_message", "StreamFramer", "make_response",
    "new_tag", "new_branch", "Via", "parse_via", "NameAddr", "parse_name_addr", "SipUri", "parse_uri",
    "canonical_name", "REASONS", "error_response",
]
