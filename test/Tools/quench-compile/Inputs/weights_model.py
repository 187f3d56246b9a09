#!/usr/bin/python3
"""Writes a one-layer model with a 64x64 f32 weight (16 KB: above the 4 KB
at which constants become weights) for weights.mlir, and checks what the
compiled artifacts hold.

  weights_model.py DIR                      writes DIR/model.mlir, DIR/x.npy
  weights_model.py DIR --check-image FILE   FILE (a weight image) holds W
  weights_model.py DIR --check-output FILE  FILE (y.npy) is x @ W^T
"""
import sys

import numpy as np

W = ((np.arange(64 * 64, dtype=np.float32).reshape(64, 64) * 37) % 101 - 50) / 64
X = (np.arange(64, dtype=np.float32).reshape(1, 64) % 5 - 2) / 4


def main():
    out = sys.argv[1]
    if len(sys.argv) == 2:
        rows = ", ".join("[" + ", ".join("%r" % float(v) for v in r) + "]" for r in W)
        with open(out + "/model.mlir", "w") as f:
            f.write("func.func @main(%%x: tensor<1x64xf32> {quench.name = \"x\"}) -> "
                    "(tensor<1x64xf32> {quench.name = \"y\"}) {\n"
                    "  %%w = quench.constant dense<[%s]> : tensor<64x64xf32>\n"
                    "  %%y = quench.linear %%x, %%w : (tensor<1x64xf32>, tensor<64x64xf32>)"
                    " -> tensor<1x64xf32>\n"
                    "  return %%y : tensor<1x64xf32>\n}\n" % rows)
        np.save(out + "/x.npy", X)
        return
    what, path = sys.argv[2], sys.argv[3]
    if what == "--check-image":
        image = np.fromfile(path, dtype=np.uint8)
        # The weight is stored transposed for the kernel, or as it is.
        found = any(image.tobytes().find(np.ascontiguousarray(w).tobytes()) >= 0
                    for w in (W, W.T))
        sys.exit(0 if found else "the weight image does not hold the weight")
    if what == "--check-output":
        y = np.load(path)
        ref = X @ W.T  # quench.linear: y = x·Wᵀ
        err = float(np.abs(y - ref).max())
        sys.exit(0 if err < 1e-4 else "max |y - x @ W| = %g" % err)
    sys.exit("unknown option " + what)


if __name__ == "__main__":
    main()
