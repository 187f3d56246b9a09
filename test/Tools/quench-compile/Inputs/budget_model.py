"""Writes a quench dialect module of three linears [64 x 64] with Student-t
weights of scale 1, 0.1 and 0.01 (test/Tools/quench-compile/bits-budget.mlir)."""
import sys
import numpy as np
rng = np.random.default_rng(0)
# Three linears [64 x 64]: weights of scale 1, 0.1 and 0.01 (weight errors
# scale with them: the first is the most sensitive without calibration).
ws = [rng.standard_t(4, size=(64, 64)).astype(np.float32) * s for s in (1.0, 0.1, 0.01)]
def lit(a):
    return "[" + ", ".join("[" + ", ".join("%.6g" % v for v in row) + "]" for row in a) + "]"
print("func.func @main(%x: tensor<2x64xf32>) -> tensor<2x64xf32> {")
for i, w in enumerate(ws):
    print("  %%w%d = quench.constant dense<%s> : tensor<64x64xf32>" % (i, lit(w)))
prev = "%x"
for i in range(3):
    print('  %%h%d = quench.linear %s, %%w%d : (tensor<2x64xf32>, tensor<64x64xf32>) -> tensor<2x64xf32> loc("/fc%d/MatMul")' % (i, prev, i, i))
    prev = "%%h%d" % i
print("  return %s : tensor<2x64xf32>" % prev)
print("}")
