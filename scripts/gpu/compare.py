#!/usr/bin/env python3
"""Compares tensor `o` of two safetensors files (standard library only): relative L2 error ||a - b|| / ||b|| (the
conformance suite's measure) against a tolerance; exit 1 when over it or non-finite.
Usage: compare.py GOT.safetensors REF.safetensors TOL [LABEL]"""
import array, json, math, struct, sys


def read(path, name="o"):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))[name]
        a, z = meta["data_offsets"]
        f.seek(8 + n + a)
        raw = f.read(z - a)
    dt = meta["dtype"]
    if dt in ("BF16", "F16"):
        h = array.array("H", raw)
        if dt == "BF16":
            x = array.array("f", array.array("I", (u << 16 for u in h)).tobytes())
        else:
            x = [struct.unpack("<e", struct.pack("<H", u))[0] for u in h]
    else:
        x = array.array({"F32": "f", "F64": "d"}[dt], raw)
    return x, meta["shape"], dt


got, gshape, gdt = read(sys.argv[1])
ref, rshape, _ = read(sys.argv[2])
tol = float(sys.argv[3])
label = sys.argv[4] if len(sys.argv) > 4 else sys.argv[1]
finite = all(math.isfinite(v) for v in got)
if gshape != rshape or not finite:
    err = float("inf")
else:
    d = math.sqrt(sum((a - b) * (a - b) for a, b in zip(got, ref)))
    r = math.sqrt(sum(b * b for b in ref))
    err = d / r if r > 0 else d
ok = finite and err <= tol
print(json.dumps({"check": label, "dtype": gdt, "shape": gshape, "rel_err": err, "tol": tol, "finite": finite,
                  "pass": ok}), flush=True)
sys.exit(0 if ok else 1)
