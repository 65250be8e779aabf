#!/usr/bin/env python3
"""bench_driver_link: the two in-process assemblers of a GPU machine on tile's PTX, compared.

For the PTX a first launch of each core kernel compiles (bench_assembler.py's KERNELS, from
`tilec build --emit ptx`), assembles it into a cubin with libnvJitLink (what libtile uses) and
with the driver's own linker (cuLinkCreate / cuLinkAddData / cuLinkComplete, which returns the
cubin, so the disk cache could keep it), median of 5 each after one warm-up, and compares the
machine code: the SASS instructions of both cubins (cuobjdump -sass, addresses and encodings
dropped) and their registers (cuobjdump -res-usage). Run with CUDA_CACHE_DISABLE=1, or the
driver serves repeated PTX from its cache:

  CUDA_CACHE_DISABLE=1 PYTHONPATH=python python3 bench/bench_driver_link.py --tilec build/tilec

Prints one line per kernel; exits 0 without a GPU (torch seeing none), saying so.
"""
import argparse
import ctypes
import os
import re
import statistics
import subprocess
import tempfile
import time

from bench_assembler import KERNELS, load_nvjitlink, tile_ptx  # bench/ is the script's folder
from benchutil import cuda_torch


def nvjitlink_cubin(lib, ptx):
    opts = (ctypes.c_char_p * 2)(b"-arch=sm_90a", b"-O3")
    h = ctypes.c_void_p()
    t0 = time.perf_counter()
    assert lib.nvJitLinkCreate(ctypes.byref(h), 2, opts) == 0
    assert lib.nvJitLinkAddData(h, 2, ptx, ctypes.c_size_t(len(ptx)), b"k.ptx") == 0  # NVJITLINK_INPUT_PTX
    assert lib.nvJitLinkComplete(h) == 0
    ms = (time.perf_counter() - t0) * 1e3
    n = ctypes.c_size_t()
    lib.nvJitLinkGetLinkedCubinSize(h, ctypes.byref(n))
    buf = ctypes.create_string_buffer(n.value)
    lib.nvJitLinkGetLinkedCubin(h, buf)
    lib.nvJitLinkDestroy(ctypes.byref(h))
    return ms, buf.raw


def driver_cubin(cuda, ptx):
    state = ctypes.c_void_p()
    data = ptx + b"\0"
    t0 = time.perf_counter()
    assert cuda.cuLinkCreate_v2(0, None, None, ctypes.byref(state)) == 0
    rc = cuda.cuLinkAddData_v2(state, 1, ctypes.c_char_p(data), ctypes.c_size_t(len(data)), b"k.ptx", 0, None, None)
    assert rc == 0, f"cuLinkAddData: {rc}"  # CU_JIT_INPUT_PTX
    out, size = ctypes.c_void_p(), ctypes.c_size_t()
    assert cuda.cuLinkComplete(state, ctypes.byref(out), ctypes.byref(size)) == 0
    ms = (time.perf_counter() - t0) * 1e3
    cubin = ctypes.string_at(out, size.value)
    cuda.cuLinkDestroy(state)
    return ms, cubin


def sass(cubin, path):
    """The cubin's SASS instructions (no addresses or encodings) and registers per function."""
    with open(path, "wb") as f:
        f.write(cubin)
    text = subprocess.run(["cuobjdump", "-sass", path], capture_output=True, text=True, check=True).stdout
    ins = [re.sub(r"/\*[0-9a-f]+\*/", "", l).split(";")[0].strip() for l in text.splitlines()
           if re.match(r"\s+/\*[0-9a-f]{4}\*/", l)]
    usage = subprocess.run(["cuobjdump", "-res-usage", path], capture_output=True, text=True, check=True).stdout
    return ins, re.findall(r"REG:(\d+)", usage)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tilec", required=True)
    args = ap.parse_args()
    torch = cuda_torch()
    if torch is None:
        return
    torch.zeros(1, device="cuda")  # the primary context, current on this thread
    cuda, nvj = ctypes.CDLL("libcuda.so.1"), load_nvjitlink()
    if nvj is None:
        print("bench_driver_link: no libnvJitLink here")
        return
    tmp = tempfile.mkdtemp()
    for path, kernel, conds in KERNELS:
        ptx = tile_ptx(args.tilec, path, kernel, conds, os.path.join(tmp, kernel + ".ptx"))
        nvjitlink_cubin(nvj, ptx), driver_cubin(cuda, ptx)
        a = [nvjitlink_cubin(nvj, ptx) for _ in range(5)]
        b = [driver_cubin(cuda, ptx) for _ in range(5)]
        ia, ra = sass(a[0][1], os.path.join(tmp, kernel + "-nvjitlink.cubin"))
        ib, rb = sass(b[0][1], os.path.join(tmp, kernel + "-driver.cubin"))
        print(f"{kernel}: nvJitLink {statistics.median(x[0] for x in a):.1f} ms, driver's linker "
              f"{statistics.median(x[0] for x in b):.1f} ms; SASS {len(ia)} vs {len(ib)} instructions, "
              f"identical: {ia == ib}; registers {ra} vs {rb}")


if __name__ == "__main__":
    main()
