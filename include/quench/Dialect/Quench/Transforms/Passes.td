//===- Passes.td - quench dialect passes -------------------*- tablegen -*-===//
//
// Every pass of the quench dialect; one implementation file each in
// lib/Dialect/Quench/Transforms/.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_TD
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def QuenchRaiseOps : Pass<"quench-raise-ops"> {
  let summary = "Raise decomposed exporter patterns to single quench ops";
  let description = [{
    Exporters decompose the units quantization reasons about into chains of
    primitive ops. This pass recognizes them and replaces each chain with one
    op:

    * LayerNorm (opset < 17): `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)`
      with optional `* gamma + beta` → `quench.layer_norm`.
    * RMSNorm / T5 LayerNorm: `x * rsqrt(mean(x^2) + eps) [* w]` (also written
      with `reciprocal(sqrt(...))`, `1 / sqrt(...)` or `x / sqrt(...)`)
      → `quench.rms_norm` (a missing weight becomes ones).
    * GELU: the erf form `x * 0.5 * (1 + erf(x / sqrt(2)))` and the tanh form
      `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`, factors in any
      order → `quench.gelu`.
    * SiLU: `x * sigmoid(x)` → `quench.silu`.
    * `matmul(x, W)` with a constant 2-D `W` (and a following `add` of a
      constant bias, possibly cast, that varies along N only) →
      `quench.linear` whose weight `[out_features, in_features]` is a
      `quench.transpose` of the constant as stored: no copy; the quantizer
      and the lowering read through it (a splat is reshaped instead). `W`
      may be a 2-D transpose of a constant `[N, K]` (then the weight as it
      is) and a widening cast of an f16/bf16 constant (the weight is then
      the half-precision constant: an f32 model with half-precision
      initializers), in either order.
    * `linear(x, cast(W))` with an f16/bf16 constant `W` of an f32 layer
      (ONNX `Gemm(transB=1)` of a cast initializer) → `linear(x, W)`.

    Constants are matched with a relative tolerance of 1e-3 so that f16
    exports are recognized. Only chains whose intermediate values have no
    other users are rewritten.
  }];
  let dependentDialects = ["::quench::QuenchDialect"];
}

def QuenchFoldQDQ : Pass<"quench-fold-qdq"> {
  let summary = "Fold QDQ matmuls of pre-quantized models into integer ops";
  let description = [{
    Pre-quantized ONNX models in the QDQ format (ONNX Runtime's quantizer,
    PyTorch's exporter) write an int8 matmul as a float `MatMul` (or `Gemm`,
    imported as `quench.linear`) between `DequantizeLinear` and
    `QuantizeLinear` nodes. This pass rewrites

    * `quantize_linear(matmul(dequantize_linear(a), dequantize_linear(b)))`
      (also `linear` without bias) → `quench.qlinear_matmul` (exact int32
      product, requantized with `a_scale * b_scale / y_scale` in f32);
    * `matmul(dequantize_linear(a), dequantize_linear(b))` and
      `linear(dequantize_linear(x), dequantize_linear(w), bias)` without
      such a user → `cast(quench.matmul_integer(a, b)) * (a_scale * b_scale)
      (+ bias)` in f32; a following `quantize_linear` stays.

    It matches when both codes are 8-bit (u8 or i8, any mix), scales and
    results are f32, `a`'s scale and zero point are per tensor (0-D or a
    1-element vector) and the weight's are per tensor or per output column
    (per axis along N: axis 1 of a `[K, N]` matmul operand, axis 0 of a
    `[N, K]` linear weight, with a static N). Scales and zero points need
    not be constants (e.g. those of `dynamic_quantize_linear`). Everything
    else is left unchanged: per-axis scales on another axis, per-row
    activation scales, 16-bit codes, f16 scales, batched (rank > 2)
    weights, an output `quantize_linear` with a per-axis scale.

    The folded graph computes the integer product exactly; its results
    differ from the unfolded float graph only by float rounding (one code
    near rounding ties after requantization), as in ONNX Runtime's own QDQ
    folding.
  }];
  let dependentDialects = ["::quench::QuenchDialect"];
}

def QuenchPruneWeights : Pass<"quench-prune-weights", "::mlir::ModuleOp"> {
  let summary = "Prune linear layers' weights (magnitude or SparseGPT)";
  let description = [{
    Sets weights of every `quench.linear` with a constant f32 weight to
    exactly zero following `sparsity`: `N:M` (e.g. `2:4`, `4:8`) keeps N of
    every M consecutive weights of an output row, i.e. along the reduction
    dimension K (NVIDIA's 2:4 layout); `unstructured:F` prunes the fraction
    F of every output row. The weights stay in their dense storage (a new
    f32 constant, stored as before: [N, K], or [K, N] behind the transpose
    quench-raise-ops makes); the linear gets the discardable attribute
    `quench.sparsity` (e.g. `"2:4 magnitude"`), by which
    `quench-quantize-weights` keeps the zeros when it quantizes the layer
    (GPTQ with the mask fixed; every scheme maps 0 to its integer zero
    point, which the quantizer checks). Compressed storage and sparse
    kernels are not implemented yet (docs/sparsity.md).

    `method=magnitude` keeps the largest |w| of each N:M group (or row),
    ties keeping the lower index. `method=sparsegpt` (SparseGPT, lib/Quant/
    Sparse.cpp) chooses the mask in one sweep over the columns with the
    layer's input Gram matrix X^T X from calibration (GPTQ's, shared code)
    and compensates each pruned weight's removal on the columns not pruned
    yet; drivers pass the matrices in `quench::PruneOptions::inputGram`
    (quench-compile `--calib`). Without them (quench-opt) the pass fails
    with one error naming every layer that lacks statistics.

    Scope: every linear with a constant f32 weight except the output
    projection (a linear whose result the function returns, possibly
    through reshapes) unless `prune-head`. `recipe` (the JSON recipe of
    quench-quantize-weights) can give layers their own `"sparsity"` (`"none"`
    keeps a layer dense); the first rule matching a layer decides, then the
    recipe's `"default"`, then this pass's `sparsity`.

    ```mlir
    %w = quench.constant dense<[[0.1, -0.4, 0.3, 0.05]]> : tensor<1x4xf32>
    %y = quench.linear %x, %w : ...
    // sparsity=2:4 method=magnitude:
    %w = quench.constant dense<[[0.0, -0.4, 0.3, 0.0]]> : tensor<1x4xf32>
    %y = quench.linear %x, %w {quench.sparsity = "2:4 magnitude"} : ...
    ```
  }];
  let options = [
    Option<"sparsity", "sparsity", "std::string", "\"none\"",
           "Pattern: N:M (e.g. 2:4, 4:8), unstructured:FRACTION (the "
           "fraction of each row pruned) or none">,
    Option<"method", "method", "std::string", "\"magnitude\"",
           "magnitude, or sparsegpt (needs calibration Gram matrices)">,
    Option<"pruneHead", "prune-head", "bool", "false",
           "Also prune the output projection">,
    Option<"recipe", "recipe", "std::string", "\"\"",
           "JSON recipe (quench-quantize-weights' format) with per-layer "
           "\"sparsity\"">,
    Option<"dampening", "dampening", "double", "0.01",
           "SparseGPT: dampening of H's diagonal, as a fraction of its mean">,
    Option<"threads", "threads", "unsigned", "0",
           "Threads of SparseGPT (0: the hardware concurrency); the result "
           "is the same for every count">,
  ];
  let dependentDialects = ["::quench::QuenchDialect"];
}

def QuenchQuantizeWeights : Pass<"quench-quantize-weights", "::mlir::ModuleOp"> {
  let summary = "Weight quantization of linear layers (RTN, GPTQ, HQQ or AWQ)";
  let description = [{
    Replaces every `quench.linear` whose weight is a constant with a
    `quench.matmul_nbits` holding the weight quantized to `bits`-bit codes
    (round half to even, saturated; `algo=gptq` compensates each column's
    rounding error on the columns not yet quantized, see below), in groups
    of `group-size` consecutive
    input features (0: one group per output channel), with one scale per
    group (stored as `scale-type`) and, when not `symmetric`, one zero point
    per group. The float weight disappears from the artifact unless another
    op still uses it. Activations stay float (W8A16, W4A16, ...).

    With `activations=static` or `activations=dynamic` (W8A8; only with
    `bits=8`, `group-size=0`, `symmetric`), each such linear with an f32
    input becomes a `quench.qlinear` instead: int8 weights per output
    channel with f32 scales, and the input quantized to int8 at run time,
    with one scale per row computed from the row (`dynamic`) or a fixed
    per-tensor scale `range / 127` (`static`), where `range` is the layer's
    calibrated max |x| (drivers pass calibration results through
    `quench::WeightQuantOptions::inputRange`). Static quantization fails
    with one error listing every layer without a range. From the command
    line, `static-input-range` gives one range to every layer: it exists
    for tests, real models need per-layer calibration.

    `outliers=auto|N` (W8A8 only; LLM.int8()'s outlier splitting,
    lib/Quant/Outliers.cpp) keeps some input channels of each W8A8 layer in
    float: with `auto` those whose calibrated max |x_j| exceeds
    `outlier-threshold` times the median channel maximum, with `N` the N
    largest; at most `outlier-cap` per layer (0: K / 8). Their weight
    columns become an f32 `outlier_weight` of the `quench.qlinear`, the int8
    weight's columns are 0 there (its row scales see only the rest), and a
    static layer's input range is the largest maximum of the other channels.
    Needs per-channel maxima from calibration (drivers:
    `WeightQuantOptions::inputChannelMax`); quench-opt's
    `test-channel-max` gives every layer with that many inputs the listed
    maxima, for tests.

    Layers are named by their location (the ONNX node name). `exclude`
    patterns (globs) keep matching layers in float; `quantize-head=false`
    keeps the output projection (a linear whose result the function
    returns, possibly through reshapes) in float; `recipe` is a JSON file
    of per-layer overrides (docs/quantization.md):

    ```json
    {"version": 1,
     "default": {"bits": 4, "group_size": 32},
     "layers": [ {"match": "/head/*", "bits": 8, "group_size": 0},
                 {"match": "/blocks.0/*", "skip": true},
                 {"match": "*/mlp/*", "algo": "gptq",
                  "gptq_dampening": 0.05} ] }
    ```

    A rule's `algo` (`rtn`, `gptq` or `hqq`), `gptq_act_order` and
    `gptq_dampening` override the pass options for its layers, so GPTQ can
    be confined to some layers (the others need no calibration).

    `algo=gptq` (GPTQ, lib/Quant/GPTQ.cpp) needs the Gram matrix X^T X of
    every layer it rounds (all quantized layers, or those a recipe gives
    `"algo": "gptq"`) from calibration, which drivers pass in
    `WeightQuantOptions::inputGram` (quench-compile `--calib`). quench-opt
    has no calibration data, so there the pass fails with
    "GPTQ needs calibration (--calib or --calib-cache); no input statistics
    for layers: ..." naming every such layer; the module is unchanged.

    `algo=hqq` (HQQ, lib/Quant/HQQ.cpp) needs no calibration: each group's
    scale and zero point minimize an l_0.7 norm of its weight error by
    half-quadratic splitting, starting from RTN's and never worse than
    them on that objective; codes are rounded to nearest with the chosen
    parameters. With `symmetric` (the zero point fixed at 2^(bits-1)) it
    optimizes the scale only; asymmetric, the scale and the zero point
    (quench-compile `--algo=hqq` implies `--asymmetric` for weight-only
    schemes).

    `algo=awq` (AWQ, lib/Quant/AWQ.cpp; weight-only) needs the Gram matrix
    and the per-channel mean |x| of every AWQ layer's input
    (`WeightQuantOptions::inputGram` and `inputMeanAbs`; quench-opt has
    neither, so there the pass fails with "AWQ needs calibration ...").
    For every group of linears sharing an input whose quantized layers are
    all AWQ layers of one format, and whose input's producer can absorb a
    per-channel scale (as for `quench-smooth`: a norm, a linear, or
    `silu(gate) * up`), it searches s = mean|x|^alpha (alpha = 0, 0.05,
    ..., 1, normalized) for the least output error tr(dW H dW^T) of the
    rounded W diag(s), migrates x / s into the producer and W diag(s) into
    the weights (`awq-power-of-two`: each s_j a power of two, so that the
    migration is exact); then every AWQ layer's groups get the clipping
    ratio (1 ... 0.5) of least error under its input's Gram matrix, now
    S^-1 H S^-1. `algo=awq+gptq` runs GPTQ on the scaled weights with that
    Gram matrix instead of the clipping search. A remark names the AWQ
    layers whose input stayed unscaled, and why.

    `bits-budget=B` (weight-only) replaces the bits and group size of every
    layer the pass quantizes by one of the candidates float, int8 per
    channel, int4 g128, int4 g32, int3 g128, int3 g32 and int2 g32 (the
    other settings, `symmetric`, `scale-type`, `algo`, stay the layer's),
    chosen to minimize the sum of the layers' predicted errors with the
    average storage bits per weight of those layers (codes, scales and zero
    points, as the size report counts them) at most B (lib/Quant/
    BitsBudget.cpp, exact dynamic programming). A layer's predicted error
    for a candidate is its output error tr(dW H dW^T) over the calibration
    inputs when every layer has a Gram matrix (`inputGram`), otherwise its
    weight error |dW|^2, with a remark saying so. A budget below the
    smallest candidates is an error.
  }];
  let options = [
    Option<"bits", "bits", "unsigned", "8", "Bits per weight code (2..8)">,
    Option<"groupSize", "group-size", "int64_t", "0",
           "Input features per group (0: one group per output channel); "
           "group-size * bits must be a multiple of 8">,
    Option<"symmetric", "symmetric", "bool", "true",
           "Symmetric codes around 2^(bits-1) (no stored zero points)">,
    Option<"scaleType", "scale-type", "std::string", "\"f16\"",
           "Storage type of the scales: f16 or f32">,
    Option<"quantizeHead", "quantize-head", "bool", "true",
           "Also quantize the output projection">,
    Option<"quantizeEmbeddings", "quantize-embeddings", "bool", "false",
           "Also quantize embedding tables (dequantized after the lookup)">,
    Option<"embeddingBits", "embedding-bits", "int64_t", "8",
           "Bits of quantized embedding codes: 8, 4 or 2">,
    Option<"embeddingGroupSize", "embedding-group-size", "int64_t", "0",
           "Embedding columns per scale (0: one scale per row)">,
    ListOption<"exclude", "exclude", "std::string",
               "Glob patterns of layer names to keep in float">,
    Option<"recipe", "recipe", "std::string", "\"\"",
           "JSON file of per-layer overrides">,
    Option<"algo", "algo", "std::string", "\"rtn\"",
           "Rounding algorithm: rtn (round to nearest), gptq (needs "
           "calibration statistics), hqq (half-quadratic choice of scales "
           "and zero points, data-free), awq (activation-aware scales and "
           "clipping; needs calibration statistics) or awq+gptq (AWQ's "
           "scales, then GPTQ)">,
    Option<"awqPowerOfTwo", "awq-power-of-two", "bool", "true",
           "AWQ: round the migrated per-channel scales to powers of two "
           "(the migration is then exact in floating point)">,
    Option<"gptqActOrder", "gptq-act-order", "bool", "true",
           "GPTQ: quantize inputs by decreasing H[k, k] (groups stay "
           "contiguous)">,
    Option<"gptqDampening", "gptq-dampening", "double", "0.01",
           "GPTQ: dampening of H's diagonal, as a fraction of its mean">,
    Option<"threads", "threads", "unsigned", "0",
           "Threads of the GPTQ and HQQ numerics (0: the hardware "
           "concurrency); the result is the same for every count">,
    Option<"hqqLpNorm", "hqq-lp-norm", "double", "0.7",
           "HQQ: the p of the l_p weight error it minimizes, in (0, 2] (the "
           "paper's 0.7; 2 is the squared error)">,
    Option<"bitsBudget", "bits-budget", "double", "0.0",
           "Mixed precision: average storage bits per weight (codes, scales, "
           "zero points) of the quantized layers; each gets the scheme that "
           "minimizes the predicted error within it (0: off)">,
    Option<"activations", "activations", "std::string", "\"none\"",
           "Activation quantization: none (weight-only), static (W8A8, "
           "per-tensor input scale from calibration) or dynamic (W8A8, "
           "per-row input scales at run time)">,
    Option<"staticInputRange", "static-input-range", "double", "0.0",
           "For tests: with activations=static, the input range (max |x|) "
           "assumed for every layer (0: none; real models use calibration)">,
    Option<"outliers", "outliers", "std::string", "\"\"",
           "W8A8 outlier splitting: auto (channels above outlier-threshold "
           "x the median channel maximum) or N (the N largest channels) stay "
           "in float (empty: off)">,
    Option<"outlierThreshold", "outlier-threshold", "double", "6.0",
           "outliers=auto: a channel is an outlier when its calibrated max "
           "|x| exceeds this many times the median channel's (> 1)">,
    Option<"outlierCap", "outlier-cap", "int64_t", "0",
           "At most this many float channels per layer (0: K / 8)">,
    ListOption<"testChannelMax", "test-channel-max", "double",
               "For tests: per-channel input maxima for every layer whose "
               "in_features equals their count (outliers, static range)">,
  ];
  let dependentDialects = ["::quench::QuenchDialect"];
}

def QuenchFuseAttention : Pass<"quench-fuse-attention"> {
  let summary = "Form quench.attention from exported attention chains";
  let description = [{
    Exporters write scaled dot-product attention as a chain of primitive
    ops. Starting from each `quench.softmax` over the last axis of rank-4
    f32 scores, this pass matches

    ```
    P = softmax(α · (Q·Kᵀ) + Σ terms),  O = P·V
    ```

    and replaces it with `quench.attention(Q, K, V, bias = Σ terms,
    scale = α)`:

    * between the scores and the softmax, each intermediate read only by
      the next op: `mul`/`div` by a uniform constant (into `scale`),
      `add`/`sub` of a tensor (a bias term), `where(c, s, fill)` /
      `where(c, fill, s)` with a constant fill ≤ -1e30 or -inf (a mask:
      the term `where(c, 0, fill)`; other fills are not the same function
      and are refused); a scale after a term scales the term. The terms
      are computed on their own shapes (a mask [S, T], a padding mask
      [B, 1, 1, T]), summed and unsqueezed to rank 4, never broadcast to
      [B, H, S, T];
    * the scores `matmul(Q, transpose(K, [0, 1, 3, 2]))`, constant factors
      on Q, Kᵀ or K into `scale` (SDPA exports scale both by √scale), with
      K of H heads or one (MQA), also when the exporter's transposes were
      folded into one (`transpose(X [B, T, H, D], [0, 2, 3, 1])`: the key
      becomes `transpose(X, [0, 2, 1, 3])`); or the grouped-query form of
      quench-raise-ops, `reshape(matmul(reshape(Q → [B, Hk, rep·S, D]),
      Kᵀ) → [B, H, S, T])`, with the reshapes checked to split the head
      dimension (batch and last dims unchanged);
    * the softmax result read (besides its shape) by `matmul(P, V)` only,
      or by the grouped `reshape(matmul(reshape(P → [B, Hk, rep·S, T]), V)
      → [B, H, S, Dv])`;
    * K and V read from a KV cache: a widening cast from f16/bf16 (the
      f16 cache) becomes a key/value of that type; `cast(codes : i8) *
      scale` with `scale` [B, Hk, T, 1] (quench-kv-cache's int8 cache)
      becomes i8 key/value with `key_scale`/`value_scale`, so the cache is
      not dequantized into a temporary.

    Everything else keeps the exported chain, without a diagnostic: other
    softmax axes, other element types than f32, dynamic head counts or
    head dims, batch extents of Q, K and V not provably the same (followed
    through the exporter's shape computations; cross-attention over
    another input's dynamic batch stays), intermediates with other uses (probabilities returned as an
    output), ops the op cannot express (a tanh soft-cap), masks with a
    finite fill. The `fused` statistic (`--mlir-pass-statistics`, in LLVM
    builds with statistics) counts the cores fused.
  }];
  let statistics = [
    Statistic<"numFused", "fused", "Attention cores fused">
  ];
  let dependentDialects = ["::quench::QuenchDialect"];
}

def QuenchKVCache : Pass<"quench-kv-cache", "::mlir::func::FuncOp"> {
  let summary = "Keep a decoder's past keys/values in a preallocated cache";
  let description = [{
    A decoder exported with past keys/values (the Hugging Face Optimum /
    ONNX Runtime GenAI convention) takes `past_key_values.{i}.key|value`
    `[batch, kv_heads, past, head_dim]` and returns
    `present.{i}.key|value = concat(past, new, axis)`: run step by step,
    every step copies the whole past into a new tensor. This pass rewrites
    a function whose arguments and results carry `quench.name` so that
    every past input becomes a cache buffer of capacity positions, owned
    by the caller (a `memref` argument `[1, kv_heads, ?, head_dim]` of the
    same name) and updated in place:

    * one new argument `past-length` (`tensor<i64>`) says how many
      positions of the caches hold the past;
    * uses of a past input read the first `past_length` positions of its
      cache (a view, no copy);
    * the `concat(past, new)` that yields a present output writes `new`
      into the cache at `past_length` and is replaced by a view of the
      first `past_length + new` positions; the present outputs are removed.

    With `cache-type=f16` the cache holds f16 values (converted on write
    and read). With `cache-type=int8` it holds int8 codes and a second
    buffer, `<name>.scale`, one f32 scale per head and position (the dim
    reduced is head_dim, the last one): symmetric, scale = max |x| / 127,
    code = round(x / scale), dequantized on read. The function gets a `quench.generation` attribute naming the
    roles of its inputs and outputs (token ids, attention mask, position
    ids, past length, logits, the cache buffers) and the default capacity,
    which the model ABI passes to the runtime's generation sessions.

    With `logits-positions=last` (the default) a step returns the logits of
    its last position only, `[batch, 1, vocab]`: the row-wise ops that end
    in the logits output (final norm, LM head, casts) take the last row of
    their input, which saves the LM head's work on the other positions of a
    prompt. `all` keeps the logits of every new position.

    Fails, naming the input or output, when a past input has no present
    output (or the reverse), when a present output is not a concatenation
    of its past input with new positions, when a dimension other than batch
    and sequence is dynamic, or when no token-ids input or logits output is
    found.
  }];
  let options = [
    Option<"past", "past", "std::string", "\"past_key_values.{i}.{kv}\"",
           "Names of the past inputs: {i} is the layer, {kv} key or value">,
    Option<"present", "present", "std::string", "\"present.{i}.{kv}\"",
           "Names of the present outputs ({i}, {kv} as for past)">,
    Option<"inputIds", "input-ids", "std::string", "\"input_ids\"",
           "Name of the token ids input">,
    Option<"attentionMask", "attention-mask", "std::string",
           "\"attention_mask\"", "Name of the attention mask input (if any)">,
    Option<"positionIds", "position-ids", "std::string", "\"position_ids\"",
           "Name of the position ids input (if any)">,
    Option<"logits", "logits", "std::string", "\"logits\"",
           "Name of the logits output (default: the only other output)">,
    Option<"pastLength", "past-length", "std::string", "\"past_length\"",
           "Name of the added past-length input">,
    Option<"cacheType", "cache-type", "std::string", "\"model\"",
           "Element type of the cache: model (the past's), f32, f16 or "
           "int8">,
    Option<"maxSeq", "max-seq", "int64_t", "2048",
           "Default capacity of a session's cache, in positions">,
    Option<"logitsPositions", "logits-positions", "std::string", "\"last\"",
           "Logits a step returns: last (the last new position's, "
           "[batch, 1, vocab]: what sampling needs; the final norm and LM "
           "head run on that row only) or all (every new position's)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::tensor::TensorDialect",
                           "::quench::QuenchDialect"];
}

def QuenchDeriveKVCache : Pass<"quench-derive-kv-cache",
                               "::mlir::func::FuncOp"> {
  let summary = "Give a causal LM exported without past its past keys/values";
  let description = [{
    For a decoder exported without past (token ids `[batch, seq]` in,
    logits out: the usual `torch.onnx.export` of a model's forward),
    recognizes every attention core -- `softmax(mask(scale(Q·Kᵀ)))·V`,
    possibly with grouped-query repetition of K and V and rotary or
    learned positions -- and rewrites the function into the with-past form
    of `quench-kv-cache` (which then keeps the past in caches):

    * per core `i` (in program order) an input
      `past_key_values.{i}.key|value` `[batch, kv_heads, past, head_dim]`
      and an output `present.{i}.key|value = concat(past, new, axis 2)`
      (keys and values as attention reads them, before any grouped-query
      repetition);
    * the causal mask rebuilt for queries at positions `past .. past+seq-1`
      over keys `0 .. past+seq-1`; reshape and expand targets on the key
      side with the key length `past + seq`;
    * the other ranges of positions `0 .. seq-1` (rotary tables, learned
      position embeddings) shifted to `past .. past+seq-1`.

    Each mask is evaluated on small sizes before anything changes: it must
    hide exactly the later positions (causal), and the rebuilt mask must
    equal the last rows of the original. Anything not recognized is one
    error naming the ONNX node. Arguments and results carry `quench.name`;
    the token ids are the input named `input-ids`, else the only integer
    input. Hugging Face's inputs `attention-mask` and `position-ids`
    (`[1, seq]`) may be there too: once derived the mask spans the past and
    new positions and the positions are those of the new tokens, as
    generation sessions feed them.
  }];
  let options = [
    Option<"past", "past", "std::string", "\"past_key_values.{i}.{kv}\"",
           "Names of the added past inputs ({i}: layer, {kv}: key|value)">,
    Option<"present", "present", "std::string", "\"present.{i}.{kv}\"",
           "Names of the added present outputs">,
    Option<"inputIds", "input-ids", "std::string", "\"input_ids\"",
           "Name of the token ids input (default: the only integer input)">,
    Option<"attentionMask", "attention-mask", "std::string",
           "\"attention_mask\"",
           "Name of an attention mask input [1, seq] (if any): once derived "
           "it spans past + seq positions">,
    Option<"positionIds", "position-ids", "std::string", "\"position_ids\"",
           "Name of a position ids input [1, seq] (if any)">,
  ];
  let dependentDialects = ["::quench::QuenchDialect"];
}

def QuenchSmooth : Pass<"quench-smooth", "::mlir::ModuleOp"> {
  let summary = "SmoothQuant: migrate activation outliers into the weights";
  let description = [{
    For every set of `quench.linear` ops reading one input `x` (Q, K and V
    after a norm; gate and up after a norm; a fused QKV), per input
    channel `j`:
    `s_j = max|x_j|^alpha / max|W[:, j]|^(1 - alpha)` (the weight maximum
    over every linear of the set; clamped to [1e-4, 1e4]; 1 for a channel
    whose activation or weight maximum is 0), then `x / s` is folded into
    the producer of `x` and every linear's weight column `j` is multiplied
    by `s_j`, so the float model computes the same function (up to float
    rounding). Producers that absorb `1 / s`: `quench.rms_norm` and
    `quench.layer_norm` over the last axis with constant f32 scale (and
    bias), a `quench.linear` with a constant f32 weight (its output rows and
    bias), and a `quench.mul` of two same-shaped tensors one of which is
    such a linear's output read by nothing else (LLaMA's
    `silu(gate) * up` before the down projection). A set whose input has
    another user (a residual add), another producer (attention, an
    activation function), non-f32 weights or activations is left as it is;
    one remark lists those layers and why. Scales are rounded to powers
    of two, so that the migration is exact in f32 (the smoothed float model
    computes bit for bit what the original did).

    With `auto-alpha`, each group takes the candidate -- no migration, or
    `alpha` = 0, 0.05, ..., 1 -- with the least predicted output error of
    W8A8 static quantization: the weights' int8 rounding error weighted by
    the calibrated sums of squares of their inputs, plus the activations'
    rounding noise for the per-tensor minmax step (quench::quant::
    smoothProxyLoss); `alpha` is then ignored.

    The activation maxima come from calibration (`quench-compile
    --smooth=ALPHA --calib=DIR`, which also derives the statistics of
    `x / s` for the quantize stage: docs/quantization.md, "SmoothQuant");
    quench-opt has none, so there `test-act-max` gives every channel of
    every input the same maximum (tests only). Without either the pass
    fails with one error naming every layer without statistics.
  }];
  let options = [
    Option<"alpha", "alpha", "double", "0.5",
           "Migration strength in [0, 1]: 0 leaves activations, 1 moves "
           "all of their range into the weights">,
    Option<"autoAlpha", "auto-alpha", "bool", "false",
           "Choose alpha per group: the candidate (no migration, or alpha "
           "= 0, 0.05, ..., 1) with the least predicted W8A8 error (needs "
           "the Gram matrices' diagonals)">,
    Option<"testActMax", "test-act-max", "double", "0.0",
           "For tests: max |x| assumed for every channel of every linear's "
           "input (0: none; real models use calibration)">,
  ];
  let dependentDialects = ["::quench::QuenchDialect"];
}

def QuenchRotate : Pass<"quench-rotate", "::mlir::ModuleOp"> {
  let summary = "Rotate the residual stream by an orthogonal matrix folded "
                "into the weights (QuaRot/SpinQuant)";
  let description = [{
    Finds the residual stream of each function -- the values connected by
    residual `quench.add`s to the inputs of `quench.rms_norm`s or
    `quench.layer_norm`s over the last axis: token (and other) embedding lookups, the outputs of the linears
    added into it (attention output and down projections) and every sum in
    between -- and rewrites the model so that it carries `x Q` instead of
    `x`, for a seeded random orthogonal `Q` of the stream's width `D`
    (quench::quant::RandomRotation: a randomized Walsh-Hadamard matrix,
    times a random orthogonal factor for the odd part of `D`):

    * every RMSNorm scale `g` on the stream is folded into the linears that
      read the norm's output (`W <- W diag(g)`) and becomes 1, so that the
      norm commutes with `Q` (`rms_norm(x Q) = rms_norm(x) Q`);
    * embedding tables (`quench.gather` of a constant `[V, D]` table along
      axis 0) become `E Q`; a table shared with the LM head is untied (the
      head gets its own rotated copy);
    * linears reading the stream or a norm of it: `W <- W diag(g) Q`;
    * linears writing into it: `W <- Q^T W`, bias `b <- b Q`; constants
      added into it: `c <- c Q`.

    A stream that LayerNorms read is centered first (SliceGPT): embedding
    rows, constants, and the output columns and biases of the linears
    writing into it lose their channel mean (`P = I - 1 1^T / D` folded in
    before `Q`), so the stream is mean-free and every LayerNorm of it equals
    an RMSNorm: it becomes `quench.rms_norm` with a unit scale, its scale
    folded as above and its bias `b` into the reading linears' biases
    (`c <- c + W b`). Such a stream must be read through LayerNorms only.

    Reshapes (squeeze, unsqueeze, expand), transposes and slices that keep
    the last axis, and products with per-row scalars (last dimension 1)
    pass the rotation through.
    The float model computes the same function (up to float rounding,
    about 1e-6 relative); activations and weights have their outliers
    spread over all channels, which is what makes them easier to quantize.
    The pass runs before calibration (the `rotate` stage of quench-compile
    `--rotate=hadamard`), so that statistics, GPTQ and the quantizer see
    the rotated model.

    A stream the rotation cannot pass through fails the pass with one error
    naming the op (and the module is left as it is): a non-f32 stream or
    weight, a stream that is a function input or output, a norm output
    read by anything but linears (unless its scale is 1 and it has no
    bias), a centered stream also read by an RMSNorm or a linear, or any
    other op reading the stream. A module with no norm fails the same
    way.

    With `online`, the input `h` (width `K`) of every linear writing into
    the stream is rotated too, by a second seeded rotation `R` of order
    `K` computed at run time: `h R` (a per-channel sign, the odd factor's
    `m x m` product and a constant-geometry fast Walsh-Hadamard transform:
    log2 stages of gathers of the even and odd pairs, their sum and
    difference concatenated, all existing quench ops) feeds the linear,
    whose weight becomes `W R` (the activations the down projection reads
    lose their outlier channels, for W8A8). Inputs with a dynamic shape
    are left unrotated (the odd factor needs a static reshape); the remark
    counts them.
  }];
  let options = [
    Option<"rotation", "rotation", "std::string", "\"hadamard\"",
           "hadamard (the randomized Hadamard rotation) or none (the pass "
           "does nothing)">,
    Option<"seed", "seed", "uint64_t", "0",
           "Seed of the random signs and odd-order factor (the same seed "
           "gives the same rotation)">,
    Option<"online", "online", "bool", "false",
           "Also rotate the input of every linear writing into the stream "
           "(down and output projections) at run time (a randomized "
           "Hadamard transform, folded into the linear's weight)">,
  ];
  let dependentDialects = ["::quench::QuenchDialect"];
}

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_TD
