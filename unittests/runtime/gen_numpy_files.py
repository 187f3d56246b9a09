#!/usr/bin/env python3
"""Writes .npy files with NumPy for the runtime's reader tests.

usage: gen_numpy_files.py OUTDIR

For every file NAME.npy that holds valid data, NAME.bin holds the expected
raw little-endian C-order bytes (arr.tobytes()).
"""
import os
import sys

import numpy as np


def save(out, name, arr, version=None):
    path = os.path.join(out, name + ".npy")
    if version is None:
        np.save(path, arr)
    else:
        with open(path, "wb") as f:
            np.lib.format.write_array(f, arr, version=version)
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(np.ascontiguousarray(arr).tobytes())


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    base = np.arange(24).reshape(2, 3, 4)
    for code in ["f4", "f2", "f8", "i1", "u1", "i2", "u2", "i4", "u4", "i8",
                 "u8"]:
        vals = base - 5 if code[0] != "u" else base * 7
        if code[0] == "f":
            vals = vals * 0.25
        save(out, "t_" + code, vals.astype("<" + code))
    save(out, "t_b1", base % 3 == 0)
    save(out, "scalar_f4", np.array(3.5, dtype=np.float32))
    save(out, "vec_i8", np.arange(-2, 3, dtype=np.int64))
    save(out, "empty_f4", np.zeros((0, 3), dtype=np.float32))
    save(out, "rank8_f8", np.arange(256, dtype=np.float64).reshape((2,) * 8))
    save(out, "v2_i4", np.arange(6, dtype=np.int32).reshape(3, 2), (2, 0))
    save(out, "v3_i4", np.arange(6, dtype=np.int32).reshape(3, 2), (3, 0))
    # bfloat16 as NumPy without ml_dtypes sees it: 2-byte void '|V2'.
    bits = np.array([0x3F80, 0x4000, 0xC040], dtype="<u2")
    save(out, "bf16_v2", np.frombuffer(bits.tobytes(), dtype="V2"))
    # Invalid for the runtime (no .bin):
    np.save(os.path.join(out, "fortran_f4.npy"),
            np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    # NumPy saves a transposed (Fortran-contiguous) array in Fortran order.
    np.save(os.path.join(out, "transposed_f4.npy"),
            np.arange(6, dtype=np.float32).reshape(2, 3).T)
    np.save(os.path.join(out, "bigendian_f4.npy"), np.arange(4, dtype=">f4"))
    np.save(os.path.join(out, "complex_c8.npy"), np.zeros(3, dtype=np.complex64))
    np.save(os.path.join(out, "rank9_u1.npy"), np.zeros((1,) * 9, dtype=np.uint8))


if __name__ == "__main__":
    main()
