#!/usr/bin/env python3
"""Each convolution and GEMM kernel's GFLOP/s and its fraction of the measured f32 peak.

Usage: python3 bench/kernel_table.py [--bench build/release/diffkd_bench] [--threads 2]
       [--repetitions 5] [--min-time 0.3]

Runs BM_PeakFma (bench/peak_bench.cpp: independent FMA chains, no memory traffic) with the
kernels in one diffkd_bench process, --repetitions times each, and prints a markdown table of
the medians (with the range over repetitions). Needs no torch.
"""
import argparse
import json
import os
import statistics
import subprocess
from collections import defaultdict

FILTER = r"^BM_(PeakFma|Conv2dForward/|Conv2dKernel|Conv2dCifarKernel|Gemm/)"
MNIST_LEVELS = ["n64_c32_28x28", "n64_c64_14x14", "n64_c128_7x7"]
MNIST_KERNELS = {"BM_Conv2dForward": "forward (through the autograd op)",
                 "BM_Conv2dKernelBackwardInput": "input gradient",
                 "BM_Conv2dKernelBackwardWeight": "weight gradient"}


def describe(run):
    """(kernel, shape) of one benchmark run."""
    base = run["run_name"].split("/")[0]
    label = run.get("label", "")
    if base in MNIST_KERNELS:
        return MNIST_KERNELS[base], MNIST_LEVELS[int(run["run_name"].split("/")[1])]
    if base == "BM_Conv2dCifarKernel":
        kernel, shape = label.split(" ", 1)
        return kernel.replace("_", " "), shape
    if base == "BM_Gemm":
        m, k, n = run["run_name"].split("/")[1:4]
        return "gemm", f"{m}x{k}x{n}"
    return base, label


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default="build/release/diffkd_bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3)
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    out = subprocess.run([a.bench, f"--benchmark_filter={FILTER}", "--benchmark_format=json",
                          f"--benchmark_repetitions={a.repetitions}", f"--benchmark_min_time={a.min_time}"],
                         capture_output=True, text=True, env=env, check=True).stdout
    rates = defaultdict(list)
    order = []
    for run in json.loads(out)["benchmarks"]:
        if run.get("run_type") != "iteration" or "GFLOP/s" not in run:
            continue
        key = (run["run_name"].split("/")[0] == "BM_PeakFma", describe(run))
        if key not in rates:
            order.append(key)
        rates[key].append(run["GFLOP/s"])
    peak_runs = next(v for (is_peak, _), v in rates.items() if is_peak)
    peak = statistics.median(peak_runs)
    print(f"{a.threads} threads, median of {a.repetitions} repetitions; measured f32 peak "
          f"{peak:.0f} GFLOP/s (BM_PeakFma, {min(peak_runs):.0f}-{max(peak_runs):.0f})\n")
    print("| kernel | shape | GFLOP/s (range) | of peak |\n|---|---|---:|---:|")
    for key in order:
        is_peak, (kernel, shape) = key
        if is_peak:
            continue
        v = rates[key]
        m = statistics.median(v)
        print(f"| {kernel} | {shape} | {m:.0f} ({min(v):.0f}-{max(v):.0f}) | {m / peak:.0%} |")


if __name__ == "__main__":
    main()
