"""Who may send us SIP, and how many calls one source may hold: pure decisions, no sockets.

- The allow list (``sip_allow``): addresses and CIDR networks, IPv4 and IPv6, parsed once. A source
  outside it is answered 403 Forbidden on every transport. With ``ingest_auth`` off the list is not
  enforced (everyone is allowed). An IPv4-mapped IPv6 source (``::ffff:10.0.0.1``, what a socket bound to
  ``::`` reports for an IPv4 peer) is checked as the IPv4 address; a scope (``fe80::1%eth0``) is dropped.
- The per-source quota (``cfg.source_quota``): live calls (being set up or answered) per source IP
  address; above it the source's new INVITEs get 503 + Retry-After while other sources still get in.
  (A quota of 0, possible only when built by hand, means no per-source limit.)

The server calls :meth:`Admission.admit` before it takes anything for a call and :meth:`Admission.release`
exactly once when that call is gone (refused during set-up, cancelled, or ended).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Iterable

from callscribe.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.5``, ``10.0.0.0/8``, ``2001:db8::/32`` ... -> networks (host bits in a CIDR entry are
    cleared, as the config's check does: ``10.0.0.5/8`` is 10.0.0.0/8); a bad entry raises ConfigError."""
    out: list[Network] = []
    for raw in entries:
        entry = str(raw).strip()
        if not entry:
            continue
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ConfigError(f"setting sip_allow (CALLSCRIBE_SIP_ALLOW): {entry!r} is not an address or network: {exc}") from None
    return tuple(out)


def normalize(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a socket reported, as an ipaddress object (IPv4-mapped IPv6 unwrapped), or None."""
    try:
        ip = ipaddress.ip_address(str(addr).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Admission:
    """The allow list and per-source call counters of one SIP server."""

    def __init__(self, allow: Iterable[str] = DEFAULT_ALLOW, *, enforce: bool = True, quota: int = 0) -> None:
        self.networks = parse_networks(allow)
        self.enforce = enforce
        self.quota = max(0, int(quota))
        self._live: Counter[str] = Counter()
        self._cache: dict[str, bool] = {}

    @classmethod
    def from_config(cls, cfg) -> "Admission":
        """From ``ingest_auth``, ``sip_allow`` and ``source_quota`` (``source_max_calls``, or 80% of
        ``max_calls`` when that is 0)."""
        return cls(tuple(cfg.sip_allow), enforce=cfg.ingest_auth, quota=cfg.source_quota)

    # --- allow list -------------------------------------------------------------------------------------
    def allowed(self, addr: str) -> bool:
        """May ``addr`` (a source IP as a socket reports it) send us SIP?"""
        if not self.enforce:
            return True
        hit = self._cache.get(addr)
        if hit is None:
            ip = normalize(addr)
            hit = ip is not None and any(ip in net for net in self.networks if net.version == ip.version)
            if len(self._cache) >= 4096:  # a spoofed-source flood cannot grow it without bound
                self._cache.clear()
            self._cache[addr] = hit
        return hit

    # --- per-source quota ---------------------------------------------------------------------------------
    @staticmethod
    def source_key(addr: str) -> str:
        ip = normalize(addr)
        return str(ip) if ip is not None else str(addr)

    def live(self, addr: str) -> int:
        """Calls ``addr`` holds now (being set up or answered)."""
        return self._live.get(self.source_key(addr), 0)

    def over_quota(self, addr: str) -> bool:
        return self.quota > 0 and self.live(addr) >= self.quota

    def admit(self, addr: str) -> bool:
        """Count a new call for ``addr`` if it is under its quota; False (nothing counted) if not."""
        if self.over_quota(addr):
            return False
        self._live[self.source_key(addr)] += 1
        return True

    def release(self, addr: str) -> None:
        key = self.source_key(addr)
        n = self._live.get(key, 0)
        if n <= 1:
            self._live.pop(key, None)
        else:
            self._live[key] = n - 1

    @property
    def sources(self) -> dict[str, int]:
        """Live calls by source address (for metrics and tests)."""
        return dict(self._live)


__all__ = ["Admission", "parse_networks", "normalize", "DEFAULT_ALLOW"]
