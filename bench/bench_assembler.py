#!/usr/bin/env python3
"""bench_assembler.py: where the last step of a cold JIT goes, PTX to a loaded cubin.

For the PTX of tile's core kernels (the variant a first launch on contiguous aligned tensors
gets, from `tilec build --emit ptx` with TILE_EMIT_SPECIALIZED=1 and the launch's conditions) and
for the PTX of Triton's GEMM of the same tiles (128 x 128 x 64, 4 warps, 3 stages:
bench_compile.py's TRITON_MATMUL), it times each way of assembling it on this machine's CPU:

  nvjitlink        libnvJitLink in process, -O3 (what libtile does when it can load it)
  nvjitlink-split  the same with -split-compile=0 (ptxas's optimizations on every core)
  ptxas            the ptxas program in a fresh process (wall time, and ptxas's own
                   "Compile time" from -v)
  driver           cuModuleLoadData on the PTX with the driver's JIT cache off

The median of --reps each (after one untimed call that loads the library). The point is to
compare the assemblers on one PTX and the kernels under one assembler, on the device machine's
CPU, whose speed varies between machines: run it where the cold-JIT numbers are taken.

  CUDA_CACHE_DISABLE=1 PYTHONPATH=python python3 bench/bench_assembler.py --tilec BIN/tilec \
      --out bench/results/assembler-h200.json

Needs torch with a CUDA GPU (and Triton for its PTX); without one it writes {"skipped": reason}.
"""
import argparse
import ctypes
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("CUDA_CACHE_DISABLE", "1")  # before the driver starts

from bench_compile import TRITON_MATMUL  # bench/ is the script's folder: on sys.path
from benchutil import cuda_torch, write_report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (file, kernel, TILE_EMIT_CONDS): the launch conditions bench_runtime's first launch gets
KERNELS = [
    ("stdlib/core/gemm.tile", "gemm", ""),
    ("stdlib/core/layernorm.tile", "layernorm", "1"),
    ("stdlib/core/softmax.tile", "softmax", "1"),
    ("stdlib/core/reduce.tile", "cumsum_rows", ""),
]


def tile_ptx(tilec, path, kernel, conds, out):
    env = dict(os.environ, TILE_EMIT_SPECIALIZED="1")
    if conds:
        env["TILE_EMIT_CONDS"] = conds
    subprocess.run([tilec, "build", "--emit", "ptx", "--arch", "sm_90a", os.path.join(ROOT, path), "-k", kernel,
                    "-o", out], check=True, env=env)
    with open(out, "rb") as f:
        return f.read()


def triton_ptx(tmp):
    """The PTX of bench_compile.py's Triton GEMM (its one definition), compiled in a child process:
    Triton's jit reads a kernel's source from a file."""
    script = os.path.join(tmp, "triton_child.py")
    out = os.path.join(tmp, "triton_gemm.ptx")
    with open(script, "w") as f:
        f.write("import sys, torch\n" + TRITON_MATMUL + """
a = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
c = torch.empty_like(a)
k = matmul[(8, 8)](a, a, c, 1024, 1024, 1024, BM=128, BN=128, BK=64, num_warps=4)
open(sys.argv[1], "w").write(k.asm["ptx"])
""")
    p = subprocess.run([sys.executable, script, out], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TRITON_CACHE_DIR=os.path.join(tmp, "triton-cache")))
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip().splitlines() or ["failed"])[-1][:200])
    with open(out, "rb") as f:
        return out, f.read()


def load_nvjitlink():
    for name in ("libnvJitLink.so.13", "/usr/local/cuda/lib64/libnvJitLink.so.13", "libnvJitLink.so.12"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def nvjitlink_ms(lib, ptx, options):
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    handle = ctypes.c_void_p()
    t0 = time.perf_counter()
    assert lib.nvJitLinkCreate(ctypes.byref(handle), len(options), opts) == 0
    assert lib.nvJitLinkAddData(handle, 2, ptx, ctypes.c_size_t(len(ptx)), b"k.ptx") == 0  # NVJITLINK_INPUT_PTX
    rc = lib.nvJitLinkComplete(handle)
    ms = (time.perf_counter() - t0) * 1e3
    lib.nvJitLinkDestroy(ctypes.byref(handle))
    assert rc == 0, f"nvJitLinkComplete: {rc}"
    return ms


def ptxas_ms(ptxas, path):
    t0 = time.perf_counter()
    r = subprocess.run([ptxas, "-arch=sm_90a", "-O3", "-v", "-o", path + ".cubin", path], capture_output=True,
                       text=True, check=True)
    wall = (time.perf_counter() - t0) * 1e3
    m = re.findall(r"Compile time = ([0-9.]+) ms", r.stderr)
    regs = re.findall(r"Used (\d+) registers", r.stderr)
    return wall, sum(float(x) for x in m), int(regs[0]) if regs else -1


def driver_ms(cuda, ptx):
    mod = ctypes.c_void_p()
    t0 = time.perf_counter()
    rc = cuda.cuModuleLoadData(ctypes.byref(mod), ctypes.c_char_p(ptx + b"\0"))
    ms = (time.perf_counter() - t0) * 1e3
    assert rc == 0, f"cuModuleLoadData: {rc}"
    cuda.cuModuleUnload(mod)
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tilec", required=True)
    ap.add_argument("--ptxas", default="/usr/local/cuda/bin/ptxas")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch = cuda_torch(args.out)
    if torch is None:
        return
    torch.zeros(1, device="cuda")  # the primary context, current on this thread
    cuda = ctypes.CDLL("libcuda.so.1")
    nvj = load_nvjitlink()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    rows = []
    tmp = tempfile.mkdtemp()
    ptxs = []
    for path, kernel, conds in KERNELS:
        out = os.path.join(tmp, kernel + ".ptx")
        ptxs.append((f"tile {kernel}" + (f" (conditions {conds})" if conds else ""), out,
                     tile_ptx(args.tilec, path, kernel, conds, out)))
    try:
        out, src = triton_ptx(tmp)
        ptxs.append(("Triton gemm 128x128x64 W=4 S=3", out, src))
    except Exception as e:  # noqa: BLE001 (no Triton: its row is left out, said in the report)
        rows.append({"case": "Triton gemm", "skipped": f"{type(e).__name__}: {e}"})
    for name, path, src in ptxs:
        lines = src.count(b"\n")
        wgmma = src.count(b"wgmma.mma_async")
        pre = f"{name} ({lines} PTX lines, {wgmma} wgmma)"
        if nvj is not None:
            for tag, opts in (("nvjitlink", ["-arch=sm_90a", "-O3"]),
                              ("nvjitlink-split", ["-arch=sm_90a", "-O3", "-split-compile=0"])):
                nvjitlink_ms(nvj, src, opts)
                t = [nvjitlink_ms(nvj, src, opts) for _ in range(args.reps)]
                rows.append({"case": f"{pre} | {tag}", "metric": "ms", "ours": round(statistics.median(t), 2)})
        walls, own = [], []
        for _ in range(args.reps):
            w, c, regs = ptxas_ms(args.ptxas, path)
            walls.append(w)
            own.append(c)
        rows.append({"case": f"{pre} | ptxas process", "metric": "ms", "ours": round(statistics.median(walls), 2)})
        rows.append({"case": f"{pre} | ptxas's own Compile time", "metric": "ms",
                     "ours": round(statistics.median(own), 2), "registers": regs})
        driver_ms(cuda, src)
        t = [driver_ms(cuda, src) for _ in range(args.reps)]
        rows.append({"case": f"{pre} | driver JIT (cuModuleLoadData)", "metric": "ms",
                     "ours": round(statistics.median(t), 2)})
    for r in rows:
        print(r)
    write_report({"device": torch.cuda.get_device_name(), "cpu": cpu, "cores": os.cpu_count(),
                  "date": time.strftime("%Y-%m-%d"),
                  "command": "CUDA_CACHE_DISABLE=1 PYTHONPATH=python python3 bench/bench_assembler.py "
                             f"--tilec TILEC --reps {args.reps}", "rows": rows}, args.out)


if __name__ == "__main__":
    main()
