"""Runs the forward program of `loglinear emit --target object` from Python with ctypes alone (no numpy).

    cc -shared -o lib.so <forward>.o -lm
    python3 forward.py DIR lib.so B T H L

DIR holds the emitted manifest.json and the inputs as DIR/<input>.f32 (f32, little-endian, the shapes the
manifest gives); DIR/o.f32 gets the output.
"""
import array
import ctypes
import json
import os
import sys

F32P = ctypes.POINTER(ctypes.c_float)
I64 = ctypes.c_int64

out_dir, lib_path = sys.argv[1], sys.argv[2]
b, t, h, levels = (int(x) for x in sys.argv[3:7])
manifest = json.load(open(os.path.join(out_dir, "manifest.json")))
program = next(p for p in manifest["programs"] if p["role"] == "forward")
lib = ctypes.CDLL(os.path.abspath(lib_path))

# The sizes every kernel reads, filled by the object's own helper.
sizes = (I64 * len(manifest["sizes"]))()
fill = getattr(lib, "ll_%s_sizes" % program["fingerprint"])
fill.argtypes = [ctypes.POINTER(I64), I64, I64, I64, I64, I64]
fill.restype = None
fill(sizes, b, t, h, levels, 0)
env = dict(zip(manifest["sizes"], sizes))


def count(dims):
    n = 1
    for d in dims:
        n *= int(d) if d.isdigit() else env[d]
    return n


# One f32 buffer per program buffer, in order: inputs read from their files, the rest zero.
buffers = []
for buf in program["buffers"]:
    n = count(buf["shape"])
    if buf["kind"].startswith("input "):
        data = array.array("f")
        with open(os.path.join(out_dir, buf["kind"][len("input "):] + ".f32"), "rb") as f:
            data.frombytes(f.read())
        assert len(data) == n, (buf["name"], len(data), n)
        buffers.append((ctypes.c_float * n).from_buffer(data))
    else:
        buffers.append((ctypes.c_float * max(n, 1))())
bufs = (F32P * len(buffers))(*(ctypes.cast(x, F32P) for x in buffers))

# Every kernel in order over its whole grid, single-threaded.
for kernel in program["kernels"]:
    entry = getattr(lib, kernel["entry"])
    entry.argtypes = [ctypes.POINTER(F32P), ctypes.POINTER(I64), I64, I64, F32P]
    entry.restype = None
    scratch = (ctypes.c_float * (kernel["scratch_floats"] + 4))()
    programs = count(kernel["grid"])
    if programs > 0:
        entry(bufs, sizes, 0, programs, scratch)

out = next(i for i, buf in enumerate(program["buffers"]) if buf["kind"] == "output")
with open(os.path.join(out_dir, "o.f32"), "wb") as f:
    f.write(bytes(buffers[out]))
