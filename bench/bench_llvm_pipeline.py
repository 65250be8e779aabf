#!/usr/bin/env python3
"""bench_llvm_pipeline.py: the standard library's kernels under two LLVM IR pipelines, on one GPU.

The cold JIT spends about a quarter of its time in LLVM's IR pipeline (default<O2>); a shorter
hand-picked pipeline (TILE_LLVM_PIPELINE, docs/RUNTIME.md) halves that part, and can only become
the default if no kernel gets slower. This script runs each core kernel (and the GEMM and
flash_fwd) through tile.stdlib on torch tensors, once per setting, each setting in fresh
processes with an empty kernel cache, the settings interleaved --reps times: per kernel the
median of 15 CUDA-event timings of 10 back-to-back calls, the least of the reps per setting.
Each kernel's outputs must be bit-equal between the settings (IEEE arithmetic: an IR pipeline
may reorder instructions, never change a rounding), and the child checks them against torch
once. TILE_AUTOTUNE=0, so both settings time the same tiles. Writes JSON in the schema of
bench/RESULTS.md: ratio = default time / candidate time (>= 1: the candidate is at least as fast).

  PYTHONPATH=python python3 bench/bench_llvm_pipeline.py [--pipeline P] [--reps 3] [--out FILE]

Needs torch with a CUDA GPU; without one it writes {"skipped": reason}.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

from benchutil import cuda_torch, write_report  # bench/ is the script's folder: on sys.path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIGHT = ("function(sroa,early-cse,instcombine,simplifycfg,loop-mssa(licm),loop(indvars),gvn,instcombine,"
         "adce,simplifycfg,infer-alignment)")

CHILD = r"""
import hashlib, json, math, sys, torch
from tile import stdlib
torch.manual_seed(0)
cuda = dict(device="cuda")
x = torch.randn(8192, 8192, **cuda)
w, bb = torch.randn(8192, **cuda), torch.randn(8192, **cuda)
v = torch.randn(1 << 28, **cuda)
table, idx = torch.randn(65536, 1024, **cuda), torch.randint(0, 65536, (65536,), dtype=torch.int32, **cuda)
ga = torch.randn(8192, 8192, dtype=torch.bfloat16, **cuda)
gb = torch.randn(8192, 8192, dtype=torch.bfloat16, **cuda)
q, k, vv = (torch.randn(1, 16, 8192, 128, dtype=torch.bfloat16, **cuda) for _ in range(3))
out = {}
cases = {
    "vector_add 2^28": (lambda: stdlib.vector_add(v, v), lambda r: v + v),
    "softmax 8192x8192": (lambda: stdlib.softmax(x), lambda r: torch.softmax(x, 1)),
    "layernorm 8192x8192": (lambda: stdlib.layernorm(x, w, bb),
                            lambda r: torch.nn.functional.layer_norm(x, (8192,), w, bb)),
    "sum_rows 8192x8192": (lambda: stdlib.sum_rows(x), lambda r: x.sum(1)),
    "cumsum_rows 8192x8192": (lambda: stdlib.cumsum_rows(x), lambda r: x.cumsum(1)),
    "sum_all 2^28": (lambda: stdlib.sum_all(v), lambda r: v.sum().reshape(1)),
    "gather_rows 65536x1024": (lambda: stdlib.gather_rows(table, idx), lambda r: table[idx.long()]),
    "gemm bf16 8192^3": (lambda: stdlib.gemm(ga, gb), lambda r: (ga.float() @ gb.float())),
    "flash_fwd S=8192 D=128 causal": (lambda: stdlib.flash_fwd(q, k, vv, causal=True),
        lambda r: torch.nn.functional.scaled_dot_product_attention(q, k, vv, is_causal=True)),
}
for name, (run, ref) in cases.items():
    r = run(); torch.cuda.synchronize()
    want = ref(r).float()
    err = ((r.float() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()
    if not err <= (3e-2 if "bf16" in name or "flash" in name or "cumsum" in name else 1e-4):
        print(f"{name}: wrong result, max error {err:g}", file=sys.stderr); sys.exit(1)
    digest = hashlib.sha256(r.contiguous().view(torch.uint8).cpu().numpy().tobytes()).hexdigest()[:16] \
        if "sum_all" not in name else "atomic"
    times = []
    for _ in range(15):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(10): run()
        e.record(); torch.cuda.synchronize(); times.append(s.elapsed_time(e) / 10)
    times.sort()
    out[name] = {"ms": times[7], "digest": digest}
print(json.dumps(out))
"""


def child(pipeline):
    with tempfile.TemporaryDirectory() as cache:
        e = dict(os.environ, TILE_CACHE_DIR=cache, TILE_AUTOTUNE="0")
        e.pop("TILE_LLVM_PIPELINE", None)
        if pipeline:
            e["TILE_LLVM_PIPELINE"] = pipeline
        e["PYTHONPATH"] = os.path.join(ROOT, "python") + os.pathsep + e.get("PYTHONPATH", "")
        p = subprocess.run([sys.executable, "-c", CHILD], env=e, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"bench_llvm_pipeline: child failed: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pipeline", default=LIGHT, help="the candidate (LLVM pass syntax)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    torch = cuda_torch(args.out)
    if torch is None:
        return
    runs = {"default": [], "candidate": []}
    for _ in range(args.reps):
        runs["default"].append(child(None))
        runs["candidate"].append(child(args.pipeline))
    rows, notes = [], {}
    for name in runs["default"][0]:
        base = min(r[name]["ms"] for r in runs["default"])
        cand = min(r[name]["ms"] for r in runs["candidate"])
        digests = {r[name]["digest"] for rs in runs.values() for r in rs}
        if len(digests) > 1:
            notes[name] = f"outputs differ between the pipelines: {sorted(digests)}"
        rows.append({"case": f"{name} under the candidate pipeline", "metric": "ms", "ours": round(cand, 4),
                     "anchor": round(base, 4), "anchor_name": "default<O2> (same run)", "vs": "anchor/ours",
                     "ratio": round(base / cand, 4)})
        print(f"{name:34s} default {base:9.4f} ms  candidate {cand:9.4f} ms  ratio {base / cand:.3f}"
              f"{'  OUTPUTS DIFFER' if name in notes else ''}")
    write_report({"device": torch.cuda.get_device_name(0), "date": time.strftime("%Y-%m-%d"),
                  "command": "PYTHONPATH=python python3 bench/bench_llvm_pipeline.py " + " ".join(sys.argv[1:]),
                  "pipeline": args.pipeline, "rows": rows, "notes": notes}, args.out)


if __name__ == "__main__":
    main()
