#!/usr/bin/env python3
"""bench_attention.py: stdlib/attention/flash_fwd.tile against PyTorch's SDPA on one GPU.

For B=1, H=32, D=128, bf16, S = 4096 and 16384, causal and not: runs our flash_fwd through the
Python package (tile.stdlib.flash_fwd on torch tensors, on PyTorch's current stream) at a few
tile configurations, checks each result against torch.nn.functional.scaled_dot_product_attention
(the cuDNN backend's output; a configuration whose result is off is recorded and not timed),
and times ours and SDPA with the cuDNN and the flash backends (torch.nn.attention.sdpa_kernel)
with CUDA events: warm-up, then the median of --reps runs. TFLOP/s count 4 * B * H * S^2 * D
flops (half of that when causal). Writes JSON in the schema of bench/RESULTS.md to argv[1]:
one row per (case, configuration) and one "best" row per case, ratio = ours / cuDNN; each row
also carries the flash backend's TFLOP/s ("flash", "flash_over_cudnn"), the plain Triton kernel's
(the FlashAttention-2 tutorial kernel of ../shared/anchors/anchors4.py, best of its three
configurations, checked like ours: "triton", "triton_over_cudnn"; the issue's bar is ours/cuDNN at
least triton/cuDNN), the first call's time (compile or cache load included: "first_call_s") and
the largest difference from SDPA.

  TILE_LIBRARY=build/libtile.so PYTHONPATH=python python3 bench/bench_attention.py \\
      bench/results/attention.json [--reps 10] [--seqs 4096,16384] [--configs 128x64w4s2,...]

Needs torch with a CUDA GPU; without one it writes {"skipped": reason} and exits 0.
"""
import argparse
import os
import sys
import time

from benchutil import cuda_torch, median_ms, write_report  # bench/ is the script's folder: on sys.path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

# BM x BN, warps, pipeline stages; the first is the kernel's default
DEFAULT_CONFIGS = "128x64w8s2,128x128w8s2"


def parse_config(text):
    tiles, rest = text.split("w")
    bm, bn = (int(x) for x in tiles.split("x"))
    w, stages = (int(x) for x in rest.split("s"))
    return {"BM": bm, "BN": bn, "W": w, "STAGES": stages}


try:  # the Triton anchor (optional: without Triton the rows say so)
    import triton
    import triton.language as tl
except ImportError:
    triton = None

if triton:
    # The plain Triton FlashAttention forward of ../shared/anchors/anchors4.py.
    @triton.jit
    def _triton_attn_fwd(Q, K, V, O, sm_scale, S, H: tl.constexpr, D: tl.constexpr, BM: tl.constexpr,
                         BN: tl.constexpr, CAUSAL: tl.constexpr):
        pid_m = tl.program_id(0)
        bh = tl.program_id(1)
        base = bh * S * D
        offs_m = pid_m * BM + tl.arange(0, BM)
        offs_n = tl.arange(0, BN)
        offs_d = tl.arange(0, D)
        q = tl.load(Q + base + offs_m[:, None] * D + offs_d[None, :], mask=offs_m[:, None] < S, other=0.)
        m_i = tl.full([BM], float('-inf'), tl.float32)
        l_i = tl.zeros([BM], tl.float32)
        acc = tl.zeros([BM, D], tl.float32)
        qk_scale = sm_scale * 1.44269504
        hi = tl.minimum((pid_m + 1) * BM, S) if CAUSAL else S
        for n0 in tl.range(0, hi, BN, num_stages=3):
            kk = tl.load(K + base + (n0 + offs_n)[None, :] * D + offs_d[:, None], mask=(n0 + offs_n)[None, :] < S,
                         other=0.)
            qk = tl.dot(q, kk) * qk_scale
            valid = (n0 + offs_n)[None, :] < S
            if CAUSAL:
                valid = valid & (offs_m[:, None] >= (n0 + offs_n)[None, :])
            qk = tl.where(valid, qk, float('-inf'))
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            p = tl.math.exp2(qk - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(V + base + (n0 + offs_n)[:, None] * D + offs_d[None, :], mask=(n0 + offs_n)[:, None] < S,
                        other=0.)
            acc = acc * alpha[:, None] + tl.dot(p.to(tl.bfloat16), v)
            m_i = m_new
        acc = acc / l_i[:, None]
        tl.store(O + base + offs_m[:, None] * D + offs_d[None, :], acc.to(tl.bfloat16), mask=offs_m[:, None] < S)


def triton_anchor():
    """Runs the Triton anchor (q, k, v, o, causal, bm, bn, w), or None without Triton."""
    if not triton:
        return None

    def run(q, k, v, o, causal, bm, bn, w):
        b, h, s, d = q.shape
        _triton_attn_fwd[(triton.cdiv(s, bm), b * h)](q, k, v, o, 1.0 / d ** 0.5, s, H=h, D=d, BM=bm, BN=bn, CAUSAL=causal,
                                                      num_warps=w)
    return run


def sdpa_with(torch, backend, q, k, v, causal):
    """A closure running SDPA with only `backend` allowed, or (None, reason)."""
    from torch.nn.attention import sdpa_kernel
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def run():
        with sdpa_kernel([backend]):
            return sdpa(q, k, v, is_causal=causal)
    try:
        run()
        torch.cuda.synchronize()
    except Exception as e:  # the backend refuses this shape or device
        return None, f"{backend}: {e}".splitlines()[0]
    return run, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="the JSON file to write")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--seqs", default="4096,16384")
    ap.add_argument("--configs", default=DEFAULT_CONFIGS)
    args = ap.parse_args()

    def write(report):
        write_report(report, args.out)

    torch = cuda_torch(args.out)
    if torch is None:
        return
    from torch.nn.attention import SDPBackend
    import tile
    from tile import stdlib

    b, h, d = 1, 32, 128
    configs = [parse_config(c) for c in args.configs.split(",")]
    rows, notes = [], {}
    triton_run = triton_anchor()
    if not triton_run:
        notes["triton"] = "triton is not importable: no Triton anchor"
    torch.manual_seed(0)
    for s in (int(x) for x in args.seqs.split(",")):
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        o = torch.empty_like(q)
        for causal in (False, True):
            case = f"flash_fwd bf16 B={b} H={h} S={s} D={d} causal={int(causal)}"
            flops = 4.0 * b * h * s * s * d * (0.5 if causal else 1.0)
            tflops = lambda ms: round(flops / (ms * 1e-3) / 1e12, 2)  # noqa: E731
            cudnn, why = sdpa_with(torch, SDPBackend.CUDNN_ATTENTION, q, k, v, causal)
            if why:
                notes[f"{case} cudnn"] = why
            flash, why = sdpa_with(torch, SDPBackend.FLASH_ATTENTION, q, k, v, causal)
            if why:
                notes[f"{case} flash"] = why
            reference = (cudnn or flash or (lambda: torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=causal)))().float()
            anchor = tflops(median_ms(torch, cudnn, args.reps)) if cudnn else None
            flash_t = tflops(median_ms(torch, flash, args.reps)) if flash else None
            triton_t = None
            if triton_run:
                for bm, bn, w in ((128, 64, 8), (128, 128, 8), (64, 64, 4)):
                    run = lambda: triton_run(q, k, v, o, causal, bm, bn, w)  # noqa: E731
                    try:
                        run()
                        torch.cuda.synchronize()
                    except Exception as e:  # a configuration Triton cannot compile here
                        notes[f"{case} triton {bm}x{bn}w{w}"] = str(e).splitlines()[0][:200]
                        continue
                    err = (o.float() - reference).abs().max().item()
                    if not err <= 2e-2 + 2e-2 * reference.abs().max().item():
                        notes[f"{case} triton {bm}x{bn}w{w}"] = f"wrong result: {err:g}"
                        continue
                    t = tflops(median_ms(torch, run, args.reps))
                    triton_t = t if triton_t is None else max(triton_t, t)
            best = None
            for c in configs:
                label = f"BM={c['BM']} BN={c['BN']} W={c['W']} STAGES={c['STAGES']}"
                run = lambda: stdlib.flash_fwd(q, k, v, out=o, causal=causal, **c)  # noqa: E731
                try:
                    t0 = time.perf_counter()
                    run()
                    torch.cuda.synchronize()
                    first = round(time.perf_counter() - t0, 3)
                except tile.TileError as e:
                    notes[f"{case} {label}"] = f"failed: {e.status}: {e.message.splitlines()[0]}"
                    continue
                err = (o.float() - reference).abs().max().item()
                tol = 2e-2 + 2e-2 * reference.abs().max().item()
                if not err <= tol:  # NaN included
                    notes[f"{case} {label}"] = f"wrong result: max |ours - SDPA| = {err:g} > {tol:g}: not timed"
                    continue
                ours = tflops(median_ms(torch, run, args.reps))
                row = {"case": f"{case} {label}", "metric": "TFLOP/s", "ours": ours, "anchor": anchor,
                       "anchor_name": "SDPA cuDNN backend (same run)", "vs": "ours/anchor",
                       "ratio": round(ours / anchor, 4) if anchor else None, "flash": flash_t,
                       "flash_over_cudnn": round(flash_t / anchor, 4) if anchor and flash_t else None,
                       "triton": triton_t,
                       "triton_over_cudnn": round(triton_t / anchor, 4) if anchor and triton_t else None,
                       "first_call_s": first, "max_abs_err": round(err, 5)}
                rows.append(row)
                if best is None or ours > best["ours"]:
                    best = row
            if best:
                rows.append(dict(best, case=f"{case} best ({best['case'][len(case) + 1:]})"))
        del q, k, v, o
        torch.cuda.empty_cache()
    write({"device": f"{torch.cuda.get_device_name(0)}", "date": time.strftime("%Y-%m-%d"),
           "command": "PYTHONPATH=python python3 bench/bench_attention.py " + " ".join(sys.argv[1:]),
           "torch": torch.__version__, "tile": tile.__version__,
           "method": f"CUDA events, median of {args.reps} after 3 warm-ups; results checked against SDPA first",
           "rows": rows, "notes": notes})


if __name__ == "__main__":
    main()
