"""ASR stage: the batched Whisper engine (engine), the cross-call scheduler (scheduler), hallucination guards
(filters), and the scale-out path to worker processes over Redis (jobs, remote, worker)."""
