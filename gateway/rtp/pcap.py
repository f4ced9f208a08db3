"""Build RTP captures (classic pcap, Ethernet/IPv4/UDP) from speech audio, optionally impaired.

Why: to test the SIP/SIPREC path with a real SIP peer we need a peer that also sends media. sipp does
SIP and replays a pcap's RTP with ``play_pcap_audio``, shifting every packet's ports by one offset, so
a capture with the customer leg to port P and the agent leg to P+2 lands on the two streams of a
SIPREC session (our port pool gives a call's streams adjacent pairs). Impairments (loss, duplicates,
jitter that reorders packets) are baked into the capture's order and timestamps, so the same network
trouble is replayed every run. ``callscribe sip-pcap`` exposes this for trying a deployment by hand.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from callscribe.audio import encode_g711, float_to_pcm16, resample

from .packet import build_rtp, build_telephone_event

G711 = {"PCMU": (0, "mulaw"), "PCMA": (8, "alaw")}
OPUS_PT = 111  # the dynamic payload type the sipp scenarios map to opus/48000/2
DTMF_PT = 101


@dataclass(frozen=True, slots=True)
class Impairment:
    loss: float = 0.0  # fraction of packets dropped
    duplicate: float = 0.0  # fraction sent twice
    jitter_ms: float = 0.0  # each packet delayed by a uniform 0..jitter_ms (so some arrive out of order)
    seed: int = 7


@dataclass(frozen=True, slots=True)
class Leg:
    audio: np.ndarray  # 16 kHz float32 mono
    port_offset: int  # 0 for the first stream, 2 for the second, ...
    ssrc: int
    codec: str = "PCMU"  # "PCMU" | "PCMA" | "OPUS"
    dtmf: tuple[tuple[float, str], ...] = ()  # (time s, symbol) key presses sent as RFC 4733 events
    opus_fec_loss_pct: int = 10  # Opus only: the loss the encoder plans its in-band FEC for (0: no FEC)
    opus_bitrate: int = 24000  # Opus only: bit/s (wideband voice; WebRTC phones use 24-32 kbit/s)


def _frames(leg: Leg, ptime_ms: int) -> tuple[int, int, list[bytes]]:
    """(payload type, RTP timestamp units per packet, payloads) of a leg's audio: G.711 at 8 kHz, or Opus
    from the 16 kHz audio (RTP clock 48 kHz, RFC 7587) with in-band FEC as a WebRTC phone sends it."""
    if leg.codec == "OPUS":
        import opuslib_next  # optional: only to build Opus captures

        enc = opuslib_next.Encoder(16000, 1, "voip")
        enc.bitrate = leg.opus_bitrate
        enc.inband_fec = 1 if leg.opus_fec_loss_pct else 0
        enc.packet_loss_perc = leg.opus_fec_loss_pct
        pcm = float_to_pcm16(leg.audio.astype(np.float32))
        step = 16 * ptime_ms
        return OPUS_PT, 48 * ptime_ms, [enc.encode(pcm[i * step:(i + 1) * step].tobytes(), step)
                                        for i in range(len(pcm) // step)]
    pt, law = G711[leg.codec]
    pcm8 = float_to_pcm16(resample(leg.audio.astype(np.float32), 16000, 8000))
    step = 8 * ptime_ms
    return pt, step, [encode_g711(pcm8[i * step:(i + 1) * step], law) for i in range(len(pcm8) // step)]


def two_leg_call(customer: Sequence[np.ndarray], agent: Sequence[np.ndarray], gap_s: float = 0.8,
                 lead_s: float = 0.5, rate_hz: int = 16000) -> dict[str, np.ndarray]:
    """A two-leg call from recordings: the legs take turns (customer first, ``gap_s`` between turns), each
    leg silent while the other speaks, as SIPREC streams are. Returns {"customer": audio, "agent": audio},
    equal lengths."""
    pieces: list[tuple[str, np.ndarray, float]] = []
    t = lead_s
    for i in range(max(len(customer), len(agent))):
        for side, clips in (("customer", customer), ("agent", agent)):
            if i < len(clips):
                pieces.append((side, clips[i], t))
                t += len(clips[i]) / rate_hz + gap_s
    total = int((t + 0.5) * rate_hz)
    tracks = {"customer": np.zeros(total, np.float32), "agent": np.zeros(total, np.float32)}
    for side, audio, start in pieces:
        i = int(start * rate_hz)
        tracks[side][i:i + len(audio)] = audio
    return tracks


def leg_packets(leg: Leg, ptime_ms: int = 20) -> list[tuple[float, bytes]]:
    """(send time s, RTP packet) of one leg, in order, RFC 4733 events replacing the audio packets they
    overlap (as phones do), each event 6 packets + 3 end packets."""
    pt, step, frames = _frames(leg, ptime_ms)
    n = len(frames)
    events = {int(t * 1000 // ptime_ms): sym for t, sym in leg.dtmf}
    out: list[tuple[float, bytes]] = []
    seq = random.Random(leg.ssrc).randrange(0, 65536)
    ts0 = random.Random(leg.ssrc + 1).randrange(0, 2**32)
    i = 0
    while i < n:
        t = i * ptime_ms / 1000
        if i in events:
            code = "0123456789*#ABCD".index(events[i])
            ev_ts = (ts0 + i * step) % 2**32
            for k in range(9):  # 6 updates, then the end flag 3 times (RFC 4733 2.5.1.4)
                end = k >= 6
                dur = step * min(k + 1, 6)
                payload = build_telephone_event(code, end, 10, dur)
                out.append((t + min(k, 5) * ptime_ms / 1000, build_rtp(DTMF_PT, seq % 65536, ev_ts, leg.ssrc, payload, marker=k == 0)))
                seq += 1
            i += 6
            continue
        out.append((t, build_rtp(pt, seq % 65536, (ts0 + i * step) % 2**32, leg.ssrc, frames[i], marker=i == 0)))
        seq += 1
        i += 1
    return out


def schedule(legs: Sequence[Leg], impairment: Impairment = Impairment(), ptime_ms: int = 20) -> list[tuple[float, int, bytes]]:
    """Every leg's packets as (arrival time s, port offset, packet), impaired, sorted by arrival."""
    rng = random.Random(impairment.seed)
    out: list[tuple[float, int, bytes]] = []
    for leg in legs:
        for t, pkt in leg_packets(leg, ptime_ms):
            if rng.random() < impairment.loss:
                continue
            delay = rng.uniform(0, impairment.jitter_ms) / 1000 if impairment.jitter_ms else 0.0
            out.append((t + delay, leg.port_offset, pkt))
            if rng.random() < impairment.duplicate:
                out.append((t + delay + 0.001, leg.port_offset, pkt))
    out.sort(key=lambda x: x[0])
    return out


def write_pcap(path: str | Path, packets: Sequence[tuple[float, int, bytes]], base_port: int = 6000,
               src: str = "10.0.0.1", dst: str = "10.0.0.2", src_port: int = 4000) -> None:
    """Write a pcap (DLT_EN10MB). sipp replaces addresses and shifts ports; only the offsets matter."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ident, (t, offset, payload) in enumerate(packets):
            udp_len = 8 + len(payload)
            udp = struct.pack("!HHHH", src_port + offset, base_port + offset, udp_len, 0) + payload
            ip = _ipv4(src, dst, udp, ident)
            frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
            sec = int(t)
            f.write(struct.pack("<IIII", sec, int(round((t - sec) * 1e6)) % 1_000_000, len(frame), len(frame)))
            f.write(frame)


def _ipv4(src: str, dst: str, payload: bytes, ident: int) -> bytes:
    s = bytes(int(x) for x in src.split("."))
    d = bytes(int(x) for x in dst.split("."))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident % 65536, 0, 64, 17, 0, s, d)
    csum = _checksum(header)
    return header[:10] + struct.pack("!H", csum) + header[12:] + payload


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def duration_s(packets: Sequence[tuple[float, int, bytes]]) -> float:
    return packets[-1][0] if packets else 0.0


__all__ = ["Impairment", "Leg", "two_leg_call", "leg_packets", "schedule", "write_pcap", "duration_s", "DTMF_PT", "OPUS_PT"]
