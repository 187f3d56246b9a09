// A 512 MiB f32 weight that costs nothing to parse (a splat) but is
// materialized by weight quantization: out-of-memory.mlir runs it under an
// address-space limit.
func.func @main(%x: tensor<1x8192xf32>) -> tensor<1x16384xf32> {
  %w = quench.constant dense<0.5> : tensor<16384x8192xf32>
  %y = quench.linear %x, %w : (tensor<1x8192xf32>, tensor<16384x8192xf32>) -> tensor<1x16384xf32> loc("/l0/MatMul")
  return %y : tensor<1x16384xf32>
}
