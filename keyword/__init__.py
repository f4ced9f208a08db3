"""Live call analytics (issue #6): PII redaction is built (`redact.py`); keyword/intent/alert/unresolved
workers over the Redis transcript streams are not built yet."""
