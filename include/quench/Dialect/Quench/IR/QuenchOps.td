//===- QuenchOps.td - quench operations --------------------*- tablegen -*-===//
//
// The operation set of the quench dialect. Each description states the
// semantics (as NumPy-like pseudo-code where that is clearest) and what the
// verifier enforces.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_QUENCHOPS_TD
#define QUENCH_DIALECT_QUENCH_IR_QUENCHOPS_TD

include "quench/Dialect/Quench/IR/QuenchDialect.td"
include "quench/Dialect/Quench/IR/QuenchAttrs.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Dialect/Quant/IR/QuantBase.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def Quench_Float : AnyTypeOf<[F16, BF16, F32, F64]>;
def Quench_FloatTensor : RankedTensorOf<[Quench_Float]>;
def Quench_IntTensor : RankedTensorOf<[AnyInteger]>;
def Quench_IndexTensor : RankedTensorOf<[I32, I64, SI32, SI64]>;
def Quench_BoolTensor : RankedTensorOf<[I1]>;
def Quench_NumericTensor : RankedTensorOf<[Quench_Float, AnyInteger]>;
def Quench_AnyTensor : RankedTensorOf<[Quench_Float, AnyInteger,
                                        quant_QuantizedType]>;
def Quench_ShapeTensor : 1DTensorOf<[I64]>;

//===----------------------------------------------------------------------===//
// Constants
//===----------------------------------------------------------------------===//

def Quench_ConstantOp : Quench_Op<"constant",
    [ConstantLike, Pure, AllTypesMatch<["value", "result"]>]> {
  let summary = "constant tensor";
  let description = [{
    Produces the tensor held by `value`. Model weights are imported as
    `dense_resource` blobs, so the textual IR names the blob instead of
    inlining its contents; small constants are `dense` literals.

    ```mlir
    %w = quench.constant dense_resource<w0> : tensor<64x64xf32>
    %c = quench.constant dense<[1, 16, 64]> : tensor<3xi64>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise unary
//===----------------------------------------------------------------------===//

class Quench_UnaryOp<string mnemonic, Type ty, string sem, list<Trait> traits = []>
    : Quench_Op<mnemonic, !listconcat(traits, [Pure, SameOperandsAndResultType])> {
  let summary = "elementwise " # mnemonic;
  let description = "Elementwise: `result[i] = " # sem # "`. Operand and "
      # "result have the same type.";
  let arguments = (ins ty:$input);
  let results = (outs ty:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Quench_SqrtOp : Quench_UnaryOp<"sqrt", Quench_FloatTensor, "sqrt(x[i])">;
def Quench_RsqrtOp : Quench_UnaryOp<"rsqrt", Quench_FloatTensor, "1 / sqrt(x[i])">;
def Quench_ReciprocalOp : Quench_UnaryOp<"reciprocal", Quench_FloatTensor, "1 / x[i]">;
def Quench_ExpOp : Quench_UnaryOp<"exp", Quench_FloatTensor, "exp(x[i])">;
def Quench_LogOp : Quench_UnaryOp<"log", Quench_FloatTensor, "log(x[i])">;
def Quench_TanhOp : Quench_UnaryOp<"tanh", Quench_FloatTensor, "tanh(x[i])">;
def Quench_ErfOp : Quench_UnaryOp<"erf", Quench_FloatTensor, "erf(x[i])">;
def Quench_SinOp : Quench_UnaryOp<"sin", Quench_FloatTensor, "sin(x[i])">;
def Quench_CosOp : Quench_UnaryOp<"cos", Quench_FloatTensor, "cos(x[i])">;
def Quench_FloorOp : Quench_UnaryOp<"floor", Quench_FloatTensor, "floor(x[i])">;
def Quench_CeilOp : Quench_UnaryOp<"ceil", Quench_FloatTensor, "ceil(x[i])">;
def Quench_SigmoidOp : Quench_UnaryOp<"sigmoid", Quench_FloatTensor,
    "1 / (1 + exp(-x[i]))">;
def Quench_SiluOp : Quench_UnaryOp<"silu", Quench_FloatTensor,
    "x[i] / (1 + exp(-x[i]))  (a.k.a. swish)">;
def Quench_ReluOp : Quench_UnaryOp<"relu", Quench_NumericTensor, "max(x[i], 0)">;
def Quench_NegOp : Quench_UnaryOp<"neg", Quench_NumericTensor, "-x[i]">;
def Quench_AbsOp : Quench_UnaryOp<"abs", Quench_NumericTensor, "|x[i]|">;
def Quench_NotOp : Quench_UnaryOp<"not", Quench_BoolTensor, "!x[i]">;

def Quench_GeluOp : Quench_Op<"gelu", [Pure, SameOperandsAndResultType]> {
  let summary = "Gaussian error linear unit";
  let description = [{
    `approximation = none`: `x * 0.5 * (1 + erf(x / sqrt(2)))`.
    `approximation = tanh`:
    `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`.
    Both forms are what `quench-raise-ops` recognizes in exported graphs.
  }];
  let arguments = (ins Quench_FloatTensor:$input,
      DefaultValuedAttr<Quench_GeluApproximation,
                        "::quench::GeluApproximation::none">:$approximation);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat =
      "$input (`approximation` `=` $approximation^)? attr-dict `:` type($result)";
}

def Quench_ClipOp : Quench_Op<"clip", [Pure, SameOperandsAndResultType]> {
  let summary = "clamp to a range";
  let description = [{
    `result[i] = min(max(x[i], min), max)`; a missing bound is unbounded.
    The verifier requires `min <= max` when both are given.
  }];
  let arguments = (ins Quench_NumericTensor:$input, OptionalAttr<F64Attr>:$min,
                       OptionalAttr<F64Attr>:$max);
  let results = (outs Quench_NumericTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Quench_CastOp : Quench_Op<"cast", [Pure, SameOperandsAndResultShape]> {
  let summary = "element type conversion";
  let description = [{
    Converts every element to the result element type (ONNX `Cast`), with
    every case defined:
    * float → narrower float (f32 → f16/bf16, f64 → f32): round to nearest,
      ties to even; overflow gives ±inf; NaN stays NaN.
    * float → integer: truncate toward zero, then saturate to the result's
      range; NaN gives 0 (ONNX leaves out-of-range results undefined).
    * integer → float: round to nearest, ties to even.
    * integer → integer: sign- or zero-extend by the source signedness, or
      keep the low bits (two's complement wrap), as NumPy `astype`.
    * anything → bool (`i1`): `x != 0`; bool → number: 0 or 1.

    Shapes must agree; casting to the same type folds away.
  }];
  let arguments = (ins Quench_NumericTensor:$input);
  let results = (outs Quench_NumericTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise binary (broadcasting)
//===----------------------------------------------------------------------===//

class Quench_BinaryOp<string mnemonic, string sem, Type ty = Quench_NumericTensor,
                      list<Trait> traits = []>
    : Quench_Op<mnemonic, !listconcat(traits, [Pure])> {
  let summary = "elementwise " # mnemonic # " with broadcasting";
  let description = "`result = " # sem # "` after broadcasting `lhs` and "
      # "`rhs` with NumPy rules. The verifier requires equal element types on "
      # "both operands and the result, broadcast-compatible shapes, and a "
      # "result shape equal to the broadcast shape (dynamic dims allowed).";
  let arguments = (ins ty:$lhs, ty:$rhs);
  let results = (outs ty:$result);
  let assemblyFormat =
      "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_AddOp : Quench_BinaryOp<"add", "lhs + rhs", Quench_NumericTensor, [Commutative]> {
  let hasFolder = 1;
}
def Quench_SubOp : Quench_BinaryOp<"sub", "lhs - rhs">;
def Quench_MulOp : Quench_BinaryOp<"mul", "lhs * rhs", Quench_NumericTensor, [Commutative]> {
  let hasFolder = 1;
}
def Quench_DivOp : Quench_BinaryOp<"div", "lhs / rhs (integers: truncating)">;
def Quench_PowOp : Quench_BinaryOp<"pow", "lhs ** rhs", Quench_FloatTensor>;
def Quench_MinOp : Quench_BinaryOp<"min", "min(lhs, rhs)", Quench_NumericTensor, [Commutative]>;
def Quench_MaxOp : Quench_BinaryOp<"max", "max(lhs, rhs)", Quench_NumericTensor, [Commutative]>;
def Quench_ModOp : Quench_BinaryOp<"mod", "lhs mod rhs (sign of lhs for floats, of rhs for integers, as ONNX `Mod`)">;

def Quench_CmpOp : Quench_Op<"cmp", [Pure]> {
  let summary = "elementwise comparison with broadcasting";
  let description = [{
    `result = lhs <predicate> rhs` as an `i1` tensor, after broadcasting.
    Operands must have the same element type.
  }];
  let arguments = (ins Quench_CmpPredicate:$predicate,
                       Quench_NumericTensor:$lhs, Quench_NumericTensor:$rhs);
  let results = (outs Quench_BoolTensor:$result);
  let assemblyFormat = "$predicate `,` $lhs `,` $rhs attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_LogicalOp : Quench_Op<"logical", [Pure]> {
  let summary = "elementwise boolean and/or/xor with broadcasting";
  let description = "`result = lhs <kind> rhs` on `i1` tensors after broadcasting.";
  let arguments = (ins Quench_LogicalKind:$kind, Quench_BoolTensor:$lhs,
                       Quench_BoolTensor:$rhs);
  let results = (outs Quench_BoolTensor:$result);
  let assemblyFormat = "$kind `,` $lhs `,` $rhs attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_WhereOp : Quench_Op<"where", [Pure]> {
  let summary = "elementwise select with broadcasting";
  let description = [{
    `result = condition ? lhs : rhs`, all three broadcast together. `lhs`,
    `rhs` and the result share one element type.
  }];
  let arguments = (ins Quench_BoolTensor:$condition, Quench_NumericTensor:$lhs,
                       Quench_NumericTensor:$rhs);
  let results = (outs Quench_NumericTensor:$result);
  let assemblyFormat = "$condition `,` $lhs `,` $rhs attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

def Quench_MatMulOp : Quench_Op<"matmul", [Pure]> {
  let summary = "batched matrix product with NumPy semantics";
  let description = [{
    `numpy.matmul(lhs, rhs)`: a 1-D operand is promoted to a matrix (and the
    added dimension removed afterwards); leading batch dimensions broadcast.
    The verifier checks that the contracted dimensions agree, that batch
    dimensions broadcast, that the result shape is the NumPy result shape,
    and that element types are equal.

    Activation × activation products (attention scores) stay `matmul`;
    products with a constant weight are raised to `quench.linear`.
  }];
  let arguments = (ins Quench_NumericTensor:$lhs, Quench_NumericTensor:$rhs);
  let results = (outs Quench_NumericTensor:$result);
  let assemblyFormat =
      "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_LinearOp : Quench_Op<"linear", [Pure]> {
  let summary = "fully connected layer y = x·Wᵀ + b";
  let description = [{
    `result[..., n] = sum_k input[..., k] * weight[n, k] + bias[n]`.

    The weight is stored in `[out_features, in_features]` (PyTorch
    `nn.Linear`) layout so that per-output-channel scales index rows and
    group-wise quantization groups are contiguous along `k`. This is the unit
    that weight quantization rewrites. The verifier requires a 2-D weight,
    `input.shape[-1] == K`, an optional 1-D bias of length `N`, and
    `result.shape == input.shape[:-1] + [N]`.

    Input, bias and result share one element type. The weight has it too,
    or, for an f32 layer, is f16 or bf16: a half-precision weight of an f32
    model (ONNX `Cast(to=FLOAT)` of an f16 initializer), widened exactly to
    f32 before the product, so that the weight stays in half precision in
    memory and the arithmetic is the f32 model's.

    `quench-raise-ops` gives a MatMul's `[K, N]` initializer as a 2-D
    `quench.transpose` of the constant; the quantizer and the lowering read
    such a weight through the transpose, so it is never copied.
  }];
  let arguments = (ins Quench_FloatTensor:$input, Quench_FloatTensor:$weight,
                       Optional<Quench_FloatTensor>:$bias);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight (`,` $bias^)? attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Normalization, softmax, gather
//===----------------------------------------------------------------------===//

def Quench_LayerNormOp : Quench_Op<"layer_norm", [Pure]> {
  let summary = "layer normalization over the trailing dimensions";
  let description = [{
    With `D = input.shape[axis:]` normalized over:
    `mean = mean(x, D)`, `var = mean((x - mean)^2, D)`,
    `result = (x - mean) / sqrt(var + epsilon) * scale + bias`.
    `scale` (and the optional `bias`) have shape `D`. The result has the
    input's type. For f16/bf16 inputs the statistics are computed in f32
    (ONNX's default `stash_type`), and the result rounded once at the end.
  }];
  let arguments = (ins Quench_FloatTensor:$input, Quench_FloatTensor:$scale,
                       Optional<Quench_FloatTensor>:$bias,
                       I64Attr:$axis, F64Attr:$epsilon);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat = "$input `,` $scale (`,` $bias^)? attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_RMSNormOp : Quench_Op<"rms_norm", [Pure]> {
  let summary = "root-mean-square normalization (LLaMA RMSNorm, T5 LayerNorm)";
  let description = [{
    With `D = input.shape[axis:]`:
    `result = x / sqrt(mean(x^2, D) + epsilon) * scale`; no mean is
    subtracted and there is no bias. `scale` has shape `D`. For f16/bf16
    inputs the mean of squares is computed in f32.
  }];
  let arguments = (ins Quench_FloatTensor:$input, Quench_FloatTensor:$scale,
                       I64Attr:$axis, F64Attr:$epsilon);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat = "$input `,` $scale attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_SoftmaxOp : Quench_Op<"softmax", [Pure, SameOperandsAndResultType]> {
  let summary = "softmax along one axis";
  let description = [{
    `result = exp(x - max(x, axis)) / sum(exp(x - max(x, axis)), axis)`
    (ONNX opset-13 semantics: a single axis).
  }];
  let arguments = (ins Quench_FloatTensor:$input, I64Attr:$axis);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Quench_AttentionOp : Quench_Op<"attention",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "fused scaled dot-product attention with an additive bias";
  let description = [{
    One attention core, `softmax(Q·Kᵀ · scale + bias) · V` per head, formed
    by `quench-fuse-attention` from the exported chain (matmul, scale,
    mask, softmax, matmul) so that a backend can compute it in one pass
    over the keys and values (an online softmax) without materializing the
    scores, and read a KV cache in its stored element type:

    ```
    query [B, H, S, D], key [B, Hk, T, D], value [B, Hk, T, Dv]; H % Hk == 0
    g = H / Hk                            # query heads per kv head (GQA)
    K(b, h, t, d) = key[b, h / g, t, d]            (float key)
                  = key[b, h / g, t, d] * key_scale[b, h / g, t, 0]   (i8 key)
    V likewise with value_scale
    s[b, h, i, t] = sum_d query[b, h, i, d] * K(b, h, t, d) * scale
                    + bias[b', h', i', t']  (a bias dim of size 1 broadcasts)
    p[b, h, i, :] = softmax(s[b, h, i, :])  (exp(s - max) / sum, over t)
    result[b, h, i, e] = sum_t p[b, h, i, t] * V(b, h, t, e)
    ```

    `key` and `value` are float tensors of any float type (converted to the
    query's type on read: an f16 cache), or signless `i8` codes with an f32
    `key_scale` / `value_scale` of shape `[B, Hk, T, 1]` (the int8 KV cache:
    one scale per head and position). `bias` (the mask and any other
    additive term) is rank 4 with each dimension 1 or equal to
    `[B, H, S, T]`. A row whose scores are all -inf gives NaN, as the
    unfused softmax does.

    The verifier checks the ranks, that batch, head and feature dimensions
    agree (`H` a multiple of `Hk`), that `T` agrees between key, value and
    the scales, that i8 operands have scales and float ones none, the bias
    shape and the result shape `[B, H, S, Dv]` of the query's element type.
  }];
  let arguments = (ins Quench_FloatTensor:$query, Quench_NumericTensor:$key,
                       Quench_NumericTensor:$value,
                       Optional<Quench_FloatTensor>:$key_scale,
                       Optional<Quench_FloatTensor>:$value_scale,
                       Optional<Quench_FloatTensor>:$bias, F64Attr:$scale);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat =
      "$query `,` $key `,` $value (`key_scale` `(` $key_scale^ `)`)? "
      "(`value_scale` `(` $value_scale^ `)`)? (`bias` `(` $bias^ `)`)? "
      "attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_GatherOp : Quench_Op<"gather", [Pure]> {
  let summary = "gather slices along an axis (embedding lookup)";
  let description = [{
    ONNX `Gather`: `result[i0.., j.., k..] = data[i0.., indices[j..], k..]`
    where the indexed dimension is `axis`; negative indices count from the
    end. Indices still outside `[0, dim)` are clamped to it (ONNX makes
    them an error; compiled code never reads outside the table). An
    embedding lookup is `gather` with `axis = 0` on the table. The
    verifier requires `rank(result) = rank(data) - 1 + rank(indices)` and
    checks the static dimensions.
  }];
  let arguments = (ins Quench_AnyTensor:$data, Quench_IndexTensor:$indices,
                       I64Attr:$axis);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "$data `[` $indices `]` attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

def Quench_ReduceOp : Quench_Op<"reduce", [Pure]> {
  let summary = "reduction over a set of axes";
  let description = [{
    Combines the elements along `axes` with `kind` (sum, mean, max, min,
    prod). With `keep_dims` the reduced dimensions stay with size 1,
    otherwise they are removed. `axes` must be sorted, unique and in range.
  }];
  let arguments = (ins Quench_ReduceKind:$kind, Quench_NumericTensor:$input,
                       DenseI64ArrayAttr:$axes, BoolAttr:$keep_dims);
  let results = (outs Quench_NumericTensor:$result);
  let assemblyFormat = "$kind $input attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

def Quench_ReshapeOp : Quench_Op<"reshape", [Pure]> {
  let summary = "reinterpret a tensor with another shape";
  let description = [{
    Row-major reshape. The target shape is the result type; when it has
    dynamic dimensions, the `shape` operand (1-D i64, one entry per result
    dimension, no -1 or 0 placeholders) gives the run-time extents. The
    verifier checks equal element counts when both shapes are static.
  }];
  let arguments = (ins Quench_AnyTensor:$input, Optional<Quench_ShapeTensor>:$shape);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "$input (`(` $shape^ `)`)? attr-dict `:` "
                       "type($input) (`,` type($shape)^)? `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Quench_TransposeOp : Quench_Op<"transpose", [Pure]> {
  let summary = "permute dimensions";
  let description = [{
    `result.shape[i] = input.shape[permutation[i]]`. The verifier checks that
    `permutation` is a permutation of `[0, rank)` and the result shape.
    Transposes of transposes compose; identity permutations fold away.
  }];
  let arguments = (ins Quench_AnyTensor:$input, DenseI64ArrayAttr:$permutation);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
  let hasCanonicalizer = 1;
}

def Quench_ConcatOp : Quench_Op<"concat", [Pure]> {
  let summary = "concatenate along an axis";
  let description = [{
    Joins the inputs along `axis`; all other dimensions and the element type
    must agree. A single input folds to itself.
  }];
  let arguments = (ins Variadic<Quench_AnyTensor>:$inputs, I64Attr:$axis);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Quench_SliceOp : Quench_Op<"slice", [Pure]> {
  let summary = "strided slice with static bounds";
  let description = [{
    For every dimension `d`: `result` takes indices
    `starts[d], starts[d] + steps[d], ...` up to (excluding) `ends[d]`.
    Bounds are normalized at import: `0 <= starts[d]`, `steps[d] != 0`, and
    for static dimensions `ends[d]` is clamped to `[-1, dim]`. The three
    arrays have one entry per input dimension.
  }];
  let arguments = (ins Quench_AnyTensor:$input, DenseI64ArrayAttr:$starts,
                       DenseI64ArrayAttr:$ends, DenseI64ArrayAttr:$steps);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Quench_SplitOp : Quench_Op<"split", [Pure]> {
  let summary = "split into pieces along an axis";
  let description = [{
    Cuts `input` along `axis` into consecutive pieces of the given `sizes`
    (which must sum to the dimension when it is static).
  }];
  let arguments = (ins Quench_AnyTensor:$input, I64Attr:$axis,
                       DenseI64ArrayAttr:$sizes);
  let results = (outs Variadic<Quench_AnyTensor>:$results);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($results)";
  let hasVerifier = 1;
}

def Quench_ExpandOp : Quench_Op<"expand", [Pure]> {
  let summary = "broadcast to a larger shape";
  let description = [{
    Broadcasts `input` (NumPy rules, right-aligned) to the result type's
    shape; the optional `shape` operand is ONNX Expand's request: in a
    dimension where the input's extent is a static 1 the requested extent
    is the result's (it must not be negative); elsewhere the request must
    be 1 or the input's extent, and the result keeps the input's extent
    (both broadcast ways, as ONNX Expand does). The lowering checks these
    at run time (docs/reliability.md); a dynamic input extent that is 1 at
    run time is read as an extent, not broadcast.
  }];
  let arguments = (ins Quench_AnyTensor:$input, Optional<Quench_ShapeTensor>:$shape);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "$input (`(` $shape^ `)`)? attr-dict `:` "
                       "type($input) (`,` type($shape)^)? `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Quench_SqueezeOp : Quench_Op<"squeeze", [Pure]> {
  let summary = "remove unit dimensions";
  let description = [{
    Removes the dimensions listed in `axes`, each of which must have size 1
    (or be dynamic, checked at run time). Canonicalizes to `quench.reshape`
    when the result is static.
  }];
  let arguments = (ins Quench_AnyTensor:$input, DenseI64ArrayAttr:$axes);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def Quench_UnsqueezeOp : Quench_Op<"unsqueeze", [Pure]> {
  let summary = "insert unit dimensions";
  let description = [{
    Inserts size-1 dimensions at the positions `axes` of the result.
    Canonicalizes to `quench.reshape` when the result is static.
  }];
  let arguments = (ins Quench_AnyTensor:$input, DenseI64ArrayAttr:$axes);
  let results = (outs Quench_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def Quench_TriluOp : Quench_Op<"trilu", [Pure, SameOperandsAndResultType]> {
  let summary = "keep the upper or lower triangle of the last two dims";
  let description = [{
    With `upper`, keeps elements where `col - row >= k` and zeroes the rest;
    otherwise keeps `col - row <= k`. Used for causal masks. Rank >= 2.
  }];
  let arguments = (ins Quench_NumericTensor:$input, BoolAttr:$upper, I64Attr:$k);
  let results = (outs Quench_NumericTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Quench_ShapeOfOp : Quench_Op<"shape_of", [Pure]> {
  let summary = "the run-time shape of a tensor";
  let description = [{
    A 1-D i64 tensor holding the extents of `input`; folds to a constant
    when the input shape is static.
  }];
  let arguments = (ins Quench_AnyTensor:$input);
  let results = (outs Quench_ShapeTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Quench_RangeOp : Quench_Op<"range", [Pure]> {
  let summary = "arithmetic sequence";
  let description = [{
    ONNX `Range`: a 1-D tensor `[start, start + delta, ...)` stopping before
    `limit`; the three operands are 0-D tensors of the result element type.
  }];
  let arguments = (ins Quench_NumericTensor:$start, Quench_NumericTensor:$limit,
                       Quench_NumericTensor:$delta);
  let results = (outs Quench_NumericTensor:$result);
  let assemblyFormat = "$start `,` $limit `,` $delta attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Quantization: ONNX-faithful ops on plain integer tensors
//===----------------------------------------------------------------------===//

def Quench_QuantizeLinearOp : Quench_Op<"quantize_linear", [Pure]> {
  let summary = "affine quantization with explicit scale/zero point";
  let description = [{
    ONNX `QuantizeLinear`:
    `result = saturate(round_half_even(x / scale) + zero_point)` into the
    result's integer range. `scale` and `zero_point` are 0-D (per tensor) or
    1-D of length `input.shape[axis]` (per axis). A missing zero point is 0.
    `x / scale` is a division in f32 (f64 for f64 operands; f16/bf16 are
    computed in f32); ±inf saturate to the bounds of the range and NaN to
    its lower bound.
  }];
  let arguments = (ins Quench_FloatTensor:$input, Quench_FloatTensor:$scale,
                       Optional<Quench_IntTensor>:$zero_point, I64Attr:$axis);
  let results = (outs Quench_IntTensor:$result);
  let assemblyFormat = "$input `,` $scale (`,` $zero_point^)? attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_DequantizeLinearOp : Quench_Op<"dequantize_linear", [Pure]> {
  let summary = "affine dequantization with explicit scale/zero point";
  let description = [{
    ONNX `DequantizeLinear`: `result = (x - zero_point) * scale`, with the
    same per-tensor / per-axis rules as `quench.quantize_linear`.
  }];
  let arguments = (ins Quench_IntTensor:$input, Quench_FloatTensor:$scale,
                       Optional<Quench_IntTensor>:$zero_point, I64Attr:$axis);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat = "$input `,` $scale (`,` $zero_point^)? attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_DynamicQuantizeLinearOp : Quench_Op<"dynamic_quantize_linear", [Pure]> {
  let summary = "per-tensor uint8 quantization with run-time range";
  let description = [{
    ONNX `DynamicQuantizeLinear`: `scale = (max(0, max(x)) - min(0, min(x))) / 255`,
    `zero_point = saturate(round_half_even(-min(0, min(x)) / scale))`,
    `result = saturate(round_half_even(x / scale) + zero_point)` as `ui8`,
    computed in f32 (f64 for f64 input). An input without a nonzero element (max = min = 0) gets
    scale 1 / 255 (the ONNX reference implementation's choice), zero point 0
    and a zero result. NaN elements do not take part in min/max.
  }];
  let arguments = (ins Quench_FloatTensor:$input);
  let results = (outs Quench_IntTensor:$result, Quench_FloatTensor:$scale,
                      Quench_IntTensor:$zero_point);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` "
                       "type($result) `,` type($scale) `,` type($zero_point)";
  let hasVerifier = 1;
}

def Quench_MatMulIntegerOp : Quench_Op<"matmul_integer",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "integer matrix product with zero points, i32 result";
  let description = [{
    ONNX `MatMulInteger`:
    `result = matmul(lhs - lhs_zero_point, rhs - rhs_zero_point)` in exact
    32-bit integer arithmetic (no intermediate saturation). Zero points are
    per tensor (0-D), or per row of `lhs` / per column of `rhs` (1-D).
  }];
  let arguments = (ins Quench_IntTensor:$lhs, Quench_IntTensor:$rhs,
                       Optional<Quench_IntTensor>:$lhs_zero_point,
                       Optional<Quench_IntTensor>:$rhs_zero_point);
  let results = (outs RankedTensorOf<[I32]>:$result);
  let assemblyFormat = "$lhs `,` $rhs (`zp` `(` $lhs_zero_point^ `)`)? "
                       "(`rhs_zp` `(` $rhs_zero_point^ `)`)? attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_QLinearMatMulOp : Quench_Op<"qlinear_matmul", [Pure]> {
  let summary = "quantized matrix product with requantization";
  let description = [{
    ONNX `QLinearMatMul`: `acc = matmul(a - a_zp, b - b_zp)` exactly in int32,
    then `result = saturate(round_half_even(acc * a_scale * b_scale / y_scale) + y_zp)`.
    Scales are f32; zero points have the element type of their operand.
    The requantization computes `m = (a_scale * b_scale) / y_scale` and
    `float(acc) * m` in f32. `a`'s scale and zero point are per tensor or
    per row (1-D of length M), `b`'s per tensor or per column (1-D of
    length N), `y`'s per tensor; a 1-element vector is per tensor.
  }];
  let arguments = (ins Quench_IntTensor:$lhs, Quench_FloatTensor:$lhs_scale,
                       Quench_IntTensor:$lhs_zero_point,
                       Quench_IntTensor:$rhs, Quench_FloatTensor:$rhs_scale,
                       Quench_IntTensor:$rhs_zero_point,
                       Quench_FloatTensor:$result_scale,
                       Quench_IntTensor:$result_zero_point);
  let results = (outs Quench_IntTensor:$result);
  let assemblyFormat = "$lhs `,` $lhs_scale `,` $lhs_zero_point `,` $rhs `,` "
                       "$rhs_scale `,` $rhs_zero_point `,` $result_scale `,` "
                       "$result_zero_point attr-dict `:` "
                       "functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_MatMulNBitsOp : Quench_Op<"matmul_nbits", [Pure, AttrSizedOperandSegments]> {
  let summary = "block-quantized weight matmul (ONNX Runtime MatMulNBits)";
  let description = [{
    `com.microsoft.MatMulNBits`: `result = input · dequant(weight)ᵀ (+ bias)`
    where `weight` is `[N, ceil(K / block_size), block_size * bits / 8]`
    bytes holding `bits`-bit unsigned values, low nibble first;
    `scales` is `[N * n_blocks]` (or `[N, n_blocks]`) and `zero_points`
    either packed `ui8` values of the same bit width or float zero points; a
    missing zero point is `2^(bits-1)`.
    `dequant(w)[n, k] = (q[n, k] - zp[n, k / block_size]) * scale[n, k / block_size]`.
  }];
  let arguments = (ins Quench_FloatTensor:$input, Quench_IntTensor:$weight,
                       Quench_FloatTensor:$scales,
                       Optional<Quench_NumericTensor>:$zero_points,
                       Optional<Quench_FloatTensor>:$bias,
                       I64Attr:$in_features, I64Attr:$out_features,
                       I64Attr:$bits, I64Attr:$block_size);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight `,` $scales "
                       "(`zp` `(` $zero_points^ `)`)? (`bias` `(` $bias^ `)`)? "
                       "attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_DequantizeNBitsOp : Quench_Op<"dequantize_nbits", [Pure]> {
  let summary = "dequantize rows of block-quantized codes (matmul_nbits layout)";
  let description = [{
    Expands rows of `bits`-bit codes stored as `quench.matmul_nbits` stores a
    weight row into float values: `codes` is `[..., blocks, block_size *
    bits / 8]` unsigned bytes (a little-endian bit stream, low bits first),
    `scales` `[..., blocks]` and the result `[..., K]` with
    `blocks = ceil(K / block_size)`:

    ```
    q[..., k]      = the k-th code of the row (unsigned, 0 .. 2^bits - 1)
    result[..., k] = (q[..., k] - zp[..., k / block_size]) * scales[..., k / block_size]
    ```

    where `zp` is the optional `zero_points` operand (float, of the scales'
    shape and element type) and `2^(bits-1)` without it (symmetric codes).
    Codes past K (the padding of the last block) are not read. Scales of
    another float type than the result are converted to the result's type
    first (f16 scales, f32 result: exact).

    `quench-quantize-weights` uses it for quantized embedding tables: the
    lookup gathers the rows of codes and scales with `quench.gather` and
    dequantizes only those rows. `bits` is 2, 4 or 8 (whole codes per
    byte).
  }];
  let arguments = (ins Quench_IntTensor:$codes, Quench_FloatTensor:$scales,
                       Optional<Quench_FloatTensor>:$zero_points,
                       I64Attr:$bits, I64Attr:$block_size);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat = "$codes `,` $scales (`zp` `(` $zero_points^ `)`)? "
                       "attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Quench_HadamardOp : Quench_Op<"hadamard",
                                   [Pure, SameOperandsAndResultType]> {
  let summary = "fast Walsh-Hadamard transform along the last axis";
  let description = [{
    Multiplies every row of `input` (its last axis, of width `K`) by the
    unnormalized Sylvester Hadamard matrix of order `P = order` (a power of
    two dividing `K`), applied with stride `M = K / P`: with the feature
    index `k = a * M + b` (`a < P`, `b < M`),

    ```
    result[..., a * M + b] = sum over a' < P of H_P[a, a'] * input[..., a' * M + b]
    H_P[a, a'] = (-1)^popcount(a & a')
    ```

    that is `result = input (H_P (x) I_M)` (Kronecker product; `H_P` is
    symmetric, entries +-1, `H_P H_P = P I`). It is computed as log2(P)
    butterfly stages (`(u, v) -> (u + v, u - v)` on features `h * M`
    apart, h = 1, 2, ..., P / 2), O(K log P) per row instead of a K x K
    product. quench-rotate's online rotations (`--rotate-online`) use it
    with the signs, the normalization and the odd-order factor as separate
    ops.
  }];
  let arguments = (ins Quench_FloatTensor:$input, I64Attr:$order);
  let results = (outs Quench_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Quench_QLinearOp : Quench_Op<"qlinear", [Pure, AttrSizedOperandSegments]> {
  let summary = "W8A8 linear layer: int8 activations times int8 weights";
  let description = [{
    A fully connected layer whose input is quantized to int8 on the fly and
    multiplied with int8 weights in exact integer arithmetic (the W8A8
    unit that `quench-quantize-weights` produces with
    `activations=static|dynamic`):

    ```
    K = input.shape[-1]; N = weight.shape[0]
    for each row r of input (all leading dims):
      s[r] = input_scale                          # static: one scale
           | max_k |input[r, k]| / 127             # dynamic: per row (token)
             (1 when the row is all zeros)
      q[r, k] = clamp(round_half_even(input[r, k] / s[r]), -127, 127)  # int8
                (NaN quantizes to 0)
      acc[r, n] = sum_k int32(q[r, k]) * int32(weight[n, k])    # exact int32
      result[r, n] = f32(acc[r, n]) * s[r] * weight_scale[n] (+ bias[n])
    ```

    Activations are symmetric int8 with zero point 0 and the range
    [-127, 127] (not -128: the range is symmetric, so `-x` quantizes to
    `-q` and the row maximum maps to exactly ±127). `x / s` is an f32
    division; the final rescale is f32 (`(f32(acc) * s) * weight_scale[n]
    + bias[n]`, which code generation may contract into an FMA). A dynamic
    row containing NaN or ±inf has a non-finite scale and gives non-finite
    results; in static mode ±inf saturate to ±127.

    `weight` is `[N, K]` signed int8 (signless `i8`, read as two's
    complement), quantized symmetrically per output channel with the
    scale `weight_scale[n]` (f32, `[N]`); codes are expected in
    [-127, 127] (any i8 value is computed exactly). The products are
    summed in int32 without intermediate narrowing; the verifier limits
    K to 132104 (`(2^31 - 1) / (127 * 128)`) so the sum cannot overflow.

    `input_scale` present: STATIC quantization with that per-tensor scale
    (a calibrated range / 127; values beyond the range saturate). Absent:
    DYNAMIC per-row scales computed at run time.

    `outliers(%wo, [c_0, c_1, ...])`: OUTLIER SPLITTING (LLM.int8(),
    docs/quantization.md "Outlier splitting"). The listed input channels O
    (strictly increasing, in [0, K)) stay in float: they take no part in
    the int8 product (their codes are 0, whatever the weight's columns
    hold) nor in a dynamic row scale (`s[r] = max over k not in O`), and
    their product with `outlier_weight` (f32 `[N, C]`, column c belonging
    to channel O[c]) is added in f32 after the rescale:

    ```
      q[r, k] = 0 for k in O
      result[r, n] = f32(acc[r, n]) * s[r] * weight_scale[n]
                     + sum_c input[r, O[c]] * outlier_weight[n, c]   # c = 0, 1, ...
                     (+ bias[n])
    ```

    The verifier checks: f32 input of rank >= 1 with `input.shape[-1] ==
    K`; a 2-D i8 weight; 1-D f32 `weight_scale` and `bias` of length N; an
    f32 result of shape `input.shape[:-1] + [N]`; `input_scale` finite and
    positive; K <= 132104; with outliers, a 2-D f32 `outlier_weight` of
    shape [N, C] with C > 0 listed channels, strictly increasing and in
    [0, K).

    ```mlir
    %y = quench.qlinear %x, %w, %ws bias(%b) input_scale(0.03125)
        : (tensor<?x64xf32>, tensor<32x64xi8>, tensor<32xf32>, tensor<32xf32>)
        -> tensor<?x32xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$input,
                       RankedTensorOf<[I8]>:$weight,
                       RankedTensorOf<[F32]>:$weight_scale,
                       Optional<RankedTensorOf<[F32]>>:$bias,
                       OptionalAttr<F32Attr>:$input_scale,
                       Optional<RankedTensorOf<[F32]>>:$outlier_weight,
                       OptionalAttr<DenseI64ArrayAttr>:$outlier_channels);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$input `,` $weight `,` $weight_scale "
                       "(`bias` `(` $bias^ `)`)? "
                       "(`input_scale` `(` $input_scale^ `)`)? "
                       "(`outliers` `(` $outlier_weight^ `,` "
                       "$outlier_channels `)`)? "
                       "attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// True when the input is quantized with per-row scales computed at
    /// run time (no `input_scale`).
    bool isDynamic() { return !getInputScale().has_value(); }
    /// True when some input channels stay in float (outlier splitting).
    bool hasOutliers() { return getOutlierWeight() != nullptr; }
    /// The largest K whose int32 sum of int8 products cannot overflow.
    static constexpr int64_t kMaxInFeatures = 132104;
  }];
}

#endif // QUENCH_DIALECT_QUENCH_IR_QUENCHOPS_TD
