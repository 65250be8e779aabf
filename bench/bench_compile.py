#!/usr/bin/env python3
"""bench_compile.py: the cold JIT of tile's GEMM against Triton's cold compile of its GEMM.

Both are timed the same way, each in a fresh Python process with an empty cache directory
(TILE_CACHE_DIR, TRITON_CACHE_DIR) and the driver's JIT cache off (CUDA_CACHE_DISABLE=1): torch and the package imported and the inputs on the GPU
first, then the first call of the kernel on 4096 x 4096 bf16 matrices (source to a loaded module
and one launch: tile's frontend, passes, LLVM, ptxas/nvJitLink and module load; Triton's
frontend, MLIR passes, LLVM, ptxas and load), minus a warm call. tile runs stdlib/core/gemm.tile
(tile.stdlib.gemm, TILE_AUTOTUNE=0: the first candidate, no tuning), Triton a matmul kernel of
the same tiles (128 x 128 x 64, 3 stages, 4 warps). The median of --reps processes each. Issue
7's bar: tile's cold JIT at most a quarter of Triton's. Writes JSON in the schema of
bench/RESULTS.md (ratio = Triton / tile, so >= 4 meets the bar).

  PYTHONPATH=python python3 bench/bench_compile.py --out bench/results/compile-h200.json [--reps 3]

--autotune times the first call of the autotuned gemm instead (tuning on, an empty cache: its six
candidates compiled, then each timed), with the candidates compiled one by one
(TILE_AUTOTUNE_THREADS=1) and side by side (the default: one thread per candidate, up to the
cores), alternating, --reps fresh processes each; ratio = one by one / side by side.

Needs torch with a CUDA GPU (and Triton for the anchor); without one it writes {"skipped": reason}.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchutil import cuda_torch, write_report  # bench/ is the script's folder: on sys.path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TILE_CHILD = r"""
import time, torch, tile
from tile import stdlib
a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
b = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
c = torch.empty(4096, 4096, device="cuda", dtype=torch.bfloat16)
torch.cuda.synchronize()
t0 = time.perf_counter(); stdlib.gemm(a, b, out=c); torch.cuda.synchronize(); first = time.perf_counter() - t0
t0 = time.perf_counter(); stdlib.gemm(a, b, out=c); torch.cuda.synchronize(); warm = time.perf_counter() - t0
ref = a.float() @ b.float()
err = ((c.float() - ref).abs().max() / ref.abs().max()).item()
print(first - warm, err)
"""

# Triton's GEMM of tile's tiles (bench_assembler.py assembles its PTX too)
TRITON_MATMUL = r"""
import triton, triton.language as tl

@triton.jit
def matmul(A, B, C, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pm = tl.program_id(0); pn = tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM); rn = pn * BN + tl.arange(0, BN); rk = tl.arange(0, BK)
    acc = tl.zeros([BM, BN], tl.float32)
    for k in tl.range(0, K, BK, num_stages=3):
        a = tl.load(A + rm[:, None] * K + (k + rk)[None, :], mask=(rm[:, None] < M) & ((k + rk)[None, :] < K), other=0.)
        b = tl.load(B + (k + rk)[:, None] * N + rn[None, :], mask=((k + rk)[:, None] < K) & (rn[None, :] < N), other=0.)
        acc = tl.dot(a, b, acc)
    tl.store(C + rm[:, None] * N + rn[None, :], acc.to(tl.bfloat16), mask=(rm[:, None] < M) & (rn[None, :] < N))
"""

TRITON_CHILD = "import time, torch\n" + TRITON_MATMUL + r"""
a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
b = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
c = torch.empty(4096, 4096, device="cuda", dtype=torch.bfloat16)
run = lambda: matmul[(32, 32)](a, b, c, 4096, 4096, 4096, BM=128, BN=128, BK=64, num_warps=4)
torch.cuda.synchronize()
t0 = time.perf_counter(); run(); torch.cuda.synchronize(); first = time.perf_counter() - t0
t0 = time.perf_counter(); run(); torch.cuda.synchronize(); warm = time.perf_counter() - t0
ref = a.float() @ b.float()
err = ((c.float() - ref).abs().max() / ref.abs().max()).item()
print(first - warm, err)
"""


def child(code, env, tune=False):
    """Seconds of the cold call (first minus warm) and the result's largest error, or a reason.
    tune: autotuning on (else TILE_AUTOTUNE=0: the first candidate)."""
    with tempfile.TemporaryDirectory() as cache:
        # CUDA_CACHE_DISABLE: no JIT cache of the driver's either (nvJitLink keeps its cubins there
        # on a GPU machine, across processes: a second process would not pay the assembly)
        e = dict(os.environ, TILE_CACHE_DIR=cache, TRITON_CACHE_DIR=cache, TILE_AUTOTUNE="0", CUDA_CACHE_DISABLE="1",
                 **env)
        if tune:
            del e["TILE_AUTOTUNE"]
        e["PYTHONPATH"] = os.path.join(ROOT, "python") + os.pathsep + e.get("PYTHONPATH", "")
        script = os.path.join(cache, "child.py")  # Triton's jit reads its kernel's source from a file
        with open(script, "w") as f:
            f.write(code)
        p = subprocess.run([sys.executable, script], env=e, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or ["failed"])[-1][:200]
    seconds, err = (float(x) for x in p.stdout.split()[-2:])
    # the largest error relative to the largest result: bf16 rounding of the output is 2^-8
    if not err <= 1e-2:
        return None, f"wrong result: max error {err:g}"
    return seconds, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--autotune", action="store_true", help="the first tuned call, candidates one by one and side by side")
    args = ap.parse_args()

    def write(report):
        write_report(report, args.out)

    torch = cuda_torch(args.out)
    if torch is None:
        return
    if args.autotune:
        return autotune(torch, args, write)
    notes, times = {}, {"tile": [], "triton": []}
    for _ in range(args.reps):
        for name, code in (("tile", TILE_CHILD), ("triton", TRITON_CHILD)):
            s, why = child(code, {})
            if why:
                notes[name] = why
            else:
                times[name].append(s * 1e3)
    ours = round(statistics.median(times["tile"]), 1) if times["tile"] else None
    anchor = round(statistics.median(times["triton"]), 1) if times["triton"] else None
    rows = [{"case": "cold JIT gemm bf16 4096x4096x4096 (first call minus a warm one, empty caches)",
             "metric": "ms", "ours": ours, "anchor": anchor,
             "anchor_name": "Triton cold compile of its GEMM, 128x128x64 (same run)", "vs": "anchor/ours",
             "ratio": round(anchor / ours, 2) if ours and anchor else None,
             "samples_ms": {k: [round(x, 1) for x in v] for k, v in times.items()}}]
    write({"device": torch.cuda.get_device_name(0), "date": time.strftime("%Y-%m-%d"),
           "command": "PYTHONPATH=python python3 bench/bench_compile.py " + " ".join(sys.argv[1:]),
           "method": f"median of {args.reps} fresh processes each, empty cache directories", "rows": rows,
           "notes": notes})


def autotune(torch, args, write):
    """The first call of the autotuned gemm, its candidates compiled one by one and side by side."""
    notes, times = {}, {"1": [], "default": []}
    for _ in range(args.reps):
        for threads in times:
            s, why = child(TILE_CHILD, {} if threads == "default" else {"TILE_AUTOTUNE_THREADS": threads}, tune=True)
            if why:
                notes[threads] = why
            else:
                times[threads].append(s * 1e3)
    one = round(statistics.median(times["1"]), 1) if times["1"] else None
    side = round(statistics.median(times["default"]), 1) if times["default"] else None
    rows = [{"case": f"first tuned call gemm bf16 4096x4096x4096 (6 candidates compiled and timed, empty caches), "
                     f"candidates side by side ({os.cpu_count()} cores)",
             "metric": "ms", "ours": side, "anchor": one,
             "anchor_name": "the same, candidates compiled one by one (TILE_AUTOTUNE_THREADS=1), same run",
             "vs": "anchor/ours", "ratio": round(one / side, 2) if one and side else None,
             "samples_ms": {k: [round(x, 1) for x in v] for k, v in times.items()}}]
    write({"device": torch.cuda.get_device_name(0), "date": time.strftime("%Y-%m-%d"),
           "command": "PYTHONPATH=python python3 bench/bench_compile.py " + " ".join(sys.argv[1:]),
           "method": f"median of {args.reps} fresh processes each, alternating, empty cache directories",
           "rows": rows, "notes": notes})


if __name__ == "__main__":
    main()
