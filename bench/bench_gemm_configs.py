#!/usr/bin/env python3
"""bench_gemm_configs: gemm.tile at given constants against torch.matmul, through the Python package.

  PYTHONPATH=python python3 bench/bench_gemm_configs.py SHAPE CONFIG...

SHAPE is N (N x N x N) or MxNxK; each CONFIG is a comma-separated list of constants
("W=8,STAGES=5"), or "" for the kernel without constants (autotuned on a GPU: its first launch
times the candidates and keeps the fastest). Inputs are random bf16 in [-1, 1]; each result's
first 256 rows are compared with an f32 product before timing (the largest difference is
printed), then torch.matmul and each configuration are timed with CUDA events: 3 warm-up runs,
the median of 15. Prints one line per configuration: ms, TFLOP/s and torch's time over ours. A
configuration that fails to compile or launch is printed with its error and skipped. Needs torch
and a GPU; exits 0 saying so without one.
"""
import sys

from benchutil import cuda_torch  # bench/ is the script's folder


def timed(torch, f, reps=15):
    for _ in range(3):
        f()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); f(); e.record(); e.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    torch = cuda_torch()
    if torch is None:
        return
    from tile import stdlib
    dims = [int(x) for x in sys.argv[1].split("x")]
    m, n, k = dims if len(dims) == 3 else dims * 3
    g = torch.Generator(device="cpu").manual_seed(1)
    a = (torch.rand(m, k, generator=g) * 2 - 1).to("cuda", torch.bfloat16)
    b = (torch.rand(k, n, generator=g) * 2 - 1).to("cuda", torch.bfloat16)
    ref = a[:256].float() @ b.float()
    out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    anchor = timed(torch, lambda: torch.matmul(a, b, out=out))
    for spec in sys.argv[2:]:
        consts = {key: int(v) for key, v in (x.split("=") for x in spec.split(","))} if spec else {}
        c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        try:
            kernel = stdlib.kernel("gemm", **consts)
            kernel(a, b, c)
            torch.cuda.synchronize()
        except Exception as ex:  # a configuration that does not compile or launch: said, skipped
            print(f"{sys.argv[1]} {spec}: {str(ex)[:300]}", flush=True)
            continue
        err = (c[:256].float() - ref).abs().max().item()
        ms = timed(torch, lambda: kernel(a, b, c))
        print(f"{sys.argv[1]} {spec or '(autotuned)':24s} {ms:.3f} ms {2 * m * n * k / ms / 1e9:6.1f} TFLOP/s "
              f"torch/ours {anchor / ms:.3f} (torch {anchor:.3f} ms) max diff {err:.3g}", flush=True)


if __name__ == "__main__":
    main()
