#!/usr/bin/env python3
"""bench_fp8_anchor.py: the anchors of `bench_gemm --kernel fp8`, torch._scaled_mm on one GPU.

bench_gemm is C and cannot call PyTorch, so this script measures torch._scaled_mm at the same
cases, to be run in the same session: M = N = K = 4096 and 8192 (--sizes), f8e4m3 inputs (random
in [-1, 1], as bench_gemm's), B given [N, K] row-major and passed transposed (column-major, as
_scaled_mm wants), bf16 result, with per-tensor scales (rows "gemm fp8e4m3 SxSxS") and with
DeepSeek block scales, 1x128 for A and 128x128 for B (rows "gemm fp8e4m3 SxSxS block-scaled";
scale_a [M, K/128] outer-dim-major, scale_b [N/128, K/128] passed transposed, as PyTorch's tests
do; needs CUDA 12.9+ and a PyTorch with blockwise scaling, else the row says why and has no
value), and per-tensor with use_fast_accum=True (rows "... fast-accum": the tensor cores' own
accumulation through K, as gemm_fp8's; reported, not read by bench_gemm). Each result is checked against a float32 reference at sampled entries before it is timed;
times are CUDA events, warm-up, then the median of --reps runs; TFLOP/s = 2 M N K / t.

Writes JSON in the schema of bench/RESULTS.md to argv[1], torch's TFLOP/s as "ours" (this file is
the anchor: `bench_gemm --kernel fp8 --anchor FILE` reads these rows):

  python3 bench/bench_fp8_anchor.py bench/results/gemm-fp8-anchor.json [--reps 10] [--sizes 4096,8192]

Needs torch with a CUDA GPU; without one it writes {"skipped": reason} and exits 0.
"""
import argparse
import json
import sys
import time

from benchutil import cuda_torch, median_ms  # bench/ is the script's folder: on sys.path


def check(torch, got, a, b, sa_full, sb_full, name):
    """got [M, N] against float32 a * sa_full @ (b * sb_full)^T at 64 sampled rows."""
    g = torch.Generator(device="cpu").manual_seed(12345)
    rows = torch.randint(0, a.shape[0], (64,), generator=g).to(a.device)
    want = (a[rows].float() * sa_full[rows]) @ (b.float() * sb_full).t()
    err = (got[rows].float() - want).abs()
    tol = 1e-2 * want.abs() + 1e-3 * (a.shape[1] / 9.0) ** 0.5 * 2.25
    if not bool((err <= tol).all()):
        raise RuntimeError(f"{name}: result differs from the reference by up to {float(err.max()):.4g}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--sizes", default="4096,8192")
    args = parser.parse_args()
    torch = cuda_torch(args.out)
    if torch is None:  # no torch or no GPU: nothing to measure
        return 0
    dev = "cuda"
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        m = n = k = size
        gen = torch.Generator(device=dev).manual_seed(size)
        a = (torch.rand(m, k, device=dev, generator=gen) * 2 - 1).to(torch.float8_e4m3fn)
        b = (torch.rand(n, k, device=dev, generator=gen) * 2 - 1).to(torch.float8_e4m3fn)  # [N, K] row-major
        flops = 2.0 * m * n * k
        # per-tensor
        name = f"gemm fp8e4m3 {m}x{n}x{k}"
        sa = torch.tensor(0.75, device=dev)
        sb = torch.tensor(1.25, device=dev)
        row = {"case": name, "metric": "TFLOP/s", "anchor": None, "anchor_name": None, "vs": "ours/anchor",
               "ratio": None, "ours_name": "torch._scaled_mm per-tensor, bf16 out"}
        try:
            fn = lambda: torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
            check(torch, fn(), a, b, sa.expand(m, 1), sb, name)  # per-row scales for the check's indexing
            row["ours"] = flops / (median_ms(torch, fn, args.reps) * 1e-3) / 1e12
        except Exception as e:
            row["ours"], row["error"] = None, str(e)
        rows.append(row)
        print(json.dumps(row))
        # per-tensor with the tensor cores' own accumulation through K (cuBLAS fast accumulation),
        # as our gemm_fp8 accumulates: the faster anchor, reported beside the default one
        fast = dict(row, case=name + " fast-accum", ours_name="torch._scaled_mm per-tensor, use_fast_accum=True")
        try:
            fn = lambda: torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                          use_fast_accum=True)
            fast["ours"] = flops / (median_ms(torch, fn, args.reps) * 1e-3) / 1e12
        except Exception as e:
            fast["ours"], fast["error"] = None, str(e)
        rows.append(fast)
        print(json.dumps(fast))
        # block-scaled: scale_a per row per 128 of K, scale_b per 128 x 128 block of B ([N, K])
        name = f"gemm fp8e4m3 {m}x{n}x{k} block-scaled"
        kb, nb = (k + 127) // 128, (n + 127) // 128
        bsa = torch.rand(m, kb, device=dev, generator=gen) + 0.5
        bsb = torch.rand(nb, kb, device=dev, generator=gen) + 0.5
        row = {"case": name, "metric": "TFLOP/s", "anchor": None, "anchor_name": None, "vs": "ours/anchor",
               "ratio": None, "ours_name": "torch._scaled_mm BlockWise1x128 x BlockWise128x128, bf16 out"}
        try:
            sa_outer = bsa.t().contiguous().t()  # 1x128 blocks: scales outer-dim-major
            fn = lambda: torch._scaled_mm(a, b.t(), scale_a=sa_outer, scale_b=bsb.t(), out_dtype=torch.bfloat16)
            sa_full = bsa.repeat_interleave(128, dim=1)[:, :k]
            sb_full = bsb.repeat_interleave(128, dim=0)[:n].repeat_interleave(128, dim=1)[:, :k]
            check(torch, fn(), a, b, sa_full, sb_full, name)
            row["ours"] = flops / (median_ms(torch, fn, args.reps) * 1e-3) / 1e12
        except Exception as e:
            row["ours"], row["error"] = None, str(e)
        rows.append(row)
        print(json.dumps(row))
    result = {"device": torch.cuda.get_device_name(0), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "command": " ".join(sys.argv), "torch": torch.__version__, "cuda": torch.version.cuda, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
