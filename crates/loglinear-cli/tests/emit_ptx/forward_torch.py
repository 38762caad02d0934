"""Runs the forward program of `loglinear emit --target ptx` from PyTorch through the CUDA driver API (ctypes).

    python3 forward_torch.py DIR INPUTS.safetensors [REFERENCE.safetensors]

DIR holds the emitted manifest.json and PTX; INPUTS holds the variant's inputs ([B, T, H, D] as fla; f32, f16 or
bf16), e.g. from `loglinear random`. Prints the output's shape; with REFERENCE (e.g. from `loglinear run --backend
reference`) also the relative error of `o`, and fails above spec §11.3's tolerance (1e-4 for an f32 reference, 5e-3
for a 16-bit one: the reference's `o` is rounded to its inputs' dtype).
"""
import ctypes
import json
import os
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name != "__metadata__":
            a, b = t["data_offsets"]
            raw = bytearray(data[8 + n + a : 8 + n + b])
            out[name] = torch.frombuffer(raw, dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


out_dir, inputs_path = sys.argv[1], sys.argv[2]
manifest = json.load(open(os.path.join(out_dir, "manifest.json")))
program = next(p for p in manifest["programs"] if p["role"] == "forward")
inputs = read_safetensors(inputs_path)

# The run-time sizes, from the manifest's formulas over B, T, H and L (λ's levels, when the variant has λ).
ins = [buf for buf in program["buffers"] if buf["kind"].startswith("input ")]
b, t, h = inputs[ins[0]["name"]].shape[:3]
lam = next((buf for buf in ins if buf["shape"][-1:] == ["L"]), None)
levels = inputs[lam["name"]].shape[-1] if lam else 1
env = {"B": b, "T": t, "H": h, "L": levels, "step": 0}
funcs = {"ceil_div": lambda a, d: -(-a // d), "bitlen": lambda x: int(x).bit_length()}
for name in manifest["sizes"]:
    env[name] = eval(program["size_formulas"][name], funcs, env)

# Every buffer f32 on the GPU: the inputs converted, the rest zero.
torch.zeros(1, device="cuda")  # makes the primary context current for the driver API
buffers = []
for buf in program["buffers"]:
    shape = [int(d) if d.isdigit() else env[d] for d in buf["shape"]]
    if buf["kind"].startswith("input "):
        x = inputs[buf["kind"][len("input ") :]].to(device="cuda", dtype=torch.float32).contiguous()
        assert list(x.shape) == shape, (buf["name"], list(x.shape), shape)
        buffers.append(x)
    else:
        buffers.append(torch.zeros(shape, device="cuda", dtype=torch.float32))

cuda = ctypes.CDLL("libcuda.so.1")
P = ctypes.c_void_p
cuda.cuLaunchKernel.argtypes = [P] + [ctypes.c_uint] * 7 + [P, P, P]


def check(result, what):
    if result != 0:
        raise RuntimeError("%s failed: CUresult %d" % (what, result))


module = P()
ptx = open(os.path.join(out_dir, program["file"]), "rb").read() + b"\0"
check(cuda.cuModuleLoadData(ctypes.byref(module), ptx), "cuModuleLoadData")
stream = P(torch.cuda.current_stream().cuda_stream)
sizes = [ctypes.c_int64(env[n]) for n in manifest["sizes"]]

# Each kernel in order on one stream, its grid in launches of at most WAVE blocks (program lo + blockIdx.x).
WAVE = 4096
for kernel in program["kernels"]:
    function = P()
    check(cuda.cuModuleGetFunction(ctypes.byref(function), module, kernel["entry"].encode()), kernel["entry"])
    programs = 1
    for d in kernel["grid"]:
        programs *= int(d) if d.isdigit() else env[d]
    scratch = torch.empty(max(kernel["scratch_floats_per_block"] * min(programs, WAVE), 1), device="cuda")
    for lo in range(0, programs, WAVE):
        hi = min(lo + WAVE, programs)
        args = [P(x.data_ptr()) for x in buffers] + sizes
        args += [ctypes.c_int64(lo), ctypes.c_int64(hi), P(scratch.data_ptr())]
        params = (P * len(args))(*(ctypes.cast(ctypes.byref(a), P) for a in args))
        check(cuda.cuLaunchKernel(function, hi - lo, 1, 1, kernel["threads"], 1, 1, 0, stream, params, None),
              "cuLaunchKernel " + kernel["entry"])
torch.cuda.synchronize()
o = buffers[next(i for i, buf in enumerate(program["buffers"]) if buf["kind"] == "output")]
print("o", tuple(o.shape), "finite" if torch.isfinite(o).all() else "NOT FINITE")

if len(sys.argv) > 3:
    ref = read_safetensors(sys.argv[3])["o"]
    tolerance = 1e-4 if ref.dtype in (torch.float32, torch.float64) else 5e-3
    ref = ref.to(device="cuda", dtype=torch.float64)
    err = ((o.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()
    print("relative error vs reference: %.3e (tolerance %.0e)" % (err, tolerance))
    sys.exit(0 if err <= tolerance else 1)
