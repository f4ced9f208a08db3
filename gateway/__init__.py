"""Gateway: WebSocket ingest (ingest, with its sans-I/O protocol) and the Python client (client)."""
