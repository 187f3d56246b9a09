"""Decoder models with past key/values: the ONNX convention, export and checks.

Shared by examples/stories260k_to_onnx.py --with-past, examples/chargpt/
chargpt.py export, bench/gen_llama_onnx.py --with-past (names and checks
only) and test/e2e/gen_past_models.py; examples/t5qa/t5qa.py (an
encoder-decoder in Optimum's T5 split) uses its ONNX evaluator. The
convention is Hugging Face
Optimum's / ONNX Runtime GenAI's (batch fixed to 1, `seq` and `past_seq`
dynamic):

  inputs  input_ids                  int64 [1, seq]
          attention_mask             int64 [1, past_seq + seq] (all ones here)
          position_ids               int64 [1, seq]: past_seq .. past_seq+seq-1
          past_key_values.{i}.key    float32 [1, kv_heads, past_seq, head_dim]
          past_key_values.{i}.value  float32 [1, kv_heads, past_seq, head_dim]
  outputs logits                     float32 [1, seq, vocab]
          present.{i}.key / .value   float32 [1, kv_heads, past_seq+seq,
                                     head_dim] = Concat(past, new, axis=2)

for every layer i, in that order. Keys and values are stored before any
grouped-query head repetition, LLaMA keys after the rotary embedding. One
file serves the prefill (past_seq = 0: past tensors with a zero-length
axis) and the decode steps (seq = 1); the causal mask over past + new
positions is computed in the graph from the shapes and attention_mask.

The with-past PyTorch modules take (input_ids, attention_mask, position_ids,
*past) with past flattened as [key0, value0, key1, value1, ...] and return
(logits, *present) flattened the same way.

onnx 1.12 (Debian's) has no onnx.reference.ReferenceEvaluator, so
`run_onnx` uses it when it exists and otherwise a small NumPy evaluator
(`NumpyEvaluator`) of the ONNX operators these exports contain: a test
oracle that checks what a traced export computes for past lengths other
than the traced one, not a runtime (it raises ValueError on any other
operator, and names the node where an operator fails).
"""

import functools
import math
import os

import numpy as np

import onnx
from onnx import numpy_helper

SEQ, PAST, TOTAL = "seq", "past_seq", "total_seq"
# Sizes used when tracing: distinct and not 0 or 1, so that the tracer
# cannot confuse them with each other or specialize on them.
TRACE_SEQ, TRACE_PAST = 3, 5
# A greedy reference whose top-1 logit leads the runner-up by less than this
# at some step is fragile (another implementation's rounding may flip it).
MIN_MARGIN = 1e-3


def input_names(n_layers):
    names = ["input_ids", "attention_mask", "position_ids"]
    for i in range(n_layers):
        names += ["past_key_values.%d.key" % i, "past_key_values.%d.value" % i]
    return names


def output_names(n_layers):
    names = ["logits"]
    for i in range(n_layers):
        names += ["present.%d.key" % i, "present.%d.value" % i]
    return names


def dynamic_axes(n_layers):
    axes = {"input_ids": {1: SEQ}, "attention_mask": {1: TOTAL},
            "position_ids": {1: SEQ}, "logits": {1: SEQ}}
    for i in range(n_layers):
        for kind in ("key", "value"):
            axes["past_key_values.%d.%s" % (i, kind)] = {2: PAST}
            axes["present.%d.%s" % (i, kind)] = {2: TOTAL}
    return axes


def step_inputs(ids, past):
    """Feeds (numpy) for one step: `ids` int64 [1, seq] after `past` (a list
    of 2 * n_layers arrays [1, kv_heads, past_seq, head_dim])."""
    ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
    p = past[0].shape[2]
    seq = ids.shape[1]
    return [ids, np.ones((1, p + seq), np.int64),
            np.arange(p, p + seq, dtype=np.int64).reshape(1, seq)] + \
        [np.asarray(x, np.float32) for x in past]


def empty_past(n_layers, kv_heads, head_dim):
    return [np.zeros((1, kv_heads, 0, head_dim), np.float32)
            for _ in range(2 * n_layers)]


# --------------------------------------------------------------------------
# Greedy decoding
# --------------------------------------------------------------------------
def greedy_full(forward, prompt, n):
    """n greedy tokens after `prompt` (list of ids) WITHOUT a cache: the
    whole sequence through forward (ids [1, T] -> logits [1, T, vocab]) at
    every step, argmax over the whole vocabulary of the last position.
    Returns (ids, margins): margins[k] = top-1 minus top-2 logit at step k
    (how far a reimplementation may drift before greedy changes)."""
    import torch
    ids, margins = list(prompt), []
    with torch.no_grad():
        for _ in range(n):
            logits = forward(torch.tensor([ids], dtype=torch.long))[0, -1]
            top = torch.topk(logits, 2).values
            margins.append(float(top[0] - top[1]))
            ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):], margins


def greedy_cached(step, n_layers, kv_heads, head_dim, prompt, n):
    """The same with a cache: one prefill of the prompt, then n - 1 decode
    steps of one token; step(feeds as numpy list) -> (logits, presents)."""
    past = empty_past(n_layers, kv_heads, head_dim)
    ids, out = list(prompt), []
    for _ in range(n):
        new = ids if not out else ids[-1:]
        logits, past = step(step_inputs(new, past))
        ids.append(int(np.argmax(logits[0, -1])))
        out.append(ids[-1])
    return out


def torch_step(module):
    """A `step` for greedy_cached / compare_steps from a with-past module."""
    import torch

    def step(feeds):
        with torch.no_grad():
            outs = module(*[torch.from_numpy(np.ascontiguousarray(x))
                            for x in feeds])
        outs = [o.numpy() for o in outs]
        return outs[0], outs[1:]
    return step


# --------------------------------------------------------------------------
# Export and structural checks
# --------------------------------------------------------------------------
def export(module, path, n_layers, kv_heads, head_dim, vocab, opset=17,
           verify=None):
    """torch.onnx.export of a with-past module into `path` (via path.tmp),
    traced with TRACE_SEQ new tokens after TRACE_PAST past ones; checks the
    file with onnx.checker, check_signature and verify(model) (if given)
    before renaming it."""
    import torch
    import warnings
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (1, TRACE_SEQ), generator=g)
    past = [torch.randn(1, kv_heads, TRACE_PAST, head_dim, generator=g)
            for _ in range(2 * n_layers)]
    feeds = [ids, torch.ones(1, TRACE_PAST + TRACE_SEQ, dtype=torch.long),
             torch.arange(TRACE_PAST, TRACE_PAST + TRACE_SEQ).unsqueeze(0)]
    tmp = path + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings
        with torch.no_grad():
            torch.onnx.export(module, tuple(feeds + past), tmp,
                              input_names=input_names(n_layers),
                              output_names=output_names(n_layers),
                              dynamic_axes=dynamic_axes(n_layers),
                              opset_version=opset, do_constant_folding=True)
    model = onnx.load(tmp)
    # The exporter names the dims it could not infer itself (e.g. logits'
    # batch behind a tied head): state the convention's shapes.
    for values, want in ((model.graph.input, signature(
            n_layers, kv_heads, head_dim, vocab)[0]),
            (model.graph.output, signature(
                n_layers, kv_heads, head_dim, vocab)[1])):
        for v, (name, _, dims) in zip(values, want):
            if v.name == name:
                shape = v.type.tensor_type.shape
                for d, want_d in zip(shape.dim, dims):
                    if isinstance(want_d, str):
                        d.dim_param = want_d
                    else:
                        d.dim_value = want_d
    onnx.checker.check_model(model)
    check_signature(model, n_layers, kv_heads, head_dim, vocab)
    if verify is not None:
        try:
            verify(model)
        except BaseException:
            os.unlink(tmp)
            raise
    onnx.save(model, tmp)
    os.replace(tmp, path)


def export_checked(model, past_model, path, n_layers, kv_heads, head_dim,
                   vocab, prompt, n_gen, opset=17, log=print):
    """Exports past_model (the with-past form of `model`, same parameters)
    to `path` after checking it:
      1. greedy continuation of `prompt` (n_gen tokens) without a cache
         (model's forward over the whole sequence every step) == with the
         cache (past_model: prefill, then one token per step);
      2. the ONNX graph == past_model on a prefill and two decode steps
         (compare_steps, relative 1e-4; run_onnx's evaluator).
    Returns (greedy ids, margins) of greedy_full; raises ValueError when a
    check fails (then `path` is not written). Warns when a margin is below
    MIN_MARGIN."""
    want, margins = greedy_full(model, prompt, n_gen)
    got = greedy_cached(torch_step(past_model), n_layers, kv_heads, head_dim,
                        prompt, n_gen)
    if got != want:
        raise ValueError("greedy with the cache %s differs from greedy "
                         "without it %s" % (got, want))
    log("greedy with past (PyTorch, prefill + %d decode steps) == without "
        "past: OK (smallest top-1/top-2 logit margin %.3g)" %
        (n_gen - 1, min(margins)))
    if min(margins) < MIN_MARGIN:
        log("warning: a greedy step has a top-1/top-2 margin below %g: "
            "another implementation's rounding may pick the runner-up" %
            MIN_MARGIN)
    errs = []

    def verify(onnx_model):
        errs.append(compare_steps(onnx_model, torch_step(past_model),
                                  prompt, n_layers, kv_heads, head_dim))
        got = greedy_cached(onnx_step(onnx_model), n_layers, kv_heads,
                            head_dim, prompt, n_gen)
        if got != want:
            raise ValueError("greedy of the ONNX graph with past %s differs "
                             "from greedy without a cache %s" % (got, want))
    export(past_model, path, n_layers, kv_heads, head_dim, vocab, opset,
           verify)
    log("ONNX with past == PyTorch on prefill + 2 decode steps (max "
        "relative difference %.2g), same %d greedy ids: OK (%s)" % (
            errs[0], n_gen, evaluator_name()))
    return want, margins


def onnx_step(model):
    """A `step` for greedy_cached that runs the ONNX model (run_onnx)."""
    def step(feeds):
        outs = run_onnx(model, feeds)
        return outs[0], outs[1:]
    return step


def _dims(value_info):
    return [d.dim_param if d.dim_param else d.dim_value
            for d in value_info.type.tensor_type.shape.dim]


def check_signature(model, n_layers, kv_heads, head_dim, vocab,
                    kv_type=onnx.TensorProto.FLOAT):
    """Raises ValueError unless the graph's inputs and outputs are exactly
    the convention's, in order, with these element types and shapes (the
    seq / past / total axes symbolic)."""
    want_in, want_out = signature(n_layers, kv_heads, head_dim, vocab,
                                  kv_type)
    init = {t.name for t in model.graph.initializer}
    for what, values, want in (
            ("input", [v for v in model.graph.input if v.name not in init],
             want_in),
            ("output", list(model.graph.output), want_out)):
        got = [(v.name, v.type.tensor_type.elem_type, _dims(v))
               for v in values]
        if got != want:
            raise ValueError("graph %ss are\n  %s\nexpected\n  %s" % (
                what, got, want))


def signature(n_layers, kv_heads, head_dim, vocab,
              kv_type=onnx.TensorProto.FLOAT):
    """([(name, elem_type, dims)] of the inputs, the same of the outputs)."""
    i64, f32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    want_in = [("input_ids", i64, [1, SEQ]),
               ("attention_mask", i64, [1, TOTAL]),
               ("position_ids", i64, [1, SEQ])]
    want_out = [("logits", f32, [1, SEQ, vocab])]
    for i in range(n_layers):
        for kind in ("key", "value"):
            want_in.append(("past_key_values.%d.%s" % (i, kind), kv_type,
                            [1, kv_heads, PAST, head_dim]))
            want_out.append(("present.%d.%s" % (i, kind), kv_type,
                             [1, kv_heads, TOTAL, head_dim]))
    return want_in, want_out


# --------------------------------------------------------------------------
# Running the ONNX file
# --------------------------------------------------------------------------
def reference_evaluator_available():
    try:
        import onnx.reference  # noqa: F401 (onnx >= 1.13)
        return True
    except ImportError:
        return False


def run_onnx(model, feeds):
    """Outputs (list, graph order) of `model` (onnx.ModelProto) for `feeds`
    (list, graph input order): ONNX's ReferenceEvaluator when this onnx has
    it, else NumpyEvaluator."""
    names = [v.name for v in model.graph.input
             if v.name not in {t.name for t in model.graph.initializer}]
    if reference_evaluator_available():
        from onnx.reference import ReferenceEvaluator
        return ReferenceEvaluator(model).run(None, dict(zip(names, feeds)))
    return NumpyEvaluator(model).run(dict(zip(names, feeds)))


def evaluator_name():
    return ("onnx.reference.ReferenceEvaluator"
            if reference_evaluator_available() else
            "NumpyEvaluator (onnx %s has no onnx.reference)" %
            onnx.__version__)


def compare_steps(model, step, prompt, n_layers, kv_heads, head_dim,
                  decode_steps=2, tol=1e-4):
    """Runs the ONNX model (run_onnx) and `step` (e.g. torch_step) on a
    prefill of `prompt` (past_seq = 0) and `decode_steps` greedy decode
    steps, each on its own outputs. Returns the largest |onnx - step| over
    logits and presents, relative to max(1, max |step|) per tensor; raises
    ValueError if it exceeds tol."""
    past_o = past_s = empty_past(n_layers, kv_heads, head_dim)
    ids = list(prompt)
    worst = 0.0
    for k in range(decode_steps + 1):
        new = ids if k == 0 else ids[-1:]
        outs_o = run_onnx(model, step_inputs(new, past_o))
        logits_s, past_s = step(step_inputs(new, past_s))
        outs_s = [logits_s] + list(past_s)
        names = output_names(n_layers)
        for name, o, s in zip(names, outs_o, outs_s):
            if o.shape != s.shape:
                raise ValueError("step %d: %s has shape %s, expected %s" %
                                 (k, name, o.shape, s.shape))
            err = float(np.max(np.abs(o - s), initial=0.0)) / \
                max(1.0, float(np.max(np.abs(s), initial=0.0)))
            worst = max(worst, err)
            if not err <= tol:
                raise ValueError("step %d (past %d, seq %d): %s differs by "
                                 "%.3g (relative), more than %g" % (
                                     k, past_o[0].shape[2], len(new), name,
                                     err, tol))
        past_o = outs_o[1:]
        ids.append(int(np.argmax(logits_s[0, -1])))
    return worst


class NumpyEvaluator:
    """Evaluates an ONNX graph with NumPy, node by node in graph order, for
    the operators of the default domain that the decoder exports here and
    examples/t5qa's encoder-decoder exports use (see OPS). float32
    throughout: results may differ from PyTorch's by rounding (different
    summation order), never by semantics."""

    def __init__(self, model):
        self.graph = model.graph
        self.consts = {t.name: numpy_helper.to_array(t)
                       for t in self.graph.initializer}
        for imp in model.opset_import:
            if imp.domain not in ("", "ai.onnx"):
                raise ValueError("NumpyEvaluator: operator domain '%s' is "
                                 "not supported" % imp.domain)

    def run(self, feeds):
        env = dict(self.consts)
        env.update({k: np.asarray(v) for k, v in feeds.items()})
        for node in self.graph.node:
            fn = OPS.get(node.op_type)
            if fn is None:
                raise ValueError("NumpyEvaluator: operator %s (node '%s') "
                                 "is not supported" % (node.op_type,
                                                       node.name))
            attrs = {a.name: onnx.helper.get_attribute_value(a)
                     for a in node.attribute}
            attrs["n_outputs"] = len(node.output)
            args = [env[n] if n else None for n in node.input]
            try:
                outs = fn(args, attrs)
            except (ValueError, IndexError, TypeError) as e:
                raise ValueError("NumpyEvaluator: node '%s' (%s) on inputs "
                                 "of shapes %s: %s" % (
                                     node.name, node.op_type,
                                     [None if x is None else x.shape
                                      for x in args], e))
            if not isinstance(outs, tuple):
                outs = (outs,)
            for name, value in zip(node.output, outs):
                if name:
                    env[name] = np.asarray(value)
        return [env[v.name] for v in self.graph.output]


def _slice(a, attrs):
    x, starts, ends = a[0], a[1], a[2]
    axes = a[3] if len(a) > 3 and a[3] is not None else range(len(starts))
    steps = a[4] if len(a) > 4 and a[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        # Python slicing clamps like ONNX; huge ONNX sentinels are clamped
        # first so that they fit an index.
        n = x.shape[ax]
        s = int(max(min(s, n), -n - 1))
        e = int(max(min(e, n), -n - 1))
        index[int(ax)] = slice(s, e, int(st))
    return x[tuple(index)]


def _reshape(a, attrs):
    x, shape = a[0], [int(d) for d in a[1]]
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


def _split(a, attrs):
    x, axis = a[0], attrs.get("axis", 0)
    sizes = a[1] if len(a) > 1 and a[1] is not None else attrs.get("split")
    if sizes is None:
        return tuple(np.split(x, attrs["n_outputs"], axis=axis))
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _softmax(a, attrs):
    x = a[0]
    axis = attrs.get("axis", -1)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


def _layer_norm(a, attrs):
    x, scale = a[0], a[1]
    bias = a[2] if len(a) > 2 else None
    axis = attrs.get("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + attrs.get("epsilon", 1e-5)) * scale
    return (y if bias is None else y + bias).astype(x.dtype)


def _reduce(fn):
    def op(a, attrs):
        axes = attrs.get("axes")
        if len(a) > 1 and a[1] is not None:
            axes = a[1]
        axes = None if axes is None else tuple(int(i) for i in axes)
        return fn(a[0], axis=axes,
                  keepdims=bool(attrs.get("keepdims", 1))).astype(a[0].dtype)
    return op


def _gemm(a, attrs):
    x, w = a[0], a[1]
    if attrs.get("transA", 0):
        x = x.T
    if attrs.get("transB", 0):
        w = w.T
    y = attrs.get("alpha", 1.0) * (x @ w)
    if len(a) > 2 and a[2] is not None:
        y = y + attrs.get("beta", 1.0) * a[2]
    return y.astype(x.dtype)


def _trilu(a, attrs):
    k = int(a[1]) if len(a) > 1 and a[1] is not None else 0
    return np.triu(a[0], k) if attrs.get("upper", 1) else np.tril(a[0], k)


def _erf(a, attrs):
    return np.vectorize(math.erf, otypes=[np.float64])(a[0]).astype(a[0].dtype)


def _log(a, attrs):
    # T5's relative position buckets take log(0) = -inf on positions whose
    # result a Where discards: no warning for those.
    with np.errstate(divide="ignore"):
        return np.log(a[0]).astype(a[0].dtype)


def _cast(a, attrs):
    to = _NP_OF_ONNX[attrs["to"]]
    x = a[0]
    if x.dtype.kind == "f" and np.dtype(to).kind in "iu":
        # Float to integer of non-finite or out-of-range values is
        # undefined in ONNX (T5's buckets cast log(0) = -inf, then discard
        # it): give the saturated value, without NumPy's warning.
        info = np.iinfo(to)
        hi = float(info.max)
        if int(hi) > info.max:  # int64's max rounds up to 2^63 in a double
            hi = float(np.nextafter(hi, -np.inf))
        x = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=hi,
                          neginf=float(info.min))
        return np.trunc(np.clip(x, float(info.min), hi)).astype(to)
    return x.astype(to)


def _binary(fn):
    return lambda a, attrs: fn(a[0], a[1])


def _unary(fn):
    return lambda a, attrs: fn(a[0]).astype(a[0].dtype)


_NP_OF_ONNX = {onnx.TensorProto.FLOAT: np.float32,
               onnx.TensorProto.FLOAT16: np.float16,
               onnx.TensorProto.DOUBLE: np.float64,
               onnx.TensorProto.INT64: np.int64,
               onnx.TensorProto.INT32: np.int32,
               onnx.TensorProto.BOOL: np.bool_}

OPS = {
    "Constant": lambda a, attrs: numpy_helper.to_array(attrs["value"]),
    "Identity": lambda a, attrs: a[0],
    "Shape": lambda a, attrs: np.array(
        a[0].shape[attrs.get("start", 0):attrs.get("end", None)], np.int64),
    "Gather": lambda a, attrs: np.take(a[0], a[1].astype(np.int64),
                                       axis=attrs.get("axis", 0)),
    "Slice": _slice,
    "Concat": lambda a, attrs: np.concatenate(a, axis=attrs["axis"]),
    "Unsqueeze": lambda a, attrs: np.expand_dims(
        a[0], tuple(int(i) for i in a[1])),
    "Squeeze": lambda a, attrs: np.squeeze(
        a[0], None if len(a) < 2 else tuple(int(i) for i in a[1])),
    "Reshape": _reshape,
    "Transpose": lambda a, attrs: np.transpose(a[0], attrs.get("perm")),
    "Expand": lambda a, attrs: np.array(np.broadcast_to(
        a[0], np.broadcast_shapes(a[0].shape, tuple(int(d) for d in a[1])))),
    "ConstantOfShape": lambda a, attrs: np.full(
        [int(d) for d in a[0]],
        numpy_helper.to_array(attrs["value"])[0]
        if "value" in attrs else np.float32(0)),
    "Range": lambda a, attrs: np.arange(a[0], a[1], a[2]).astype(a[0].dtype),
    "Cast": _cast,
    "Split": _split,
    "MatMul": lambda a, attrs: np.matmul(a[0], a[1]),
    "Gemm": _gemm,
    "Add": _binary(np.add), "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": lambda a, attrs: (a[0] // a[1] if a[0].dtype.kind == "i"
                             else np.divide(a[0], a[1])),
    "Pow": lambda a, attrs: np.power(a[0], a[1]).astype(a[0].dtype),
    "Equal": _binary(np.equal), "Less": _binary(np.less),
    "LessOrEqual": _binary(np.less_equal), "Greater": _binary(np.greater),
    "GreaterOrEqual": _binary(np.greater_equal),
    "And": _binary(np.logical_and), "Or": _binary(np.logical_or),
    "Not": lambda a, attrs: np.logical_not(a[0]),
    "Where": lambda a, attrs: np.where(a[0], a[1], a[2]),
    "Neg": lambda a, attrs: -a[0],
    "Sqrt": _unary(np.sqrt), "Reciprocal": _unary(np.reciprocal),
    "Exp": _unary(np.exp), "Tanh": _unary(np.tanh),
    "Sin": _unary(np.sin), "Cos": _unary(np.cos),
    "Sigmoid": _unary(lambda x: 1.0 / (1.0 + np.exp(-x))),
    "Abs": lambda a, attrs: np.abs(a[0]),
    "Log": _log,
    "Relu": lambda a, attrs: np.maximum(a[0], 0).astype(a[0].dtype),
    "Min": lambda a, attrs: functools.reduce(np.minimum, a),
    "Max": lambda a, attrs: functools.reduce(np.maximum, a),
    "Erf": _erf,
    "Softmax": _softmax,
    "LayerNormalization": _layer_norm,
    "ReduceMean": _reduce(np.mean), "ReduceSum": _reduce(np.sum),
    "ReduceMax": _reduce(np.max),
    "Trilu": _trilu,
}
