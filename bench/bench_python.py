#!/usr/bin/env python3
"""bench_python.py: the launch overhead of a kernel launched through the Python package.

Times, on one GPU in one run, the host side of back-to-back launches of a one-block f32
vector add (one element, as bench_runtime's "launch overhead" row does), each the median of
5 rounds of --launches launches after a warm-up:
  tile_kernel          prog.kernel("vector_add")(a, b, c): the package's launch path on torch
                       tensors, on PyTorch's current stream
  tile_stdlib          tile.stdlib.vector_add(a, b, out=c): the same plus the stdlib lookups
  torch_add            torch.add(a, b, out=c): a bare PyTorch elementwise op
  triton               a Triton vector-add kernel's launch (when triton imports)
  bare_culaunch_ctypes cuLaunchKernel of the same kernel's cubin through ctypes with
                       prebuilt parameters: the floor for any Python launcher
Every path's result is checked once before timing. Prints one JSON object (µs per launch and
ratios anchor/ours, so that >= 1 means tile is at least as fast); --out FILE also writes it.
Needs torch with a CUDA GPU; without one it prints {"skipped": reason} and exits 0.

  PYTHONPATH=python python3 bench/bench_python.py [--launches 20000] [--out FILE]
"""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))


def timed(fn, launches, sync, rounds=5):
    """Median over rounds of the host time per launch (µs) of `launches` calls of fn."""
    for _ in range(1000):
        fn()
    sync()
    per = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(launches):
            fn()
        per.append((time.perf_counter() - t0) / launches * 1e6)
        sync()
    return statistics.median(per)


def bare_launch(prog, a, b, c, torch):
    """A closure that launches vector_add's cubin with cuLaunchKernel through ctypes, or
    (None, reason)."""
    major, minor = torch.cuda.get_device_capability()
    arch, kind = ("sm_90a", "cubin") if (major, minor) == (9, 0) else ("sm_80", "cubin" if major == 8 else "ptx")
    try:
        image = prog.emit("vector_add", kind, arch=arch)
    except Exception as e:  # no assembler here: let the driver compile the PTX
        if kind != "cubin":
            return None, f"emit {kind}: {e}"
        image = prog.emit("vector_add", "ptx", arch=arch)
    if isinstance(image, str):
        image = image.encode() + b"\0"
    cu = ctypes.CDLL("libcuda.so.1")
    module, fn = ctypes.c_void_p(), ctypes.c_void_p()
    if cu.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(image)) != 0:
        return None, "cuModuleLoadData failed"
    if cu.cuModuleGetFunction(ctypes.byref(fn), module, b"vector_add") != 0:
        return None, "cuModuleGetFunction failed"
    # the kernel ABI (docs/RUNTIME.md): per tensor a pointer, its sizes (s32), its strides (s64)
    slots = []
    for t in (a, b, c):
        slots += [ctypes.c_uint64(t.data_ptr()), ctypes.c_int32(t.numel()), ctypes.c_int64(1)]
    params = (ctypes.c_void_p * len(slots))(*[ctypes.cast(ctypes.pointer(s), ctypes.c_void_p) for s in slots])
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    launch = cu.cuLaunchKernel
    launch.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    threads = 128  # the code generator's default of 4 warps; vector_add uses no shared memory

    def run():
        return launch(fn, 1, 1, 1, threads, 1, 1, 0, stream, params, None)
    run.keep = (module, slots, params, cu)
    if run() != 0:
        return None, "cuLaunchKernel failed"
    return run, None


def triton_launch(a, b, c):
    try:
        import triton
        import triton.language as tl
    except ImportError as e:
        return None, f"triton: {e}"

    @triton.jit
    def add_kernel(x, y, out, n, BLOCK: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = i < n
        tl.store(out + i, tl.load(x + i, mask=m) + tl.load(y + i, mask=m), mask=m)

    n = a.numel()
    return (lambda: add_kernel[(1,)](a, b, c, n, BLOCK=128)), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--launches", type=int, default=20000)
    ap.add_argument("--out")
    args = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(json.dumps({"skipped": f"no torch: {e}"}))
        return
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "torch sees no CUDA GPU"}))
        return
    import tile
    from tile import stdlib

    ctx = tile.context("cuda:0")
    prog = tile.load(os.path.join(stdlib.path, "core", "vector_add.tile"), ctx)
    kernel = prog.kernel("vector_add")
    a = torch.full((1,), 1.0, device="cuda")
    b = torch.full((1,), 2.0, device="cuda")
    c = torch.zeros(1, device="cuda")
    sync = torch.cuda.synchronize

    paths = {
        "tile_kernel": lambda: kernel(a, b, c),
        "tile_stdlib": lambda: stdlib.vector_add(a, b, out=c),
        "torch_add": lambda: torch.add(a, b, out=c),
    }
    notes = {}
    tri, why = triton_launch(a, b, c)
    if tri:
        paths["triton"] = tri
    else:
        notes["triton"] = why
    bare, why = bare_launch(prog, a, b, c, torch)
    if bare:
        paths["bare_culaunch_ctypes"] = bare
    else:
        notes["bare_culaunch_ctypes"] = why

    results = {}
    for name, fn in paths.items():
        c.zero_()
        fn()
        sync()
        if c.item() != 3.0:
            notes[name] = f"wrong result {c.item()} (expected 3): not timed"
            continue
        results[name] = round(timed(fn, args.launches, sync), 3)
    ours = results.get("tile_kernel")
    ratios = {f"{k}/tile_kernel": round(v / ours, 3) for k, v in results.items() if ours and k != "tile_kernel"}
    report = {
        "device": torch.cuda.get_device_name(0),
        "date": time.strftime("%Y-%m-%d"),
        "command": "PYTHONPATH=python python3 bench/bench_python.py " + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "tile": tile.__version__,
        "launches": args.launches,
        "metric": "us per launch (host), median of 5 rounds, 1 block, 1 element",
        "us": results,
        "ratios_anchor_over_ours": ratios,
        "notes": notes,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
