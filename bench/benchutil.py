"""benchutil.py: what the Python benchmarks share: GPU timing with CUDA events and writing a
report in the schema of bench/RESULTS.md."""
import json
import statistics


def median_ms(torch, fn, reps, warmup=3):
    """Median GPU time (ms) of fn over reps runs, each between two CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def write_report(report, path=None):
    """Prints the report as JSON and, with a path, writes it there too."""
    text = json.dumps(report, indent=1)
    print(text)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")


def cuda_torch(path=None):
    """torch when it imports and sees a CUDA GPU; else None, after writing {"skipped": reason}
    (printed, and to path when given: the benchmarks exit 0 on machines without a GPU)."""
    try:
        import torch
    except ImportError as e:
        write_report({"skipped": f"no torch: {e}"}, path)
        return None
    if not torch.cuda.is_available():
        write_report({"skipped": "torch sees no CUDA GPU"}, path)
        return None
    return torch
