"""SIP user-agent server (RFC 3261) and SIPREC recording server (RFC 7865/7866) for call audio in.

Sans-I/O cores (message, sdp, siprec, transaction) and a thin asyncio shell (server) that hands calls to
the pipeline; see docs/sip.md.
"""
