"""RTP media in (RFC 3550): packet parsing, RFC 4733 telephone-events, a jitter buffer with loss
concealment, payload decoding to 16 kHz float audio, and the asyncio receivers with their port pool."""
