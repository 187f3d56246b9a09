"""Writes a quench dialect module of three linears [64 x 64] for
test/Tools/quench-compile/bits-budget.mlir: two of Gaussian weights, and
one of ternary weights {-0.05, 0, 0.05} (exact in every candidate scheme,
so its predicted error is 0 at 2 bits)."""
import numpy as np

rng = np.random.default_rng(0)
ws = [rng.normal(size=(64, 64)) * 0.05,
      rng.normal(size=(64, 64)) * 0.05,
      rng.integers(-1, 2, size=(64, 64)) * 0.05]


def lit(a):
    return "[" + ", ".join("[" + ", ".join("%.6e" % v for v in row) + "]"
                           for row in a) + "]"


print("func.func @main(%x: tensor<2x64xf32>) -> tensor<2x64xf32> {")
for i, w in enumerate(ws):
    print("  %%w%d = quench.constant dense<%s> : tensor<64x64xf32>"
          % (i, lit(w.astype(np.float32))))
prev = "%x"
for i in range(3):
    print('  %%h%d = quench.linear %s, %%w%d : (tensor<2x64xf32>, '
          'tensor<64x64xf32>) -> tensor<2x64xf32> loc("/fc%d/MatMul")'
          % (i, prev, i, i))
    prev = "%%h%d" % i
print("  return %s : tensor<2x64xf32>" % prev)
print("}")
