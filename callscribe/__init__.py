"""callscribe: real-time call transcription and monitoring.

Public surface: the ``callscribe`` CLI (serve, demo, transcribe, stream), :class:`Config`, the event classes
in :mod:`callscribe.events`, and the ingest client :class:`callscribe.gateway.client.IngestClient`.
"""

from .config import Config
from .errors import CallscribeError
from .events import SCHEMA_VERSION, CallEnded, CallStarted, Transcript, Word

__version__ = "0.1.0"
__all__ = ["Config", "CallscribeError", "SCHEMA_VERSION", "CallStarted", "Transcript", "CallEnded", "Word"]
