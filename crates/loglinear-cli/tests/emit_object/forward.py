"""Runs the forward program of `loglinear emit --target object` from Python with ctypes and numpy.

    cc -shared -o lib.so <forward>.o -lm
    python3 forward.py DIR lib.so B T H L

DIR holds the emitted manifest.json and the inputs as DIR/<input>.f32 (f32, little-endian, the shapes the
manifest gives); DIR/o.f32 gets the output.
"""
import ctypes
import json
import os
import sys

import numpy as np

F32P = ctypes.POINTER(ctypes.c_float)
I64 = ctypes.c_int64

out_dir, lib_path = sys.argv[1], sys.argv[2]
b, t, h, levels = (int(x) for x in sys.argv[3:7])
manifest = json.load(open(os.path.join(out_dir, "manifest.json")))
program = next(p for p in manifest["programs"] if p["role"] == "forward")
lib = ctypes.CDLL(os.path.abspath(lib_path))

# The run-time sizes from the manifest's formulas (evaluated in order), checked against the object's own helper.
env = {"B": b, "T": t, "H": h, "L": levels, "step": 0}
funcs = {"ceil_div": lambda a, d: -(-a // d), "bitlen": lambda x: int(x).bit_length()}
for name in manifest["sizes"]:
    env[name] = eval(program["size_formulas"][name], funcs, env)
sizes = np.array([env[n] for n in manifest["sizes"]], dtype=np.int64)
helper = np.zeros_like(sizes)
fill = getattr(lib, "ll_%s_sizes" % program["fingerprint"])
fill.argtypes = [ctypes.POINTER(I64), I64, I64, I64, I64, I64]
fill.restype = None
fill(helper.ctypes.data_as(ctypes.POINTER(I64)), b, t, h, levels, 0)
assert (sizes == helper).all(), (sizes, helper)


def shape(dims):
    return tuple(int(d) if d.isdigit() else env[d] for d in dims)


# One f32 array per program buffer, in order: inputs read from their files, the rest zero.
arrays = []
for buf in program["buffers"]:
    dims = shape(buf["shape"])
    if buf["kind"].startswith("input "):
        x = np.fromfile(os.path.join(out_dir, buf["kind"][len("input "):] + ".f32"), dtype="<f4")
        arrays.append(np.ascontiguousarray(x.reshape(dims)))
    else:
        arrays.append(np.zeros(dims, dtype=np.float32))
bufs = (F32P * len(arrays))(*(a.ctypes.data_as(F32P) for a in arrays))
sizes_p = sizes.ctypes.data_as(ctypes.POINTER(I64))

# Every kernel in order over its whole grid, single-threaded.
for kernel in program["kernels"]:
    entry = getattr(lib, kernel["entry"])
    entry.argtypes = [ctypes.POINTER(F32P), ctypes.POINTER(I64), I64, I64, F32P]
    entry.restype = None
    scratch = np.zeros(kernel["scratch_floats"] + 4, dtype=np.float32)
    programs = int(np.prod(shape(kernel["grid"])))
    if programs > 0:
        entry(bufs, sizes_p, 0, programs, scratch.ctypes.data_as(F32P))

out = next(i for i, buf in enumerate(program["buffers"]) if buf["kind"] == "output")
o = arrays[out]
assert np.isfinite(o).all(), "non-finite output"
o.astype("<f4").tofile(os.path.join(out_dir, "o.f32"))
