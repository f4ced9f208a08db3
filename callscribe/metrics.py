"""Prometheus metrics of a running service, read live from the stages' own counters.

A custom collector (no duplicated bookkeeping): every scrape reads the scheduler's, the publisher's and the
pipeline's stats. Exposed by the ingest server at ``GET /metrics``; ``GET /health`` answers ``ok``.
The overload policy is visible here: partials skipped/replaced (cadence stretching), temperature retries
skipped, finals pending, calls refused at capacity, events buffered while Redis is down.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceCollector:
    def __init__(self, pipeline, publisher=None, ingest=None) -> None:
        self.pipeline = pipeline
        self.publisher = publisher
        self.ingest = ingest
        self.sip = None  # the SipServer, when SIP is on

    def collect(self):
        s = self.pipeline.scheduler.stats
        yield GaugeMetricFamily("callscribe_calls_live", "Calls in progress on this node", value=len(self.pipeline.calls))
        if self.ingest is not None:
            yield CounterMetricFamily("callscribe_calls_refused", "WebSocket calls refused (capacity, source quota, reused call id)", value=self.ingest.refused)
            yield CounterMetricFamily("callscribe_ingest_unauthorized", "WebSocket handshakes refused 401/403 (no or wrong token)", value=getattr(self.ingest, "unauthorized", 0))
            yield CounterMetricFamily("callscribe_connections", "Ingest connections accepted", value=self.ingest.connections)
        yield CounterMetricFamily("callscribe_asr_batches", "Decode batches run", value=s.batches)
        yield CounterMetricFamily("callscribe_asr_finals_decoded", "Finals decoded", value=s.finals_decoded)
        yield CounterMetricFamily("callscribe_asr_partials_decoded", "Partials decoded", value=s.partials_decoded)
        yield CounterMetricFamily("callscribe_asr_partials_skipped", "Partials skipped (stale when their batch ran)", value=s.partials_skipped)
        yield CounterMetricFamily("callscribe_asr_partials_replaced", "Partial requests merged into a waiting one", value=s.partials_replaced)
        yield CounterMetricFamily("callscribe_asr_fallbacks_skipped", "Temperature retries skipped under load", value=getattr(s, "fallbacks_skipped", 0))
        yield CounterMetricFamily("callscribe_asr_decode_seconds", "Seconds spent decoding", value=s.decode_s)
        yield GaugeMetricFamily("callscribe_asr_pending_finals", "Finals waiting for the model", value=s.pending_finals)
        yield GaugeMetricFamily("callscribe_asr_pending_partials", "Partial requests waiting", value=s.pending_partials)
        buckets, total, acc = [], 0, 0
        for size in (1, 2, 4, 8, 16, 32, 64, 128, 256):
            acc = sum(n for b, n in s.batch_sizes.items() if b <= size)
            buckets.append((str(size), acc))
        total = sum(s.batch_sizes.values())
        buckets.append(("+Inf", total))
        yield HistogramMetricFamily("callscribe_asr_batch_size", "Segments per decode batch", buckets=buckets,
                                    sum_value=sum(b * n for b, n in s.batch_sizes.items()))
        if self.sip is not None:
            yield from _sip_metrics(self.sip)
        if self.publisher is not None:
            p = self.publisher.stats
            yield CounterMetricFamily("callscribe_redis_published", "Events written to Redis", value=p.published)
            yield CounterMetricFamily("callscribe_redis_partials_dropped", "Partials dropped (queue full or Redis down)", value=p.partials_dropped)
            yield CounterMetricFamily("callscribe_redis_outages", "Redis outages seen", value=p.outages)
            yield GaugeMetricFamily("callscribe_redis_buffered", "Events waiting to be written", value=p.buffered)
            yield GaugeMetricFamily("callscribe_redis_up", "1 when Redis answers", value=1 if p.redis_up else 0)
            yield CounterMetricFamily("callscribe_redis_rejected", "Events Redis refused for good (logged with their call id)", value=p.rejected)


def _sip_metrics(sip):
    st = sip.stats
    yield GaugeMetricFamily("callscribe_sip_calls_live", "SIP/SIPREC calls in progress", value=len(sip.calls))
    yield CounterMetricFamily("callscribe_sip_requests", "SIP requests received", value=st.requests)
    yield CounterMetricFamily("callscribe_sip_malformed", "SIP messages dropped or answered 400 as malformed", value=st.malformed)
    yield CounterMetricFamily("callscribe_sip_calls_accepted", "SIP calls accepted", value=st.calls_accepted)
    yield CounterMetricFamily("callscribe_sip_calls_refused_capacity", "SIP calls refused 503 at capacity", value=st.calls_refused_capacity)
    yield CounterMetricFamily("callscribe_sip_calls_refused_other", "SIP calls refused for codec/body/extension", value=st.calls_refused_other)
    yield CounterMetricFamily("callscribe_sip_forbidden", "SIP requests refused 403 (source not in sip_allow)", value=getattr(st, "forbidden", 0))
    yield CounterMetricFamily("callscribe_sip_shed", "INVITEs answered 503 at once under a burst (load shedding)", value=getattr(st, "shed", 0))
    yield CounterMetricFamily("callscribe_sip_calls_refused_quota", "SIP calls refused 503: their source at its quota", value=getattr(st, "calls_refused_quota", 0))
    ended = CounterMetricFamily("callscribe_sip_calls_ended", "SIP calls ended, by reason", labels=["reason"])
    for reason, n in sorted(st.calls_ended.items()):
        ended.add_metric([reason], n)
    yield ended
    yield CounterMetricFamily("callscribe_rtp_concealed_seconds", "Lost RTP audio concealed at the receiver, ended calls",
                              value=st.media_concealed_ms / 1000)
    yield CounterMetricFamily("callscribe_rtp_fec_seconds", "Lost Opus audio decoded from the next packet's in-band FEC, ended calls",
                              value=st.media_fec_ms / 1000)
    yield GaugeMetricFamily("callscribe_rtp_port_pairs_free", "Free RTP/RTCP port pairs", value=sip.pool.free_pairs)
    packets = lost = late = malformed = 0
    for call in list(sip.calls.values()):
        for s in call.streams:
            packets += s.stats.packets
            malformed += s.stats.malformed
            lost += s.jitter.stats.lost
            late += s.jitter.stats.late
    yield GaugeMetricFamily("callscribe_rtp_packets_live_calls", "RTP packets received by live calls", value=packets)
    yield GaugeMetricFamily("callscribe_rtp_lost_live_calls", "RTP slots concealed as lost in live calls", value=lost)
    yield GaugeMetricFamily("callscribe_rtp_late_live_calls", "RTP packets too late for playout in live calls", value=late)
    yield GaugeMetricFamily("callscribe_rtp_malformed_live_calls", "Malformed RTP packets dropped in live calls", value=malformed)


def render(collector: ServiceCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
