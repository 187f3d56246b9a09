"""A NumPy reference interpreter for quench-dialect functions.

Executes a module printed in the generic form (`quench-opt
--mlir-print-op-generic`) op by op, following the semantics that
QuenchOps.td documents. It is a test oracle for the importer (does the IR
compute what the ONNX model computes?), not an implementation: it is slow,
has no notion of layouts, and only handles what the conformance runner needs.

    fn = parse_module(text)          # the first func.func
    outputs = fn.run([np arrays])    # in argument order
"""

import math
import re

import numpy as np

_DTYPES = {
    "f16": np.float16, "f32": np.float32, "f64": np.float64,
    "i1": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32,
    "i64": np.int64, "si8": np.int8, "si16": np.int16, "si32": np.int32,
    "si64": np.int64, "ui8": np.uint8, "ui16": np.uint16, "ui32": np.uint32,
    "ui64": np.uint64,
}


class Unsupported(Exception):
    pass


class BF16:
    """bfloat16 values are held as float32 arrays rounded to bf16 precision;
    they cross the function boundary as uint16 bit patterns (as ONNX's
    numpy_helper returns them)."""


def round_bf16(x):
    """float -> float32 holding the nearest-even bfloat16 value."""
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    nan = np.isnan(np.asarray(x, np.float32))
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    r = b.astype(np.uint32).view(np.float32)
    return np.where(nan, np.float32(np.nan), r)


def bf16_from_bits(u16):
    return (np.asarray(u16, np.uint16).astype(np.uint32) << 16).view(np.float32)


def bf16_to_bits(f32):
    return (round_bf16(f32).view(np.uint32) >> 16).astype(np.uint16)


class TensorType:
    def __init__(self, text):
        m = re.fullmatch(r"tensor<(.*)>", text.strip())
        if not m:
            raise Unsupported("type %s" % text)
        parts = m.group(1).split("x")
        et = parts[-1]
        if et == "bf16":
            self.dtype = BF16
        elif et not in _DTYPES:
            raise Unsupported("element type %s" % et)
        else:
            self.dtype = _DTYPES[et]
        self.shape = [None if p == "?" else int(p) for p in parts[:-1]]

    def __repr__(self):
        return "tensor<%s>" % self.shape


def _split_top(s, sep=","):
    """Splits `s` at top-level `sep` (outside brackets and quotes)."""
    out, depth, cur, quote = [], 0, [], False
    for ch in s:
        if quote:
            cur.append(ch)
            if ch == '"':
                quote = False
            continue
        if ch == '"':
            quote = True
        elif ch in "<[({":
            depth += 1
        elif ch in ">])}":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _float_from_bits(tok, dtype):
    bits = int(tok, 16)
    if dtype == np.float16:
        return np.array([bits], np.uint16).view(np.float16)[0]
    if dtype == np.float32:
        return np.array([bits], np.uint32).view(np.float32)[0]
    return np.array([bits], np.uint64).view(np.float64)[0]


def _bools_from_raw(raw, shape):
    """i1 payloads: MLIR bit-packs dense i1 data (LSB first); a single byte
    is a splat; one byte per element is accepted too."""
    n = int(np.prod(shape))
    b = np.frombuffer(raw, np.uint8)
    if b.size == n:
        return b.astype(np.bool_).reshape(shape)
    if b.size == 1:
        return np.full(shape, bool(b[0]), np.bool_)
    bits = np.unpackbits(b, bitorder="little")[:n]
    return bits.astype(np.bool_).reshape(shape)


def _parse_dense(body, ttype):
    dt = ttype.dtype
    shape = ttype.shape
    if body.startswith('"0x'):
        raw = bytes.fromhex(body[3:-1])
        if dt == np.bool_:
            return _bools_from_raw(raw, shape)
        arr = np.frombuffer(raw, dt)
        if arr.size == 1 and int(np.prod(shape)) != 1:
            return np.full(shape, arr[0], dt)
        return arr.reshape(shape).copy()
    toks = re.findall(r"true|false|[-+]?0x[0-9A-Fa-f]+|[-+]?inf|nan|"
                      r"[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?", body)
    vals = []
    for t in toks:
        if t in ("true", "false"):
            vals.append(t == "true")
        elif "0x" in t and np.issubdtype(dt, np.floating):
            vals.append(_float_from_bits(t, dt))
        elif "0x" in t:
            vals.append(int(t, 16))
        elif np.issubdtype(dt, np.floating):
            vals.append(float(t))
        else:
            vals.append(int(float(t)) if ("." in t or "e" in t) else int(t))
    if not body.startswith("[") and len(vals) == 1:
        return np.full(shape, vals[0], dt)
    return np.array(vals, dt).reshape(shape)


def _parse_attr(text, resources):
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    m = re.fullmatch(r"array<i\d+(?::(.*))?>", text)
    if m:
        body = m.group(1) or ""
        return [int(x) for x in body.split(",") if x.strip()]
    m = re.fullmatch(r"dense<(.*)> : (tensor<.*>)", text, re.S)
    if m:
        return _parse_dense(m.group(1), TensorType(m.group(2)))
    m = re.fullmatch(r"dense_resource<(.*)> : (tensor<.*>)", text)
    if m:
        tt = TensorType(m.group(2))
        raw = resources[m.group(1)][4:]
        if tt.dtype == np.bool_:
            return _bools_from_raw(raw, tt.shape)
        return np.frombuffer(raw, tt.dtype).reshape(tt.shape).copy()
    m = re.fullmatch(r"(\S+) : (i\d+|f\d+)", text)
    if m:
        v = m.group(1)
        if m.group(2).startswith("f"):
            return _float_from_bits(v, np.float64) if v.startswith("0x") \
                else float(v)
        return int(v)
    return text


class Op:
    def __init__(self, results, name, operands, props, in_types, out_types):
        self.results = results
        self.name = name
        self.operands = operands
        self.props = props
        self.in_types = in_types
        self.out_types = out_types


class Function:
    def __init__(self, arg_names, arg_types, arg_attr_names, ops, returns):
        self.arg_names = arg_names
        self.arg_types = arg_types
        self.input_names = arg_attr_names
        self.ops = ops
        self.returns = returns

    def run(self, inputs):
        env = {}
        for n, t, v in zip(self.arg_names, self.arg_types, inputs):
            v = np.asarray(v)
            if t.dtype is BF16 and v.dtype == np.uint16:
                v = bf16_from_bits(v)
            elif v.dtype != t.dtype:
                raise ValueError("argument %s has dtype %s, expected %s"
                                 % (n, v.dtype, t.dtype))
            env[n] = v
        for op in self.ops:
            args = [env[o] for o in op.operands]
            with np.errstate(all="ignore"):
                outs = execute(op, args)
            if len(outs) != len(op.out_types):
                raise Unsupported("%s returned %d results" % (op.name, len(outs)))
            for r, v, t in zip(op.results, outs, op.out_types):
                v = np.asarray(v)
                if t.dtype is BF16:
                    v = round_bf16(v)
                elif v.dtype != t.dtype:
                    v = v.astype(t.dtype)
                if len(v.shape) != len(t.shape) or any(
                        s is not None and s != d for s, d in zip(t.shape, v.shape)):
                    raise ValueError("%s produced shape %s for type %s"
                                     % (op.name, v.shape, t))
                env[r] = v
        types = {}
        for op in self.ops:
            types.update(zip(op.results, op.out_types))
        types.update(zip(self.arg_names, self.arg_types))
        return [bf16_to_bits(env[r]) if types[r].dtype is BF16 else env[r]
                for r in self.returns]


_OP_RE = re.compile(
    r'^\s*(?P<res>%[\w.$-]+(?::\d+)?) = "(?P<name>[\w.]+)"\((?P<opnds>[^)]*)\)'
    r'(?: <\{(?P<props>.*)\}>)?(?: \{(?P<attrs>.*)\})? : \((?P<ins>.*?)\) -> '
    r'(?P<outs>.*)$')


def parse_module(text):
    resources = {}
    m = re.search(r"\{-#(.*)#-\}", text, re.S)
    if m:
        for name, hexs in re.findall(r'([\w.$-]+): "0x([0-9A-Fa-f]*)"',
                                     m.group(1)):
            resources[name] = bytes.fromhex(hexs)
        text = text[:m.start()]
    lines = text.splitlines()
    ops, returns = [], None
    arg_names, arg_types, arg_attr_names = [], [], []
    for line in lines:
        if '"func.func"' in line:
            am = re.search(r"arg_attrs = \[(.*?)\], function_type", line)
            if am:
                arg_attr_names = re.findall(r'quench.name = "([^"]*)"',
                                            am.group(1))
            continue
        bb = re.match(r"\s*\^bb0\((.*)\):\s*$", line)
        if bb:
            for a in _split_top(bb.group(1)):
                n, t = a.split(":", 1)
                arg_names.append(n.strip())
                arg_types.append(TensorType(t))
            continue
        if '"func.return"' in line:
            rm = re.match(r'\s*"func.return"\(([^)]*)\)', line)
            returns = [r.strip() for r in rm.group(1).split(",") if r.strip()]
            break
        om = _OP_RE.match(line)
        if not om:
            if line.strip().startswith("%"):
                raise Unsupported("op syntax: %s" % line.strip()[:120])
            continue
        res = om.group("res")
        if ":" in res:
            base, n = res.split(":")
            results = ["%s#%d" % (base, i) for i in range(int(n))]
        else:
            results = [res]
        operands = [o.strip() for o in om.group("opnds").split(",") if o.strip()]
        props = {}
        for kv in _split_top(om.group("props") or ""):
            k, v = kv.split(" = ", 1)
            props[k.strip()] = _parse_attr(v, resources)
        ins = [TensorType(t) for t in _split_top(om.group("ins"))]
        outs_text = om.group("outs").strip()
        if outs_text.startswith("("):
            outs_text = outs_text[1:-1]
        outs = [TensorType(t) for t in _split_top(outs_text)]
        ops.append(Op(results, om.group("name"), operands, props, ins, outs))
    if returns is None:
        raise Unsupported("no func.return found")
    if len(arg_attr_names) != len(arg_names):
        arg_attr_names = [None] * len(arg_names)
    return Function(arg_names, arg_types, arg_attr_names, ops, returns)


# ----- semantics -----

def _int_div(a, b):
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q).astype(a.dtype)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _unary(name, x):
    f = {
        "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "tanh": np.tanh,
        "sin": np.sin, "cos": np.cos, "floor": np.floor, "ceil": np.ceil,
        "neg": np.negative, "abs": np.abs, "not": np.logical_not,
    }.get(name)
    if f:
        return f(x)
    if name == "rsqrt":
        return 1 / np.sqrt(x)
    if name == "reciprocal":
        return 1 / x
    if name == "erf":
        return _erf(x).astype(x.dtype)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "silu":
        return x / (1 + np.exp(-x))
    if name == "relu":
        return np.maximum(x, 0).astype(x.dtype)
    return None


def _quant_param(p, x, axis):
    if p.ndim == 0:
        return p
    shape = [1] * x.ndim
    shape[axis] = -1
    return p.reshape(shape)


def _saturate(v, dtype):
    info = np.iinfo(dtype)
    return np.clip(v, info.min, info.max).astype(dtype)


def _shape_from(t, shape_operand):
    """The result shape of reshape/expand: the static type, or the run-time
    `shape` operand, which holds extents only (no -1 or 0 placeholders)."""
    if all(d is not None for d in t.shape):
        return tuple(t.shape)
    shape = tuple(int(d) for d in shape_operand)
    if any(d < 0 for d in shape) or any(
            s is not None and s != d for s, d in zip(t.shape, shape)):
        raise ValueError("shape operand %s does not fit the result type %s"
                         % (list(shape), t))
    return shape


def execute(op, a):
    n = op.name[len("quench."):] if op.name.startswith("quench.") else op.name
    p = op.props
    out_t = op.out_types[0] if op.out_types else None
    if n == "constant":
        return [p["value"]]
    u = _unary(n, a[0]) if len(a) == 1 else None
    if u is not None:
        return [u]
    if n == "gelu":
        x = a[0].astype(np.float64)
        if p.get("approximation", 0) == 1:
            r = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) *
                                       (x + 0.044715 * x ** 3)))
        else:
            r = 0.5 * x * (1 + _erf(x / math.sqrt(2)))
        return [r]
    if n == "clip":
        x = a[0]
        lo, hi = p.get("min"), p.get("max")
        if np.issubdtype(x.dtype, np.integer):
            lo = None if lo is None else int(lo)
            hi = None if hi is None else int(hi)
        r = x
        if lo is not None:
            r = np.maximum(r, np.array(lo).astype(x.dtype))
        if hi is not None:
            r = np.minimum(r, np.array(hi).astype(x.dtype))
        return [r]
    if n == "cast":
        x, dt = a[0], out_t.dtype
        if dt is BF16:
            return [round_bf16(x.astype(np.float32))]
        if dt == np.bool_:
            return [x != 0]
        if np.issubdtype(x.dtype, np.floating) and np.issubdtype(dt, np.integer):
            # As CastOp's description: truncate toward zero, saturate to the
            # result's range, NaN -> 0.
            info = np.iinfo(dt)
            t = np.nan_to_num(np.trunc(x.astype(np.float64)), nan=0.0,
                              posinf=float(info.max), neginf=float(info.min))
            t = np.clip(t, float(info.min), float(info.max))
            # float(info.max) may round up past the range (e.g. 2^63 - 1).
            with np.errstate(invalid="ignore"):
                inner = t.astype(dt)
            out = np.where(t >= float(info.max), info.max,
                           np.where(t <= float(info.min), info.min, inner))
            return [np.asarray(out).astype(dt)]
        return [x.astype(dt)]
    if n in ("add", "sub", "mul", "div", "pow", "min", "max", "mod"):
        x, y = a
        isint = np.issubdtype(x.dtype, np.integer)
        if n == "add": r = x + y
        elif n == "sub": r = x - y
        elif n == "mul": r = x * y
        elif n == "div": r = _int_div(x, y) if isint else x / y
        elif n == "pow": r = np.power(x, y)
        elif n == "min": r = np.minimum(x, y)
        elif n == "max": r = np.maximum(x, y)
        else: r = np.mod(x, y) if isint else np.fmod(x, y)
        return [np.asarray(r).astype(x.dtype)]
    if n == "cmp":
        f = [np.equal, np.not_equal, np.less, np.less_equal, np.greater,
             np.greater_equal][p["predicate"]]
        return [f(a[0], a[1])]
    if n == "logical":
        f = [np.logical_and, np.logical_or, np.logical_xor][p["kind"]]
        return [f(a[0], a[1])]
    if n == "where":
        return [np.where(a[0], a[1], a[2])]
    if n == "matmul":
        return [np.matmul(a[0], a[1])]
    if n == "linear":
        r = np.matmul(a[0], a[1].T)
        if len(a) > 2:
            r = r + a[2]
        return [r]
    if n in ("layer_norm", "rms_norm"):
        x = a[0].astype(np.float64)
        axes = tuple(range(p["axis"], x.ndim))
        eps = p["epsilon"]
        if n == "layer_norm":
            mean = x.mean(axis=axes, keepdims=True)
            var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
            r = (x - mean) / np.sqrt(var + eps) * a[1]
            if len(a) > 2:
                r = r + a[2]
        else:
            r = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps) * a[1]
        return [r]
    if n == "softmax":
        x = a[0].astype(np.float64)
        ax = p["axis"]
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        return [e / e.sum(axis=ax, keepdims=True)]
    if n == "gather":
        data, idx = a
        ax = p["axis"]
        idx = np.where(idx < 0, idx + data.shape[ax], idx)
        return [np.take(data, idx, axis=ax)]
    if n == "reduce":
        x = a[0]
        axes = tuple(p["axes"])
        keep = p["keep_dims"]
        f = [np.sum, np.mean, np.max, np.min, np.prod][p["kind"]]
        if not axes:
            return [x]
        if f in (np.max, np.min) and any(x.shape[d] == 0 for d in axes):
            raise Unsupported("max/min over an empty axis")
        r = f(x, axis=axes, keepdims=keep)
        return [np.asarray(r).astype(x.dtype)]
    if n == "reshape":
        return [a[0].reshape(_shape_from(out_t, a[1] if len(a) > 1 else None))]
    if n == "transpose":
        return [np.transpose(a[0], p["permutation"])]
    if n == "concat":
        return [np.concatenate(a, axis=p["axis"])]
    if n == "slice":
        idx = []
        for s, e, st in zip(p["starts"], p["ends"], p["steps"]):
            idx.append(slice(s, None if (st < 0 and e < 0) else e, st))
        return [a[0][tuple(idx)]]
    if n == "split":
        ax, outs, pos = p["axis"], [], 0
        for s in p["sizes"]:
            sl = [slice(None)] * a[0].ndim
            sl[ax] = slice(pos, pos + s)
            outs.append(a[0][tuple(sl)])
            pos += s
        return outs
    if n == "expand":
        req = None
        if len(a) > 1:
            # The requested extents, right-aligned with the input's: a 1
            # keeps the input's extent (ONNX Expand broadcasts both ways);
            # the lowering checks the others at run time.
            req = [int(d) for d in a[1]]
            xs = (1,) * (len(req) - a[0].ndim) + a[0].shape
            req = [x if r == 1 else r for r, x in zip(req, xs)]
        shape = _shape_from(out_t, req)
        return [np.broadcast_to(a[0], shape).copy()]
    if n in ("squeeze", "unsqueeze"):
        if n == "squeeze":
            return [np.squeeze(a[0], axis=tuple(p["axes"]))]
        r = a[0]
        for ax in sorted(p["axes"]):
            r = np.expand_dims(r, ax)
        return [r]
    if n == "trilu":
        f = np.triu if p["upper"] else np.tril
        return [f(a[0], p["k"])]
    if n == "shape_of":
        return [np.array(a[0].shape, np.int64)]
    if n == "range":
        start, limit, delta = (x.item() for x in a)
        count = max(int(math.ceil((limit - start) / delta)), 0)
        return [(start + np.arange(count) * delta).astype(out_t.dtype)]
    if n == "quantize_linear":
        # x / scale in f32 (f64 for f64), rounded half to even, + zp,
        # saturated; NaN gives the lower bound (docs/lowering.md).
        x, scale = a[0], a[1]
        zp = a[2] if len(a) > 2 else np.zeros((), out_t.dtype)
        ax = p["axis"]
        ft = np.float64 if np.float64 in (x.dtype, scale.dtype) else np.float32
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.rint(x.astype(ft) / _quant_param(scale, x, ax).astype(ft))
        v = v.astype(np.float64) + _quant_param(zp, x, ax).astype(np.float64)
        v = np.where(np.isnan(v), np.iinfo(out_t.dtype).min, v)
        return [_saturate(v, out_t.dtype)]
    if n == "dequantize_linear":
        x, scale = a[0], a[1]
        zp = a[2] if len(a) > 2 else np.zeros((), x.dtype)
        ax = p["axis"]
        v = (x.astype(np.float64) - _quant_param(zp, x, ax).astype(np.float64)) \
            * _quant_param(scale, x, ax)
        return [v]
    if n == "dynamic_quantize_linear":
        # The ONNX reference implementation, in f32; an all-zero input gets
        # scale 1 / 255 (not 0); NaN elements are left out of min/max.
        x = a[0].astype(np.float32)
        f = np.float32
        hi = f(max(0.0, float(np.nanmax(x)) if x.size else 0.0))
        lo = f(min(0.0, float(np.nanmin(x)) if x.size else 0.0))
        scale = f(f(1) if hi == lo else hi - lo) / f(255)
        zp = np.rint(f(max(0, min(255, f(0) - lo / scale))))
        with np.errstate(invalid="ignore"):
            q = np.rint(x / scale) + zp
        q = _saturate(np.where(np.isnan(q), 0, q), np.uint8)
        return [q, np.array(scale, np.float32), np.array(zp, np.uint8)]
    if n == "matmul_integer":
        seg = p.get("operandSegmentSizes", [1, 1, 1 if len(a) > 2 else 0, 0])
        lhs, rhs = a[0].astype(np.int64), a[1].astype(np.int64)
        rest = a[2:]
        if seg[2]:
            z = rest.pop(0).astype(np.int64)
            lhs = lhs - (z.reshape(-1, 1) if z.ndim == 1 else z)
        if seg[3]:
            rhs = rhs - rest.pop(0).astype(np.int64)
        return [np.matmul(lhs, rhs).astype(np.int32)]
    if n == "qlinear_matmul":
        # Exact integer product, then a_scale * b_scale / y_scale and the
        # product with it in f32, rounded half to even, + y_zp, saturated.
        x, xs, xz, w, ws, wz, ys, yz = a
        xi = x.astype(np.int64) - (xz.astype(np.int64).reshape(-1, 1)
                                   if xz.ndim == 1 else xz.astype(np.int64))
        wi = w.astype(np.int64) - wz.astype(np.int64)
        acc = np.matmul(xi, wi).astype(np.int32)
        xsv = xs.reshape(-1, 1) if xs.ndim == 1 else xs
        f = np.float32
        m = (xsv.astype(f) * ws.astype(f) / ys.astype(f)).astype(f)
        v = np.rint((acc.astype(f) * m).astype(f)).astype(np.float64) + \
            yz.astype(np.float64)
        return [_saturate(v, out_t.dtype)]
    raise Unsupported("op %s" % op.name)
