// A dense layer written in the quench dialect: y = relu(x @ w + b), with a
// dynamic batch dim. w[k][n] = 0.125 * (k + 1) - 0.25 * n and
// b[n] = 0.5 - 0.5 * n (main.c recomputes them to check the results).
func.func @main(%x: tensor<?x8xf32> {quench.name = "x"}) -> (tensor<?x4xf32> {quench.name = "y"}) {
  %w = quench.constant dense<[
    [0.125, -0.125, -0.375, -0.625],
    [0.25, 0.0, -0.25, -0.5],
    [0.375, 0.125, -0.125, -0.375],
    [0.5, 0.25, 0.0, -0.25],
    [0.625, 0.375, 0.125, -0.125],
    [0.75, 0.5, 0.25, 0.0],
    [0.875, 0.625, 0.375, 0.125],
    [1.0, 0.75, 0.5, 0.25]
  ]> : tensor<8x4xf32>
  %b = quench.constant dense<[0.5, 0.0, -0.5, -1.0]> : tensor<4xf32>
  %m = quench.matmul %x, %w : (tensor<?x8xf32>, tensor<8x4xf32>) -> tensor<?x4xf32>
  %a = quench.add %m, %b : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32>
  %y = quench.relu %a : tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
