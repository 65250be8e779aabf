#!/usr/bin/env python3
"""bench_gemm_specialize.py: the loop's own warp-specialization option on the GPU.

Times tests/gpu/gemm_specialize.tile (stdlib gemm's main loop, written as
`pipeline(STAGES, specialize = WS)`, f32 result) with WS = 0 (the plain TMA ring, forbidden
even if TILE_WARP_SPECIALIZE is set) and WS = 1 (a TMA producer warpgroup where the runtime can
build one: sm_90a, the ptxas program, TMA-fit tensors) for each tile configuration, against
torch.matmul (bf16 in, bf16 out: cuBLAS) in the same run. Each result is checked against the
f32 product before timing. Medians of CUDA events (bench/benchutil.py). Prints one JSON object:
TFLOP/s per case and its ratio to cuBLAS; --out FILE writes it too. Without a GPU it prints
{"skipped": reason} and exits 0.

  PYTHONPATH=python python3 bench/bench_gemm_specialize.py [--size 4096 8192]
      [--configs 128,128,64,4,3 128,256,64,8,3] [--reps 30] [--out FILE]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "python"))

from benchutil import cuda_torch, median_ms, write_report  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs="+", default=[4096, 8192])
    ap.add_argument("--configs", nargs="+", default=["128,128,64,4,3", "128,256,64,8,3"],
                    help="BM,BN,BK,W,STAGES")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch = cuda_torch(args.out)
    if torch is None:
        return 0
    import tile

    prog = tile.load(os.path.join(REPO, "tests", "gpu", "gemm_specialize.tile"))
    rows = []
    for size in args.size:
        a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
        ref = a.float() @ b.float()
        flop = 2.0 * size ** 3
        cublas = flop / median_ms(torch, lambda: torch.matmul(a, b), args.reps) / 1e9
        rows.append({"case": f"cublas bf16 {size}^3", "tflops": round(cublas, 1)})
        for config in args.configs:
            bm, bn, bk, w, stages = (int(x) for x in config.split(","))
            for ws in (0, 1):
                k = prog.kernel("gemm", BM=bm, BN=bn, BK=bk, W=w, STAGES=stages, WS=ws)
                c = torch.empty(size, size, device="cuda", dtype=torch.float32)
                k(a, b, c)
                torch.cuda.synchronize()
                err = ((c - ref).abs().max() / ref.abs().max()).item()
                if err > 1e-3:
                    raise SystemExit(f"WS={ws} {config} at {size}^3: relative error {err:.3g}")
                t = flop / median_ms(torch, lambda: k(a, b, c), args.reps) / 1e9
                rows.append({"case": f"gemm_specialize WS={ws} BM={bm} BN={bn} BK={bk} W={w} S={stages} {size}^3",
                             "tflops": round(t, 1), "ratio_to_cublas": round(t / cublas, 3)})
    write_report({"benchmark": "gemm_specialize", "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
