"""Build ``silero_vad_v6_batched.onnx`` (committed next to this file) from the Silero VAD v6 model that ships
inside faster-whisper (``faster_whisper/assets/silero_vad_v6.onnx``; Silero VAD, MIT licence, snakers4/silero-vad).

The shipped graph scores a sequence of 32 ms chunks of ONE stream: ``input`` [T, 576] (64 samples of context +
512 new), LSTM state ``h``/``c`` [1, 1, 128]. Its convolutional encoder works per chunk; only the LSTM runs
along the sequence, with batch 1. The batched graph keeps every weight and operator and changes only shapes:

- ``input`` holds only real chunks, R rows of [576], any order (the encoder works per row, so no compute goes to
  padding);
- ``h``/``c`` (and ``hn``/``cn``) become [1, B, 128]: one LSTM state per stream;
- a new input ``slots`` [T*B] (int64) places the encoder's rows on the LSTM's time-major grid (slot t*B + b =
  chunk t of stream b): the index of that chunk's row in ``input``, or R for an empty slot (a zero row);
- a new input ``lengths`` [B] (int32) feeds the LSTM's ``sequence_lens``, so a stream with fewer chunks than T
  stops at its own last chunk and its state comes out from there;
- ``speech_probs`` comes out as [B*T], stream-major (stream b's T probabilities, then stream b+1's; entries past
  a stream's length mean nothing).

B = 1 with ``slots`` = 0..T-1 and ``lengths`` = [T] gives exactly the shipped model's output (tests/test_vad_batch.py
checks the batched use on real speech). Needs the ``onnx`` package, which callscribe does not depend on: ``pip install onnx`` and run
``python -m callscribe.vad.build_silero_batched`` (or ``python vad/build_silero_batched.py``) to rebuild it.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

OUT = Path(__file__).with_name("silero_vad_v6_batched.onnx")


def build(src: str | Path, dst: str | Path = OUT) -> str:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    for vi in list(g.input) + list(g.output):
        if vi.name in ("h", "c", "hn", "cn"):
            dim = vi.type.tensor_type.shape.dim[1]
            dim.ClearField("dim_value")
            dim.dim_param = "streams"
    g.input.append(helper.make_tensor_value_info("slots", TensorProto.INT64, ["slots"]))
    g.input.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["streams"]))
    nodes = list(g.node)
    (at,) = [i for i, n in enumerate(nodes) if n.name == "/Transpose"]  # encoder output [T*B, 1, 128]
    (lstm,) = [n for n in nodes if n.op_type == "LSTM"]
    assert lstm.input[0] == nodes[at].output[0] and lstm.input[4] == ""
    g.initializer.extend([
        numpy_helper.from_array(np.array([-1], np.int64), "batched/minus_one"),
        numpy_helper.from_array(np.array([128], np.int64), "batched/hidden"),
        numpy_helper.from_array(np.array([0], np.int64), "batched/axis0"),
        numpy_helper.from_array(np.array([1], np.int64), "batched/one"),
        numpy_helper.from_array(np.array([2], np.int64), "batched/two"),
        numpy_helper.from_array(np.zeros((1, 1, 128), np.float32), "batched/zero_row"),
    ])
    added = [
        helper.make_node("Concat", [nodes[at].output[0], "batched/zero_row"], ["batched/rows"], axis=0, name="batched/Rows"),
        helper.make_node("Gather", ["batched/rows", "slots"], ["batched/grid"], axis=0, name="batched/Grid"),
        helper.make_node("Shape", ["h"], ["batched/h_shape"], name="batched/Shape"),
        helper.make_node("Slice", ["batched/h_shape", "batched/one", "batched/two", "batched/axis0"], ["batched/streams"],
                         name="batched/Slice"),
        helper.make_node("Concat", ["batched/minus_one", "batched/streams", "batched/hidden"], ["batched/tbh"], axis=0,
                         name="batched/Concat"),
        helper.make_node("Reshape", ["batched/grid", "batched/tbh"], ["batched/lstm_in"], name="batched/Reshape"),
    ]
    lstm.input[0] = "batched/lstm_in"
    lstm.input[4] = "lengths"
    del g.node[:]
    g.node.extend(nodes[: at + 1] + added + nodes[at + 1 :])
    model.producer_name = "callscribe vad/build_silero_batched.py"
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    Path(dst).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    if len(sys.argv) > 1:  # the shipped model's path (when faster-whisper is installed elsewhere)
        src = Path(sys.argv[1])
    else:
        import faster_whisper

        src = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"
    print(OUT, build(src))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
