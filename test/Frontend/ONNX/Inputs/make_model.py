"""Builds the binary ONNX models that the importer's lit tests need but that
ONNX's textual syntax (1.12) cannot express: named nodes, external data,
unusual dtypes, large weights. Usage: make_model.py CASE OUT_DIR."""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(model, out_dir, name="model.onnx"):
    path = os.path.join(out_dir, name)
    onnx.save(model, path)
    return path


def make(nodes, inputs, outputs, initializers=(), opsets=(("", 17),)):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    return model


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def case_unsupported(out):
    nodes = [
        helper.make_node("Det", ["X"], ["Y"], name="first_det"),
        helper.make_node("NonZero", ["X"], ["Z"]),
        helper.make_node("Relu", ["X"], ["R"], name="fine"),
        helper.make_node("Custom", ["R"], ["W"], name="third",
                         domain="com.example"),
    ]
    m = make(nodes, [vi("X", TensorProto.FLOAT, [3, 3])],
             [vi("Y", TensorProto.FLOAT, []), vi("Z", TensorProto.INT64, [2, None]),
              vi("W", TensorProto.FLOAT, [3, 3])],
             opsets=(("", 17), ("com.example", 1)))
    save(m, out)


def _external_model(out, location):
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "W")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "64")):
        e = w.external_data.add()
        e.key, e.value = k, v
    nodes = [helper.make_node("MatMul", ["X", "W"], ["Y"])]
    m = make(nodes, [vi("X", TensorProto.FLOAT, [1, 4])],
             [vi("Y", TensorProto.FLOAT, [1, 4])], [w])
    save(m, out)


def case_external_ok(out):
    np.arange(16, dtype=np.float32).tofile(os.path.join(out, "weights.bin"))
    _external_model(out, "weights.bin")


def case_external_escape(out):
    np.arange(16, dtype=np.float32).tofile(os.path.join(out, "..", "secret.bin"))
    _external_model(out, "../secret.bin")


def case_external_absolute(out):
    _external_model(out, "/etc/passwd")


def case_external_missing(out):
    _external_model(out, "nothere.bin")


def case_external_short(out):
    np.arange(8, dtype=np.float32).tofile(os.path.join(out, "weights.bin"))
    _external_model(out, "weights.bin")


def case_external_large(out):
    """Large external initializers (left in the mapped file) sharing one file
    in a subdirectory, at offsets aligned to 4096, to 4 only and to 2 only
    (f32: the last is copied), and a small external shape (copied into the
    model: shape inference needs its value)."""
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    w1 = (np.arange(128 * 256, dtype=np.float32) * 0.5).reshape(128, 256)
    w2 = (np.arange(256 * 128, dtype=np.float32) + 1).reshape(256, 128)
    w3 = (np.arange(128 * 128, dtype=np.float32) - 2).reshape(128, 128)
    shape = np.array([128, 1], dtype=np.int64)
    blobs, offset, inits = b"", 0, []
    for name, arr, pad in (("W1", w1, 0), ("W2", w2, 4), ("W3", w3, 6),
                           ("S", shape, 2)):
        blobs += b"\0" * pad
        offset += pad
        t = numpy_helper.from_array(arr, name)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "data/weights.bin"), ("offset", str(offset)),
                     ("length", str(arr.nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        inits.append(t)
        blobs += arr.tobytes()
        offset += arr.nbytes
    with open(os.path.join(out, "data", "weights.bin"), "wb") as f:
        f.write(blobs)
    nodes = [helper.make_node("MatMul", ["X", "W1"], ["H1"]),
             helper.make_node("MatMul", ["H1", "W2"], ["H2"]),
             helper.make_node("MatMul", ["H2", "W3"], ["H3"]),
             helper.make_node("Reshape", ["H3", "S"], ["Y"])]
    m = make(nodes, [vi("X", TensorProto.FLOAT, [1, 128])],
             [vi("Y", TensorProto.FLOAT, ["a", "b"])], inits)
    save(m, out)


def case_bad_dtype(out):
    nodes = [helper.make_node("Identity", ["X"], ["Y"])]
    m = make(nodes, [vi("X", TensorProto.COMPLEX64, [2])],
             [vi("Y", TensorProto.COMPLEX64, [2])])
    save(m, out)


def case_large_weight(out):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W")
    nodes = [helper.make_node("MatMul", ["X", "W"], ["Y"])]
    m = make(nodes, [vi("X", TensorProto.FLOAT, [1, 64])],
             [vi("Y", TensorProto.FLOAT, [1, 32])], [w])
    save(m, out)


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in CASES:
        sys.exit("usage: make_model.py {%s} OUT_DIR" % "|".join(sorted(CASES)))
    os.makedirs(sys.argv[2], exist_ok=True)
    CASES[sys.argv[1]](sys.argv[2])
