"""A per-stream RTP jitter buffer: packets in (any order), playout slots out in timestamp order.

Pure: the caller passes arrival times (``now``, monotonic seconds) and asks for whatever is due; no clock,
no sockets. What comes out is a gap-free sequence of :class:`Playout` slots whose durations add up to the
stream time covered, so the decoder behind it can keep one continuous 16 kHz timeline:

* ``audio`` - a received packet, played ``depth_ms`` after its expected arrival;
* ``lost`` - a packet that never came (or came after its slot), emitted once its playout time has passed,
  so the decoder can conceal it instead of the ASR seeing a jump; the last lost slot before a held packet
  carries that packet's payload (``next_payload``), from which a codec with in-band FEC (Opus) rebuilds
  the lost frame. A lost slot is only ever emitted because a later packet is held, so with the usual
  one-packet losses the decoder always gets it;
* ``silence`` - a timestamp gap the sender left on purpose (silence suppression/DTX: the sequence numbers
  run on across the gap, or the marker bit starts a new talkspurt), a capped long pause, or the wall-time
  gap between an old and a new stream of the same call.

Timing. The playout time of timestamp ``ts`` is ``ts / clock + min_transit + depth``, where ``transit`` is
``arrival - ts / clock`` and the minimum is taken over the packets of the last two seconds. With one packet
this is the spec's "first arrival + (ts - ts0) / clock + depth"; the sliding minimum then follows sender
clock drift and route changes in both directions, so a long call neither eats its jitter margin (sender
clock slow) nor grows the buffer without end (sender clock fast). Moving the playout clock never changes
what is emitted, only when.

Streams. Sequence numbers and timestamps are unwrapped as in RFC 3550 appendix A.1, so the 16- and 32-bit
wraps are seamless. A packet that does not fit the current stream - another SSRC, a sequence jump beyond
MAX_DROPOUT ahead or MAX_MISORDER behind, or a timestamp more than ``max_gap_ms`` behind what was already
played - is held on probation; a second packet fitting it confirms a new stream (A.1's two-sequential-packets
rule): the old stream's held packets are flushed, and the new one starts at its own arrival time, after a
silence equal to the wall-time gap between the two (capped at ``max_gap_ms``). A single stray packet is
written off after the current stream delivers a few more, and late packets of a retired stream are dropped
for a grace period instead of switching back to it.

Memory is bounded for any input: at most MAX_HELD packets are held (beyond that the oldest is played at
once), at most a few are on probation, and the de-duplication memories have fixed sizes.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from .packet import RtpPacket

MAX_DROPOUT = 3000  # RFC 3550 A.1: a forward sequence jump larger than this is a restart, not loss
MAX_MISORDER = 100  # RFC 3550 A.1: a backward jump larger than this is a restart, not reordering
MAX_HELD = 500  # packets held at most (10 s of 20 ms packets); beyond it the oldest is played early
MAX_READY = 10_000  # emitted slots waiting for pop(); only reached if the caller never pops
PROBATION_PACKETS = 2  # packets of a new stream needed to switch to it
STRAY_AFTER = 8  # current-stream packets after which a pending foreign packet is dropped as a stray
RETIRED_GRACE_S = 2.0  # late packets of the stream just replaced are dropped for this long
TRANSIT_WINDOW_S = 2.0  # the playout clock follows the minimum transit time over this window
_MEMORY = 1024  # played / non-audio sequence numbers remembered (duplicates older than this count as late)


@dataclass(frozen=True, slots=True)
class Playout:
    """One slot of the playout timeline. ``duration`` is in RTP timestamp units of the stream's clock."""

    kind: Literal["audio", "lost", "silence"]
    payload: bytes  # b"" unless kind == "audio"
    payload_type: int  # for audio the packet's PT, else the stream's last audio PT
    duration: int  # > 0
    next_payload: bytes = b""  # lost slots only: the payload of the packet right after the gap, same PT


@dataclass(slots=True)
class JitterStats:
    """Counters of one buffer (packets unless the name has a unit)."""

    received: int = 0  # packets pushed
    duplicates: int = 0  # same extended sequence number already held or played
    late: int = 0  # arrived after their slot was played (as lost, or covered by another packet)
    reordered: int = 0  # arrived after a packet with a higher sequence number
    lost: int = 0  # slots played as lost
    lost_ms: float = 0.0
    silence_ms: float = 0.0  # intended gaps, capped pauses and stream-change gaps filled with silence
    ssrc_changes: int = 0
    restarts: int = 0  # same SSRC, but the sequence or timestamp line jumped (RFC 3550 A.1 re-sync)
    strays: int = 0  # packets of a stream that never confirmed (dropped)
    capped_gaps: int = 0  # timestamp gaps longer than max_gap_ms (filled with at most max_gap_ms)
    overflows: int = 0  # packets played before their time because MAX_HELD were held
    empty: int = 0  # packets that cover no time (empty payload): dropped
    non_audio: int = 0  # sequence numbers taken by other payloads (mark_non_audio)
    dropped_slots: int = 0  # emitted slots discarded because pop() was not called for MAX_READY slots


class _Held(NamedTuple):
    ts: int  # extended timestamp
    seq: int  # extended sequence number (unique among held packets)
    arrival: float
    duration: int
    packet: RtpPacket


def _signed(delta: int, bits: int) -> int:
    delta &= (1 << bits) - 1
    return delta - (1 << bits) if delta >= 1 << (bits - 1) else delta


class JitterBuffer:
    """One RTP stream's jitter buffer. See the module docstring for the rules.

    ``duration_of(payload_type, payload)`` gives the timestamp units a packet covers; the default,
    ``len(payload)``, is right for PCMU/PCMA (one byte per 8 kHz sample) and for G.722 (one byte per two
    16 kHz samples, on the 8 kHz RTP clock RFC 3551 gives it).
    """

    def __init__(
        self,
        clock_rate: int = 8000,
        depth_ms: int = 80,
        max_gap_ms: int = 2000,
        duration_of: Callable[[int, bytes], int] | None = None,
    ) -> None:
        if clock_rate <= 0 or depth_ms < 0 or max_gap_ms <= 0:
            raise ValueError("clock_rate and max_gap_ms must be positive, depth_ms non-negative")
        self.clock_rate = clock_rate
        self.depth_s = depth_ms / 1000
        self.max_gap = max(1, clock_rate * max_gap_ms // 1000)  # timestamp units
        self._min_frame = max(1, clock_rate // 100)  # 10 ms: size bounds of one lost/silence piece
        self._max_frame = max(1, clock_rate * 120 // 1000)
        self.duration_of = duration_of or (lambda _pt, payload: len(payload))  # may be swapped on a codec change
        self.stats = JitterStats()
        self._ready: list[Playout] = []
        self._last_now = float("-inf")
        self._last_pt: int | None = None
        self._frame = max(1, clock_rate // 50)  # last audio packet's duration (20 ms until one is played)
        self._probation: list[tuple[RtpPacket, float]] = []
        self._probation_ticks = 0
        self._retired: tuple[int, int, float] | None = None  # ssrc, last sequence (16-bit), until
        # --- per stream (reset by _start_stream) ---
        self._ssrc: int | None = None
        self._max_seq = 0  # highest extended sequence number seen
        self._ref_ts = 0  # extended timestamp of that packet: the reference for unwrapping
        self._first_ts = 0
        self._head: int | None = None  # extended timestamp up to which slots were emitted; None: not started
        self._last_seq = 0  # extended sequence number of the last audio slot
        self._last_arrival = 0.0
        self._prefix = 0  # silence owed before the stream's first slot (stream change)
        self._held: list[_Held] = []
        self._held_seqs: set[int] = set()
        self._played: deque[int] = deque()
        self._played_set: set[int] = set()
        self._non_audio: set[int] = set()
        self._transit: deque[tuple[float, float]] = deque()  # (arrival, transit): monotonic min-queue

    # --- public ------------------------------------------------------------------------------------
    @property
    def held(self) -> int:
        """Packets currently held (waiting for their playout time)."""
        return len(self._held)

    def push(self, packet: RtpPacket, now: float) -> None:
        """Take one packet that arrived at ``now``. Never raises for any packet; drops are counted."""
        now = self._clock(now)
        self.stats.received += 1
        if self._last_pt is None:
            self._last_pt = packet.payload_type
        if self._ssrc is None:
            self._start_stream(packet, now)
        if packet.ssrc == self._ssrc:
            ext = self._unwrap(packet)
            if ext is not None and not (self._head is not None and ext[1] < self._head - self.max_gap):
                self._tick_probation()
                self._accept(packet, now, *ext)
                return
        if self._is_retired(packet, now):
            self.stats.late += 1
            return
        self._probate(packet, now)

    def mark_non_audio(self, packet: RtpPacket) -> None:
        """Account for a packet of this stream that carries no audio (an RFC 4733 event, say).

        It takes a sequence number, so without this the gap it leaves in the audio would look like loss;
        with it, such a gap plays as silence. Packets of another SSRC are ignored.
        """
        if packet.ssrc != self._ssrc:
            return
        ext = self._unwrap(packet)
        if ext is None:
            return
        self.stats.non_audio += 1
        self._max_seq = max(self._max_seq, ext[0])
        self._non_audio.add(ext[0])
        if len(self._non_audio) > _MEMORY:
            self._non_audio.discard(min(self._non_audio))

    def pop(self, now: float) -> list[Playout]:
        """Every slot whose playout time has come by ``now``, in timestamp order."""
        self._drain(self._clock(now))
        ready, self._ready = self._ready, []
        return ready

    def flush(self) -> list[Playout]:
        """End of the call: everything still held, with the gaps before held packets filled. A packet alone
        on probation (a stream that never confirmed) is dropped."""
        self.stats.strays += len(self._probation)
        self._probation = []
        self._drain(None)
        ready, self._ready = self._ready, []
        return ready

    # --- packets in --------------------------------------------------------------------------------
    def _clock(self, now: float) -> float:
        """Arrival times must not go backwards; a caller's clock that does is held at its maximum."""
        if now > self._last_now:
            self._last_now = now
        return self._last_now

    def _unwrap(self, packet: RtpPacket) -> tuple[int, int] | None:
        """(extended sequence, extended timestamp), or None if the sequence jumped (RFC 3550 A.1)."""
        delta = _signed(packet.sequence - self._max_seq, 16)
        if delta > MAX_DROPOUT or delta < -MAX_MISORDER:
            return None
        return self._max_seq + delta, self._ref_ts + _signed(packet.timestamp - self._ref_ts, 32)

    def _accept(self, packet: RtpPacket, arrival: float, seq: int, ts: int) -> None:
        duration = self.duration_of(packet.payload_type, packet.payload)
        if duration <= 0:
            self.stats.empty += 1
            return
        if seq in self._held_seqs or seq in self._played_set:
            self.stats.duplicates += 1
            return
        if seq < self._max_seq:
            self.stats.reordered += 1
        elif seq > self._max_seq:
            self._max_seq, self._ref_ts = seq, ts
        if self._head is not None and (seq <= self._last_seq or ts < self._head):
            self.stats.late += 1
            return
        bisect.insort(self._held, _Held(ts, seq, arrival, duration, packet))
        self._held_seqs.add(seq)
        line = self._first_ts if self._head is None else self._head
        if not self._transit or abs(ts - line) <= self.max_gap:  # far-off timestamps do not move the clock
            self._note_transit(arrival, ts)
        while len(self._held) > MAX_HELD:
            self.stats.overflows += 1
            self._drain(None, max_audio=1)

    def _note_transit(self, arrival: float, ts: int) -> None:
        transit = arrival - ts / self.clock_rate
        q = self._transit
        while q and q[-1][1] >= transit:
            q.pop()
        q.append((arrival, transit))
        while len(q) > 1 and (q[0][0] < arrival - TRANSIT_WINDOW_S or len(q) > _MEMORY):
            q.popleft()

    # --- stream changes ----------------------------------------------------------------------------
    def _fits_probation(self, packet: RtpPacket) -> bool:
        first = self._probation[0][0]
        return packet.ssrc == first.ssrc and abs(_signed(packet.sequence - first.sequence, 16)) <= MAX_MISORDER

    def _probate(self, packet: RtpPacket, now: float) -> None:
        if self._probation and self._fits_probation(packet):
            if any((p.sequence - packet.sequence) % 65536 == 0 for p, _ in self._probation):
                self.stats.duplicates += 1
                return
            self._probation.append((packet, now))
            if len(self._probation) >= PROBATION_PACKETS:
                self._switch(now)
            return
        self.stats.strays += len(self._probation)
        self._probation = [(packet, now)]
        self._probation_ticks = 0

    def _tick_probation(self) -> None:
        if self._probation:
            self._probation_ticks += 1
            if self._probation_ticks > STRAY_AFTER:
                self.stats.strays += len(self._probation)
                self._probation = []

    def _is_retired(self, packet: RtpPacket, now: float) -> bool:
        r = self._retired
        return (
            r is not None
            and now < r[2]
            and packet.ssrc == r[0]
            and abs(_signed(packet.sequence - r[1], 16)) <= MAX_MISORDER
        )

    def _switch(self, now: float) -> None:
        """The probation packets confirmed a new stream: play out the old one, start the new one."""
        packets, self._probation = self._probation, []
        if packets[0][0].ssrc == self._ssrc:
            self.stats.restarts += 1
        else:
            self.stats.ssrc_changes += 1
        self._drain(None)
        old_end = None if self._head is None else self._playout_time(self._head)
        if self._ssrc is not None:
            self._retired = (self._ssrc, self._max_seq & 0xFFFF, now + RETIRED_GRACE_S)
        first, arrival = packets[0]
        self._start_stream(first, arrival)
        if old_end is not None:
            gap = round((arrival + self.depth_s - old_end) * self.clock_rate)
            self._prefix = min(self.max_gap, max(0, gap))
        for packet, at in packets:
            ext = self._unwrap(packet)
            if ext is not None:
                self._accept(packet, at, *ext)

    def _start_stream(self, packet: RtpPacket, arrival: float) -> None:
        self._ssrc = packet.ssrc
        self._max_seq = packet.sequence & 0xFFFF
        self._ref_ts = self._first_ts = packet.timestamp & 0xFFFFFFFF
        self._head = None
        self._last_seq = 0
        self._last_arrival = arrival
        self._prefix = 0
        self._held = []
        self._held_seqs = set()
        self._played.clear()
        self._played_set.clear()
        self._non_audio.clear()
        self._transit.clear()

    # --- slots out ---------------------------------------------------------------------------------
    def _playout_time(self, ts: int) -> float:
        return ts / self.clock_rate + self._transit[0][1] + self.depth_s

    def _drain(self, now: float | None, max_audio: int | None = None) -> None:
        """Emit into ``_ready`` every slot due by ``now`` (all of them when ``now`` is None), stopping after
        ``max_audio`` audio slots if given."""
        audio = 0
        while self._held and (max_audio is None or audio < max_audio):
            h = self._held[0]
            if self._head is None:  # the stream's first slot: it fixes the start of the timeline
                if now is not None and self._playout_time(h.ts) > now:
                    return
                self._head, self._last_seq = h.ts, h.seq - 1
                if self._prefix:
                    self._fill("silence", self._prefix, advance=False)
                    self._prefix = 0
            if h.seq <= self._last_seq or h.ts < self._head:  # its slot was covered meanwhile
                self._take()
                self.stats.late += 1
                continue
            if now is not None and self._playout_time(self._head) > now:
                return
            hole = h.ts - self._head
            if hole == 0:
                self._play(self._take())
                audio += 1
            elif hole > self.max_gap:
                # A pause (or a timestamp jump) longer than max_gap: fill what wall time says, at most
                # max_gap, and restart the playout clock at the packet after it.
                quiet_s = h.arrival - self._last_arrival - self._frame / self.clock_rate
                fill = min(self.max_gap, max(0, round(quiet_s * self.clock_rate)))
                if fill:
                    self._fill("silence", fill, advance=False)
                self._head = h.ts
                self.stats.capped_gaps += 1
                self._transit.clear()
                self._note_transit(h.arrival, h.ts)
            else:
                missing = h.seq - self._last_seq - 1
                if missing > 0 and self._non_audio:
                    missing -= sum(1 for s in self._non_audio if self._last_seq < s < h.seq)
                frame = min(max(self._frame, self._min_frame), self._max_frame)
                lost = 0 if h.packet.marker or missing <= 0 else min(hole, missing * frame)
                silence_end = h.ts - lost
                if self._head < silence_end:
                    self._fill("silence", min(frame, silence_end - self._head))
                else:
                    d = min(frame, h.ts - self._head)
                    follows = self._head + d == h.ts and h.packet.payload_type == self._last_pt
                    self._fill("lost", d, next_payload=h.packet.payload if follows else b"")

    def _take(self) -> _Held:
        h = self._held.pop(0)
        self._held_seqs.discard(h.seq)
        return h

    def _play(self, h: _Held) -> None:
        self._emit(Playout("audio", h.packet.payload, h.packet.payload_type, h.duration))
        self._head = h.ts + h.duration
        self._last_seq = h.seq
        self._last_arrival = h.arrival
        self._last_pt = h.packet.payload_type
        self._frame = h.duration
        self._played.append(h.seq)
        self._played_set.add(h.seq)
        if len(self._played) > _MEMORY:
            self._played_set.discard(self._played.popleft())

    def _fill(self, kind: Literal["lost", "silence"], duration: int, advance: bool = True,
              next_payload: bytes = b"") -> None:
        self._emit(Playout(kind, b"", self._last_pt if self._last_pt is not None else 0, duration, next_payload))
        if advance:
            assert self._head is not None
            self._head += duration
        ms = duration * 1000 / self.clock_rate
        if kind == "lost":
            self.stats.lost += 1
            self.stats.lost_ms += ms
        else:
            self.stats.silence_ms += ms

    def _emit(self, slot: Playout) -> None:
        self._ready.append(slot)
        if len(self._ready) > MAX_READY:
            del self._ready[0]
            self.stats.dropped_slots += 1


__all__ = ["JitterBuffer", "JitterStats", "Playout", "MAX_DROPOUT", "MAX_MISORDER", "MAX_HELD"]
