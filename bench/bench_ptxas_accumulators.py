#!/usr/bin/env python3
"""bench_ptxas_accumulators.py: what ptxas's time on the gemm's PTX follows (the cold JIT's
largest part for the gemm, bench/RESULTS.md twelfth session).

It takes the PTX of the kernel `gemm` (stdlib/core/gemm.tile, the variant a first launch on
contiguous aligned tensors gets: `TILE_EMIT_SPECIALIZED=1 tilec build --emit ptx`) at 4 and 8
warps, makes edited copies of the 4-warp PTX that change one thing each, and reports ptxas's own
"Compile time" (`ptxas -arch=sm_90a -O3 -v`, best of --reps) and register count for each:

  as-emitted       the kernel: two m64n128k16 wgmma per k16 step, 128 f32 accumulators a thread
  inner-loop       the four k16 steps of a stage as a loop (2 wgmma in the text instead of 8)
  m64n256          one m64n256k16 per step over the same 128 accumulators
  straight-line    the K loop's back edge removed (one pass)
  sum-epilogue     the epilogue replaced by one sum of the 128 accumulators stored to shared
  half-wgmma       the second m64n128 half's wgmma removed (64 accumulators through wgmma)
  no-wgmma         no wgmma; the 128 values loaded from shared memory, the epilogue as emitted
  8-warps          `-D W=8`: the same 128 x 128 tile over two warpgroups, 64 accumulators a thread

The edits are for compiling only: none of them computes the product. Needs tilec and ptxas, no
GPU; run it on the device machine's CPU for the numbers the cold JIT meets there.

  PYTHONPATH=python python3 bench/bench_ptxas_accumulators.py --tilec build/tilec \
      --out bench/results/ptxas-accumulators.json
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import write_report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACC_FIRST, ACC_LAST = 3, 130  # the accumulators' registers in the 4-warp PTX (checked below)


def gemm_ptx(tilec, warps):
    env = dict(os.environ, TILE_EMIT_SPECIALIZED="1")
    r = subprocess.run([tilec, "build", "--emit", "ptx", os.path.join(ROOT, "stdlib/core/gemm.tile"), "-k", "gemm",
                        "-D", f"W={warps}"], capture_output=True, text=True, env=env, check=True)
    return r.stdout


def wgmma_lines(ptx):
    return [l for l in ptx.split("\n") if "wgmma.mma_async" in l]


def check_shape(ptx):
    """The edits below assume the 4-warp kernel as emitted today: say so when it has changed."""
    w = wgmma_lines(ptx)
    first = re.search(r"\{%r(\d+),", w[0]) if w else None
    if len(w) != 8 or not first or int(first.group(1)) != ACC_FIRST or "$L__BB0_7" not in ptx:
        sys.exit("bench_ptxas_accumulators: the gemm's PTX is not the shape these edits expect "
                 "(8 wgmma over %r3..%r130, a loop latch $L__BB0_7); update the edits")


def inner_loop(ptx):
    lines = ptx.split("\n")
    start = next(i for i, l in enumerate(lines) if l.strip() == "mov.b32 \t%r357, 1;")
    end = next(i for i, l in enumerate(lines) if "wgmma.commit_group" in l) - 1
    w = [l for l in lines[start:end] if "wgmma.mma_async" in l]
    acc = [re.search(r"\{[^}]*\}", x).group(0) for x in w[:2]]
    descs = re.search(r"\}, (%rd\d+), (%rd\d+),", w[0])

    def mma(a, adesc):
        return ["\t{", "\t.reg .pred p;", "\tsetp.ne.b32 p, %r357, 0;",
                f"\twgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {a}, {adesc}, %rdB, p, 1, 1, 0, 1;", "\t}"]
    body = ["\tmov.b32 \t%r357, 1;", f"\tmov.b64 \t%rdA, {descs.group(1)};", f"\tmov.b64 \t%rdB, {descs.group(2)};",
            "\tmov.b32 \t%rK, 0;", "$KLOOP:"] + mma(acc[0], "%rdA") + ["\tadd.s64 \t%rdA1, %rdA, 512;"]
    body += mma(acc[1], "%rdA1") + ["\tadd.s64 \t%rdA, %rdA, 2;", "\tadd.s64 \t%rdB, %rdB, 128;",
                                    "\tadd.s32 \t%rK, %rK, 1;", "\tsetp.lt.u32 \t%pK, %rK, 4;", "\t@%pK bra \t$KLOOP;"]
    out = "\n".join(lines[:start] + body + lines[end:])
    return re.sub(r"(\t\.reg \.b64 \t%rd<\d+>;)", r"\1\n\t.reg .b64 %rdA, %rdB, %rdA1;\n\t.reg .b32 %rK;\n\t.reg .pred %pK;",
                  out, count=1)


def m64n256(ptx):
    acc = "{" + ", ".join(f"%r{n}" for n in range(ACC_FIRST, ACC_LAST + 1)) + "}"
    out = []
    for l in ptx.split("\n"):
        if "wgmma.mma_async" in l:
            if "{%r67," in l:
                continue
            l = re.sub(r"\{[^}]*\}", acc, l.replace("m64n128k16", "m64n256k16"))
        out.append(l)
    return "\n".join(out)


def straight_line(ptx):
    return (ptx.replace("@%p14 bra \t$L__BB0_7;", "@%p14 bra \t$L__BB0_9;")
               .replace("\tbra.uni \t$L__BB0_7;\n$L__BB0_9:", "\tbra.uni \t$L__BB0_9;\n$L__BB0_9:"))


def sum_epilogue(ptx):
    lines = ptx.split("\n")
    wait = next(i for i, l in enumerate(lines) if "wgmma.wait_group.sync.aligned 0;" in l)
    ret = next(i for i, l in enumerate(lines) if l.strip() == "ret;")
    body = ["\t// end inline asm", "\tmov.b32 \t%r300, 0f00000000;"]
    body += [f"\tadd.f32 \t%r300, %r300, %r{n};" for n in range(ACC_FIRST, ACC_LAST + 1)]
    body.append("\tst.shared.b32 \t[%r2], %r300;")
    return "\n".join(lines[:wait + 1] + body + lines[ret:])


def half_wgmma(ptx):
    return "\n".join(l for l in ptx.split("\n") if not ("wgmma.mma_async" in l and "{%r67," in l))


def no_wgmma(ptx):
    out = []
    for l in ptx.split("\n"):
        m = re.match(r"\tmov\.b32 \t%r(\d+), (%r3|0f00000000);$", l)
        if m and ACC_FIRST <= int(m.group(1)) <= ACC_LAST:
            n = int(m.group(1))
            out.append(f"\tld.shared.b32 \t%r{n}, [%r2+{4 * n}];")
        elif "wgmma.mma_async" in l:
            out.append("\tsetp.ne.b32 p, %r357, 1;")
        else:
            out.append(l)
    return "\n".join(out)


def ptxas_time(ptxas, path, reps):
    best, regs = None, None
    for _ in range(reps):
        r = subprocess.run([ptxas, "-arch=sm_90a", "-O3", "-v", "-o", path + ".cubin", path], capture_output=True,
                           text=True)
        if r.returncode != 0:
            sys.exit(f"bench_ptxas_accumulators: ptxas failed on {path}:\n{r.stderr}")
        t = float(re.search(r"Compile time = ([0-9.]+) ms", r.stdout + r.stderr).group(1))
        regs = int(re.search(r"Used (\d+) registers", r.stdout + r.stderr).group(1))
        best = t if best is None else min(best, t)
    return best, regs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tilec", default=os.path.join(ROOT, "build/tilec"))
    ap.add_argument("--ptxas", default="/usr/local/cuda/bin/ptxas")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    base = gemm_ptx(args.tilec, 4)
    check_shape(base)
    variants = {"as-emitted": base, "inner-loop": inner_loop(base), "m64n256": m64n256(base),
                "straight-line": straight_line(base), "sum-epilogue": sum_epilogue(base),
                "half-wgmma": half_wgmma(base), "no-wgmma": no_wgmma(base), "8-warps": gemm_ptx(args.tilec, 8)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ptx in variants.items():
            path = os.path.join(tmp, name + ".ptx")
            with open(path, "w") as f:
                f.write(ptx)
            ms, regs = ptxas_time(args.ptxas, path, args.reps)
            rows.append({"case": f"ptxas gemm PTX, {name}", "metric": "ms (ptxas's Compile time, best of "
                         f"{args.reps})", "ours": ms, "anchor": None, "anchor_name": None, "vs": None, "ratio": None,
                         "config": f"{regs} registers, {len(wgmma_lines(ptx))} wgmma in the text"})
    write_report({"device": "host CPU (ptxas)", "command": " ".join(sys.argv), "rows": rows}, args.out)


if __name__ == "__main__":
    main()
