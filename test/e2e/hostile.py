#!/usr/bin/env python3
"""Hostile inputs: a corpus of malformed models, options, recipes and
calibration samples, each of which must get one clear error and a nonzero
exit from quench-compile: no signal, no hang, no output file left behind.

Executable cases (`run-*`) compile a model that is fine and run it on a
hostile input (more tokens than a table has rows): the run must print one
error naming the node and exit 1 without writing outputs, while a good
input still runs.

The cases are the defects of issue #17 ("Every defect listed above fixed,
each with a regression test") plus their neighbours. Each case builds its
input files in a fresh directory (models with onnx.helper, written
without the checker where they are malformed on purpose), runs
quench-compile with a timeout and checks

  * the exit status is 1 (an error, not a signal: no crash, no abort),
  * stderr has an `error:` line matching the case's pattern,
  * the output path (and its temporary siblings) does not exist, and any
    file the case protects (the input model, a device node) is unchanged.

Usage: hostile.py --build BUILD_DIR --work-dir DIR [--only NAME ...]
       [--list]
Run through CTest: `ctest -R e2e/hostile`. docs/reliability.md lists
what each case checks.
"""

import argparse
import json
import os
import re
import resource
import shutil
import stat
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TIMEOUT_S = 60


def save(model, path):
    # Malformed on purpose: no checker.
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def graph_model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def small_linear(path, k=64, n=32):
    """x[1, 4, k] @ W[k, n]: a quantizable linear."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32),
                                "W")
    m = graph_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, n])],
        [w])
    save(m, path)


def const_int(name, values, dims=None):
    arr = np.array(values, dtype=np.int64)
    if dims is not None:
        arr = arr.reshape(dims)
    return numpy_helper.from_array(arr, name)


# ----------------------------------------------------------------------------
# Cases: name -> function(dir) returning (args, pattern, protected files).
# `args` are quench-compile's arguments; the output is always DIR/out.
# ----------------------------------------------------------------------------
CASES = {}


def case(fn):
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


@case
def div_int64_min_by_minus_one(d):
    # Div(INT64_MIN, -1) of constants: two's complement overflow.
    m = graph_model(
        [helper.make_node("Div", ["a", "b"], ["q"], name="the_div"),
         helper.make_node("Cast", ["q"], ["qf"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["x", "qf"], ["y"], name="add")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [const_int("a", [np.iinfo(np.int64).min]), const_int("b", [-1])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"],
            r"error: .*the_div.*integer division overflows", [])


@case
def div_by_constant_zero(d):
    m = graph_model(
        [helper.make_node("Div", ["a", "b"], ["q"], name="zero_div"),
         helper.make_node("Cast", ["q"], ["qf"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["x", "qf"], ["y"], name="add")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [const_int("a", [7]), const_int("b", [0])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"], r"error: .*zero_div.*integer division by zero",
            [])


def range_model(d, start, limit, delta, name="rng"):
    m = graph_model(
        [helper.make_node("Range", ["s", "l", "dl"], ["r"], name=name),
         helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
         helper.make_node("ReduceSum", ["rf"], ["y"], keepdims=0)],
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [start, limit, delta])
    save(m, f"{d}/m.onnx")


@case
def range_empty_start(d):
    range_model(d, numpy_helper.from_array(np.zeros((0,), np.int64), "s"),
                const_int("l", 10), const_int("dl", 1))
    return ([f"{d}/m.onnx"], r"error: .*rng.*scalar", [])


@case
def range_huge(d):
    range_model(d, const_int("s", 0), const_int("l", 1 << 40),
                const_int("dl", 1))
    return ([f"{d}/m.onnx"], r"error: .*rng.*elements", [])


@case
def range_count_overflow(d):
    range_model(d, const_int("s", np.iinfo(np.int64).min),
                const_int("l", np.iinfo(np.int64).max), const_int("dl", 1))
    return ([f"{d}/m.onnx"], r"error: .*rng.*elements", [])


@case
def range_zero_delta(d):
    range_model(d, const_int("s", 0), const_int("l", 10), const_int("dl", 0))
    return ([f"{d}/m.onnx"], r"error: .*rng.*delta", [])


@case
def external_data_fifo(d):
    small_linear(f"{d}/plain.onnx")
    m = onnx.load(f"{d}/plain.onnx")
    w = m.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "weights.fifo"), ("offset", "0"),
                 ("length", str(64 * 32 * 4))):
        e = w.external_data.add()
        e.key, e.value = k, v
    save(m, f"{d}/m.onnx")
    os.mkfifo(f"{d}/weights.fifo")
    return ([f"{d}/m.onnx"], r"error: .*weights\.fifo.*not a regular file",
            [])


@case
def recipe_deeply_nested(d):
    small_linear(f"{d}/m.onnx")
    with open(f"{d}/r.json", "w") as f:
        f.write("[" * 100000 + "]" * 100000)
    return ([f"{d}/m.onnx", "--quant=w4a16", f"--quant-recipe={d}/r.json"],
            r"error: .*r\.json.*nest", [])


@case
def group_size_2_pow_32(d):
    small_linear(f"{d}/m.onnx")
    return ([f"{d}/m.onnx", "--quant=w4a16", f"--group-size={1 << 32}"],
            r"error: .*--group-size", [])


@case
def group_size_larger_than_layer(d):
    # Not an error: 100000 inputs per group on a 64-input layer is one group
    # per output channel (padding every row to 100000 codes inflated the
    # weights ~1500x here).
    small_linear(f"{d}/m.onnx")

    def check(d, stdout):
        with open(f"{d}/r.json") as f:
            (layer,) = json.load(f)["layers"]
        # 32 rows of 64 4-bit codes and one f16 scale.
        if (not layer["scheme"].startswith("int4 per-channel sym")
                or layer["bytes_after"] != 32 * (32 + 2)):
            return f"layer reported as {layer}"
        return None
    return ([f"{d}/m.onnx", "--quant=w4a16", "--group-size=100000",
             f"--report={d}/r.json"], None, [], None, check)


@case
def group_size_negative(d):
    small_linear(f"{d}/m.onnx")
    return ([f"{d}/m.onnx", "--quant=w4a16", "--group-size=-1"],
            r"error: .*--group-size", [])


@case
def negative_input_dim(d):
    m = graph_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, -5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, -5])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"], r"error: .*'x'.*negative", [])


@case
def input_elements_overflow(d):
    # 2^40 x 2^40 elements: the count overflows 64 bits.
    m = graph_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       [1 << 40, 1 << 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       [1 << 40, 1 << 40])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"], r"error: .*graph input 'x' .*does not fit in 64 bits", [])


@case
def constant_of_shape_huge_int(d):
    # The same with an int64 fill: integer constants are also tracked as
    # known values, which copied all 2^40 elements (out of memory before
    # the size check; a fuzz finding).
    m = graph_model(
        [helper.make_node("ConstantOfShape", ["s"], ["c"], name="cos_int",
                          value=numpy_helper.from_array(
                              np.array([7], np.int64))),
         helper.make_node("ReduceSum", ["c"], ["y"], keepdims=0)],
        [],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [])],
        [const_int("s", [1 << 20, 1 << 20])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"],
            r"error: .*cos_int.*8796093022208 bytes, above the limit", [])


@case
def constant_of_shape_huge(d):
    # A 2^40-element constant (4 TiB of f32) from ConstantOfShape.
    m = graph_model(
        [helper.make_node("ConstantOfShape", ["s"], ["c"], name="cos",
                          value=numpy_helper.from_array(
                              np.array([1.0], np.float32))),
         helper.make_node("ReduceSum", ["c"], ["y"], keepdims=0)],
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [const_int("s", [1 << 40])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"],
            r"error: .*cos.*4398046511104 bytes, above the limit", [])


@case
def tensor_above_raised_limit(d):
    # The limit is an option: 1 KiB rejects a 4 KiB input.
    m = graph_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1024])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx", "--max-tensor-bytes=1024"],
            r"error: .*4096 bytes, above the limit of 1024", [])


@case
def gather_constant_index_out_of_range(d):
    table = numpy_helper.from_array(np.ones((8, 4), np.float32), "table")
    m = graph_model(
        [helper.make_node("Gather", ["table", "idx"], ["rows"], name="emb"),
         helper.make_node("Add", ["x", "rows"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [table, const_int("idx", [3, 8])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"], r"error: .*emb.*index 8 is outside \[-8, 8\)",
            [])


@case
def gather_big_constant_index_out_of_range(d):
    # 5,000 constant indices (more than the importer tracks as known
    # integers): the lowering checks them, a compile error naming the node
    # (before: never checked, silently clamped).
    table = numpy_helper.from_array(np.ones((8, 4), np.float32), "table")
    idx = np.arange(5000, dtype=np.int64) % 8
    idx[4321] = -9
    m = graph_model(
        [helper.make_node("Gather", ["table", "idx"], ["rows"], name="emb"),
         helper.make_node("Add", ["x", "rows"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5000, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5000, 4])],
        [table, numpy_helper.from_array(idx, "idx")])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"],
            r"error: .*node 'emb' \(Gather\): index -9 is outside "
            r"\[-8, 8\) of axis 0", [])


@case
def scatter_nd_unsupported(d):
    # Index ops Quench does not implement are rejected at import, so no
    # generated code uses their indices unchecked.
    m = graph_model(
        [helper.make_node("ScatterND", ["x", "idx", "upd"], ["y"],
                          name="scatter")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [const_int("idx", [[9]]),
         numpy_helper.from_array(np.ones(1, np.float32), "upd")])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx"],
            r"error: .*do(es)? not support.*'scatter' \(ScatterND\)", [])


@case
def negative_shape_option(d):
    m = graph_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])])
    save(m, f"{d}/m.onnx")
    return ([f"{d}/m.onnx", "--shape=x=1x-3"], r"error: .*--shape", [])


@case
def output_is_input(d):
    small_linear(f"{d}/m.onnx")
    return ([f"{d}/m.onnx"],
            r"error: .*the output is the input", [f"{d}/m.onnx"], f"{d}/m.onnx")


@case
def output_is_input_hardlink(d):
    small_linear(f"{d}/m.onnx")
    os.link(f"{d}/m.onnx", f"{d}/alias")
    return ([f"{d}/m.onnx"],
            r"error: .*alias.*the output is the input", [f"{d}/m.onnx"],
            f"{d}/alias")


@case
def report_fails(d):
    # The report cannot be written: the executable must not stay behind.
    small_linear(f"{d}/m.onnx")
    return ([f"{d}/m.onnx", "--quant=w8a16", f"--report={d}/no/dir/r.json"],
            r"error: .*no/dir/r\.json", [])


@case
def output_device_node(d):
    # An executable onto /dev/null (a character device): refused (it would
    # be linked and renamed over the node), the node untouched.
    small_linear(f"{d}/m.onnx")
    return ([f"{d}/m.onnx"],
            r"error: .*/dev/null.*not a regular file", [], "/dev/null")


@case
def output_device_node_text(d):
    # Text into /dev/null is written into it (`cc -o /dev/null`), and the
    # node stays a device.
    small_linear(f"{d}/m.onnx")
    return ([f"{d}/m.onnx", "--emit=mlir"], None, ["/dev/null"], "/dev/null")


@case
def output_directory(d):
    small_linear(f"{d}/m.onnx")
    os.makedirs(f"{d}/adir.mlir")
    return ([f"{d}/m.onnx", "--emit=mlir"],
            r"error: .*adir\.mlir.*not a regular file", [f"{d}/adir.mlir"],
            f"{d}/adir")


def calib_case(d, sample):
    small_linear(f"{d}/m.onnx")
    os.makedirs(f"{d}/calib/0")
    if sample is not None:
        np.save(f"{d}/calib/0/x.npy", sample)
    return [f"{d}/m.onnx", "--quant=w8a8", f"--calib={d}/calib"]


@case
def calib_nan_sample(d):
    s = np.zeros((1, 4, 64), np.float32)
    s[0, 2, 5] = np.nan
    return (calib_case(d, s), r"error: .*x\.npy.*NaN", [])


@case
def calib_inf_sample(d):
    s = np.zeros((1, 4, 64), np.float32)
    s[0, 1, 1] = -np.inf
    return (calib_case(d, s), r"error: .*x\.npy.*inf", [])


@case
def calib_empty_sample(d):
    return (calib_case(d, np.zeros((1, 0, 64), np.float32)),
            r"error: .*expected f32\[1, 4, 64\], got f32\[1, 0, 64\]", [])


@case
def calib_no_samples(d):
    return (calib_case(d, None), r"error: .*calib", [])


# ----------------------------------------------------------------------------
# Executable cases: the model compiles; running it on the hostile input must
# print one error and exit 1 without writing outputs (a good input runs).
# name -> function(dir) returning (model path, [(input .npy name, array,
# expected error pattern or None[, address-space limit in bytes])]).
# ----------------------------------------------------------------------------
RUN_CASES = {}


def run_case_def(fn):
    RUN_CASES["run-" + fn.__name__.replace("_", "-")] = fn
    return fn


@run_case_def
def table_shorter_than_input(d):
    # y = x + table[0:T] with an 8-row table and T dynamic (as a position
    # table sliced to the sequence length): T = 20 reads past the table.
    table = numpy_helper.from_array(np.arange(8, dtype=np.float32), "table")
    m = graph_model(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("Gather", ["s", "one"], ["t"], axis=0),
         helper.make_node("Unsqueeze", ["t", "zero1"], ["t1"]),
         helper.make_node("Slice", ["table", "zero1", "t1"], ["rows"],
                          name="slice_table"),
         helper.make_node("Add", ["x", "rows"], ["y"], name="add_rows")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T"])],
        [table, const_int("one", 1), const_int("zero1", [0])])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.ones((1, 5), np.float32), None),
             ("long", np.ones((1, 20), np.float32),
              r"error: .*add_rows.*another extent in dimension 0 than the "
              r"result at run time \(8 against 20;")])


@run_case_def
def token_id_out_of_range(d):
    # An embedding lookup of run-time ids in a 16-row table: ids 16, -17,
    # 10^12 are errors naming the node; ids in [-16, 16) run.
    table = numpy_helper.from_array(
        np.arange(64, dtype=np.float32).reshape(16, 4), "table")
    m = graph_model(
        [helper.make_node("Gather", ["table", "x"], ["y"], name="tok_emb")],
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T", 4])],
        [table])
    save(m, f"{d}/m.onnx")
    def bad(index):
        return (r"error: .*node 'tok_emb' \(Gather\): index %s is outside "
                r"\[-16, 16\) of axis 0 at run time" % index)
    return (f"{d}/m.onnx",
            [("good", np.array([[0, 15, -16, 3]], np.int64), None),
             ("vocab", np.array([[1, 16]], np.int64), bad(16)),
             ("negative", np.array([[-17]], np.int64), bad(-17)),
             ("huge", np.array([[1, 10**12, 2]], np.int64), bad(10**12))])


@run_case_def
def gather_int32_axis1(d):
    # int32 indices gathering columns (axis 1) of a 3 x 5 table: the
    # message has the index (widened to 64 bits) and the axis's extent.
    table = numpy_helper.from_array(
        np.arange(15, dtype=np.float32).reshape(3, 5), "table")
    m = graph_model(
        [helper.make_node("Gather", ["table", "x"], ["y"], axis=1,
                          name="cols")],
        [helper.make_tensor_value_info("x", TensorProto.INT32, ["T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, "T"])],
        [table])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.array([4, -5, 0], np.int32), None),
             ("below", np.array([0, np.iinfo(np.int32).min], np.int32),
              r"error: .*node 'cols' \(Gather\): index -2147483648 is "
              r"outside \[-5, 5\) of axis 1 at run time")])


@run_case_def
def gather_constant_index_dynamic_axis(d):
    # Constant indices [0, 5] into x[N]: checked at run time, as the axis's
    # extent is only known then (before: silently clamped to the last row).
    m = graph_model(
        [helper.make_node("Gather", ["x", "idx"], ["y"], name="pick")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [const_int("idx", [0, 5])])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.ones(6, np.float32), None),
             ("short", np.ones(3, np.float32),
              r"error: .*node 'pick' \(Gather\): index 5 is outside "
              r"\[-3, 3\) of axis 0 at run time")])


@run_case_def
def expand_does_not_broadcast(d):
    # Expand of a [1, 3] constant to a run-time shape: [2, 3] runs; a
    # requested 5 against the input's 3, or a negative extent, are errors
    # (before: the loops read past the input, exit 0).
    c = numpy_helper.from_array(np.arange(3, dtype=np.float32)[None], "c")
    m = graph_model(
        [helper.make_node("Expand", ["c", "x"], ["y"], name="grow")],
        [helper.make_tensor_value_info("x", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])],
        [c])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.array([2, 3], np.int64), None),
             ("wider", np.array([2, 5], np.int64),
              r"error: .*node 'grow' \(Expand\): the requested extent 5 of "
              r"dimension 1 does not broadcast to the result's 3 at run "
              r"time"),
             ("negative", np.array([-2, 3], np.int64),
              r"error: .*node 'grow' \(Expand\): the requested extent -2 "
              r"of dimension 0 is negative at run time")])


@run_case_def
def concat_extent_mismatch(d):
    # Concat (axis 0) of x[A, B] and a [2, 3] constant: B must be 3 (before:
    # B = 5 wrote past the result's rows, exit 0).
    c = numpy_helper.from_array(np.ones((2, 3), np.float32), "c")
    m = graph_model(
        [helper.make_node("Concat", ["x", "c"], ["y"], axis=0, name="cat")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["A", "B"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [c])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.ones((4, 3), np.float32), None),
             ("wide", np.ones((1, 5), np.float32),
              r"error: .*node 'cat' \(Concat\): input 0 has the extent 5 "
              r"in dimension 1, not 3, at run time")])


@run_case_def
def matmul_k_mismatch(d):
    # x[M, K] @ W[4, 2] with K dynamic (raised to a linear layer): K = 5 is
    # an error (before: the contraction read past W's rows, exit 0).
    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    m = graph_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", "K"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", 2])],
        [w])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.ones((3, 4), np.float32), None),
             ("wide", np.ones((3, 5), np.float32),
              r"error: .*node 'mm' \(MatMul/Gemm\): the left operand's "
              r"contracted extent 5 differs from the right's 4 at run time")])


@run_case_def
def reshape_element_count(d):
    # Reshape of x[N] to a constant [4, 4]: N = 16 runs; N = 10 is an error
    # (before: the result viewed 16 elements of a 10-element buffer).
    m = graph_model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="to_4x4")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])],
        [const_int("shape", [4, 4])])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.ones(16, np.float32), None),
             ("short", np.ones(10, np.float32),
              r"error: .*node 'to_4x4' \(Reshape\): cannot reshape 10 "
              r"elements into the requested shape at run time \(its extents "
              r"multiply to 16")])


@run_case_def
def div_by_zero(d):
    # Div of constants by a run-time divisor: a 0 divisor and INT64_MIN / -1
    # end the run with an error naming the node (they trapped: SIGFPE).
    a = numpy_helper.from_array(
        np.array([7, -8, np.iinfo(np.int64).min, 9], np.int64), "a")
    m = graph_model(
        [helper.make_node("Div", ["a", "x"], ["y"], name="div_x")],
        [helper.make_tensor_value_info("x", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [4])], [a])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.array([1, 2, 3, -4], np.int64), None),
             ("zero", np.array([1, 0, 3, 4], np.int64),
              r"error: .*div_x.*integer division by zero at run time"),
             ("overflow", np.array([1, 2, -1, 4], np.int64),
              r"error: .*div_x.*integer division overflows at run time")])


@run_case_def
def mod_by_zero(d):
    # Mod (int32, ONNX's sign-of-divisor remainder) by a run-time divisor:
    # 0 is an error; -1 under INT32_MIN is fine (remainder 0).
    a = numpy_helper.from_array(
        np.array([7, -8, np.iinfo(np.int32).min], np.int32), "a")
    m = graph_model(
        [helper.make_node("Mod", ["a", "x"], ["y"], name="mod_x")],
        [helper.make_tensor_value_info("x", TensorProto.INT32, [3])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [3])], [a])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.array([3, 3, -1], np.int32), None),
             ("zero", np.array([3, 0, 5], np.int32),
              r"error: .*mod_x.*integer division by zero at run time")])


@run_case_def
def out_of_memory(d):
    # The outer product x[:, None] * x[None, :] of N floats needs 4 N^2
    # bytes: N = 20000 (1.6 GB) under a 1 GiB address-space limit fails
    # with an out-of-memory error instead of writing through NULL.
    m = graph_model(
        [helper.make_node("Unsqueeze", ["x", "ax1"], ["col"]),
         helper.make_node("Unsqueeze", ["x", "ax0"], ["row"]),
         helper.make_node("Mul", ["col", "row"], ["y"], name="outer")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "N"])],
        [const_int("ax0", [0]), const_int("ax1", [1])])
    save(m, f"{d}/m.onnx")
    limit = 1 << 30
    return (f"{d}/m.onnx",
            [("good", np.ones(100, np.float32), None, limit),
             ("huge", np.ones(20000, np.float32),
              r"error: .*out of memory: cannot allocate a buffer of "
              r"16000000[0-9]+ bytes at run time", limit)])


@run_case_def
def constant_of_shape_size_wraps(d):
    # ConstantOfShape of a run-time shape [2^32, 2^32] of f32: 2^66 bytes,
    # 0 after the 64-bit size arithmetic wraps (the allocator saw a 0-byte
    # buffer and the fill wrote past it: SIGSEGV). The size check before
    # the allocation names the node and the extents.
    m = graph_model(
        [helper.make_node("ConstantOfShape", ["x"], ["y"], name="fill_x",
                          value=numpy_helper.from_array(
                              np.array([1.5], np.float32), "v"))],
        [helper.make_tensor_value_info("x", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["A", "B"])])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.array([2, 3], np.int64), None),
             ("wraps", np.array([1 << 32, 1 << 32], np.int64),
              r"error: .*node 'fill_x': a buffer of shape \?x\?xf32 with "
              r"run-time extents 4294967296 and 4294967296 is larger than "
              r"4611686018427387904 bytes"),
             ("huge", np.array([1 << 20, 1 << 20], np.int64),
              r"error: .*out of memory: cannot allocate a buffer of "
              r"4398046511[0-9]+ bytes at run time", 1 << 30)])


@run_case_def
def range_size_wraps(d):
    # Range(0, x, 1) of int64 with a run-time limit of 2^62: 2^65 bytes.
    m = graph_model(
        [helper.make_node("Range", ["zero", "x", "one"], ["y"],
                          name="positions")],
        [helper.make_tensor_value_info("x", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N"])],
        [const_int("zero", 0), const_int("one", 1)])
    save(m, f"{d}/m.onnx")
    return (f"{d}/m.onnx",
            [("good", np.array(5, np.int64), None),
             ("wraps", np.array(1 << 62, np.int64),
              r"error: .*node 'positions'.*4611686018427387904")])


def run_exe_case(name, fn, compile_bin, work):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model, inputs = fn(d)
    exe = os.path.join(d, "model")
    r = subprocess.run([compile_bin, model, "-o", exe], capture_output=True,
                       text=True, timeout=TIMEOUT_S)
    if r.returncode != 0:
        return f"compile failed: {r.stderr.strip()[-2000:]}"
    problems = []
    for tag, array, pattern, *limit in inputs:
        np.save(f"{d}/{tag}.npy", array)
        out = os.path.join(d, "out_" + tag)
        os.makedirs(out)
        cmd = [exe, "--input", f"x={d}/{tag}.npy", "--output-dir", out]
        def limit_memory(limit=limit):
            if limit:
                resource.setrlimit(resource.RLIMIT_AS, (limit[0], limit[0]))
        try:
            r = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=TIMEOUT_S, preexec_fn=limit_memory)
        except subprocess.TimeoutExpired:
            problems.append(f"{tag}: hung")
            continue
        written = os.listdir(out)
        if pattern is None:
            if r.returncode != 0 or not written:
                problems.append(f"{tag}: exit {r.returncode}, outputs "
                                f"{written}: {r.stderr.strip()[-500:]}")
            continue
        if r.returncode != 1:
            problems.append(f"{tag}: exit status {r.returncode} (expected 1)")
        if not any(re.search(pattern, l) for l in r.stderr.splitlines()):
            problems.append(f"{tag}: no error line matches /{pattern}/: "
                            f"{r.stderr.strip()[-500:]}")
        if written:
            problems.append(f"{tag}: outputs written: {written}")
    return "; ".join(problems) or None


def snapshot(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            return ("file", f.read())
    return ("node", stat.S_IFMT(st.st_mode), st.st_rdev)


def run_case(name, fn, compile_bin, work):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    spec = fn(d)
    args, pattern, protected = spec[0], spec[1], list(spec[2])
    out = spec[3] if len(spec) > 3 and spec[3] else os.path.join(d, "out")
    check = spec[4] if len(spec) > 4 else None
    if out not in protected and os.path.exists(out):
        protected.append(out)
    before = {p: snapshot(p) for p in protected}
    cmd = [compile_bin] + args + ["-o", out]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"hung (> {TIMEOUT_S} s): {' '.join(cmd)}"
    problems = []
    if pattern is None:
        # A case that must compile (the hostile value has a sensible
        # meaning): exit 0 and the case's own check.
        if r.returncode != 0:
            problems.append(f"exit status {r.returncode} (expected 0)")
        elif check:
            msg = check(d, r.stdout)
            if msg:
                problems.append(msg)
        if problems:
            return ("; ".join(problems) + f"\n  command: {' '.join(cmd)}"
                    + f"\n  stderr: {r.stderr.strip()[-2000:]}")
        return None
    if r.returncode != 1:
        what = (f"signal {-r.returncode}" if r.returncode < 0 else
                f"exit status {r.returncode}")
        problems.append(f"{what} (expected 1)")
    errors = [l for l in r.stderr.splitlines() if "error:" in l]
    if not any(re.search(pattern, l) for l in errors):
        problems.append(f"no error line matches /{pattern}/")
    for p in protected:
        if snapshot(p) != before[p]:
            problems.append(f"{p} was changed")
    if out not in protected and out != "/dev/null":
        left = [f for f in os.listdir(os.path.dirname(out))
                if (f == os.path.basename(out) or f.startswith(
                    os.path.basename(out) + "."))
                and os.path.join(os.path.dirname(out), f) not in protected]
        if left:
            problems.append(f"output left behind: {left}")
    if problems:
        return ("; ".join(problems) + f"\n  command: {' '.join(cmd)}"
                + f"\n  stderr: {r.stderr.strip()[-2000:]}")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=False)
    ap.add_argument("--work-dir", required=False)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(list(CASES) + list(RUN_CASES)))
        return 0
    if not a.build or not a.work_dir:
        ap.error("--build and --work-dir are required")
    compile_bin = os.path.join(a.build, "bin", "quench-compile")
    os.makedirs(a.work_dir, exist_ok=True)
    names = a.only or list(CASES) + list(RUN_CASES)
    failed = 0
    for name in names:
        if name in RUN_CASES:
            msg = run_exe_case(name, RUN_CASES[name], compile_bin, a.work_dir)
        elif name in CASES:
            msg = run_case(name, CASES[name], compile_bin, a.work_dir)
        else:
            print(f"unknown case '{name}'", file=sys.stderr)
            return 2
        print(f"{'ok  ' if msg is None else 'FAIL'} {name}"
              + ("" if msg is None else f": {msg}"), flush=True)
        failed += msg is not None
    print(f"{len(names) - failed}/{len(names)} hostile cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
