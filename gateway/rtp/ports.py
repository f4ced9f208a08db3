"""The RTP port range, handed out in blocks of adjacent even/odd pairs (RTP on the even port, RTCP + 1).

Why adjacent blocks: a call's streams get ports ``base, base+2, ...``. Nothing in SIP requires it, but it
keeps a call's media in one place in packet captures and firewall logs, and lets a recorded two-stream
pcap be replayed at a call (sipp's ``play_pcap_audio`` shifts every packet by the same port offset).

Why a rotating cursor: a port freed by one call is not handed to the next call at once, so late packets
of the old call (a peer slow to stop sending) do not land in a new call's audio.
"""

from __future__ import annotations

from callscribe.errors import CapacityError


class PortPool:
    def __init__(self, low: int, high: int) -> None:
        low += low % 2  # RTP ports are even (RFC 3550 11)
        self.low = low
        self.pairs = max(0, (high - low + 1) // 2)
        self._used = bytearray(self.pairs)  # 1 = in use (or found busy on the host)
        self._cursor = 0
        self._blocks: dict[int, int] = {}  # base port -> pairs

    @property
    def free_pairs(self) -> int:
        return self.pairs - sum(self._used)

    def allocate(self, n: int, skip: set[int] | frozenset[int] = frozenset()) -> int:
        """Reserve ``n`` adjacent pairs; return the first RTP port. ``skip``: bases known to be busy.
        Raises CapacityError when the range has no such block (the call is refused with 503)."""
        if n < 1 or n > self.pairs:
            raise CapacityError(f"cannot give {n} RTP streams from a range of {self.pairs} pairs")
        for step in range(self.pairs):
            i = (self._cursor + step) % self.pairs
            if i + n > self.pairs:
                continue
            base = self.low + 2 * i
            if base in skip or any(self._used[i:i + n]):
                continue
            for j in range(i, i + n):
                self._used[j] = 1
            self._blocks[base] = n
            self._cursor = (i + n) % self.pairs
            return base
        raise CapacityError("RTP port range exhausted (rtp_port_min..rtp_port_max); widen it or add workers")

    def release(self, base: int) -> None:
        n = self._blocks.pop(base, 0)
        i = (base - self.low) // 2
        for j in range(i, i + n):
            self._used[j] = 0

    def in_use(self, base: int) -> bool:
        return base in self._blocks


__all__ = ["PortPool"]
