"""Voice activity detection and endpointing, one :class:`ChannelVad` per channel of a call.

webrtcvad classifies 10-30 ms frames; :class:`Endpointer` (pure logic) turns those flags into utterances
(segments); Silero VAD (the ONNX model inside faster-whisper) gates each segment so noise, music and tones
never reach Whisper.
"""

from .endpointer import Endpointer, EndpointerConfig, SpeechAborted, SpeechEnded, SpeechStarted, VadEvent
from .channel import ChannelVad

__all__ = ["ChannelVad", "Endpointer", "EndpointerConfig", "SpeechStarted", "SpeechEnded", "SpeechAborted", "VadEvent"]
