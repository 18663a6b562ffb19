#!/usr/bin/python3
"""Runs diffkd's microbenchmarks and the same workloads in PyTorch (CPU), interleaved, and prints
the median time of each and the ratio torch / diffkd (> 1 means diffkd is faster). For the
convolutions and GEMMs also diffkd's GFLOP/s and its fraction of the core's f32 peak, measured in
the same rounds by bench/peak_bench.cpp (BM_PeakFma: independent FMA chains, no memory traffic).

Usage: /usr/bin/python3 bench/compare_torch.py [--threads 2] [--rounds 5] [--filter REGEX]
       [--bench build/release/diffkd_bench] [--markdown]

Both sides use the same thread count (OMP_NUM_THREADS for diffkd, torch.set_num_threads for
torch). Each round runs every case once on each side, alternating, so that the machine's drift
hits both alike; the report is the median over rounds. Debian's torch lives in /usr/bin/python3.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

BATCH = 64
LEVELS = [(32, 28), (64, 14), (128, 7)]


def conv_case(c, s, backward):
    x = torch.randn(BATCH, c, s, s, requires_grad=backward)
    w = torch.randn(c, c, 3, 3, requires_grad=backward)
    b = torch.randn(c, requires_grad=backward)
    gy = torch.randn(BATCH, c, s, s)

    def run():
        if backward:
            F.conv2d(x, w, b, padding=1).backward(gy)
            x.grad = w.grad = b.grad = None
        else:
            with torch.no_grad():
                F.conv2d(x, w, b, padding=1)
    return run


def gemm_case(m, k, n):
    a, b = torch.randn(m, k), torch.randn(k, n)
    return lambda: torch.mm(a, b)


def group_norm_case(c, s, backward, with_silu=False):
    x = torch.randn(BATCH, c, s, s, requires_grad=backward)
    w = torch.ones(c, requires_grad=backward)
    b = torch.zeros(c, requires_grad=backward)
    gy = torch.randn(BATCH, c, s, s)

    def op():
        y = F.group_norm(x, 8, w, b)
        return F.silu(y) if with_silu else y

    def run():
        if backward:
            op().backward(gy)
            x.grad = w.grad = b.grad = None
        else:
            with torch.no_grad():
                op()
    return run


def softmax_case(rows, length):
    x = torch.randn(rows, length, length)

    def run():
        with torch.no_grad():
            torch.softmax(x, -1)
    return run


def attention_case(backward):
    shape = (BATCH, 4, 49, 32)
    q, k, v = (torch.randn(*shape, requires_grad=backward) for _ in range(3))
    gy = torch.randn(*shape)

    def attend():  # torch 1.13 has no F.scaled_dot_product_attention
        return torch.softmax(q @ k.transpose(-2, -1) / 32 ** 0.5, -1) @ v

    def run():
        if backward:
            attend().backward(gy)
            q.grad = k.grad = v.grad = None
        else:
            with torch.no_grad():
                attend()
    return run


def elementwise_case(kind):
    a = torch.randn(BATCH, 32, 28, 28, requires_grad=(kind == "silu_bwd"))
    b = torch.randn(BATCH, 32, 28, 28) if kind == "add" else torch.randn(1, 32, 1, 1)
    gy = torch.randn(BATCH, 32, 28, 28)

    def run():
        if kind == "silu_bwd":
            F.silu(a).backward(gy)
            a.grad = None
            return
        with torch.no_grad():
            if kind == "silu":
                F.silu(a)
            else:
                a + b
    return run


# (our Google Benchmark name, label, torch workload)
CASES = []
FLOPS = {}  # label -> floating-point operations of one run (multiply-adds count two)
for i, (c, s) in enumerate(LEVELS):
    tag = f"n64_c{c}_{s}x{s}"
    CASES.append((f"BM_Conv2dForward/{i}/real_time", f"conv2d fwd {tag}", conv_case(c, s, False)))
    CASES.append((f"BM_Conv2dForwardBackward/{i}/real_time", f"conv2d fwd+bwd {tag}",
                  conv_case(c, s, True)))
    forward = 2 * BATCH * c * c * 9 * s * s
    FLOPS[f"conv2d fwd {tag}"] = forward
    FLOPS[f"conv2d fwd+bwd {tag}"] = 3 * forward  # forward, input gradient, weight gradient
for m, k, n in [(512, 512, 512), (32, 288, 784), (64, 576, 196), (128, 1152, 49)]:
    CASES.append((f"BM_Gemm/{m}/{k}/{n}/real_time", f"gemm {m}x{k}x{n}", gemm_case(m, k, n)))
    FLOPS[f"gemm {m}x{k}x{n}"] = 2 * m * k * n
for i, (c, s) in enumerate(LEVELS):
    tag = f"n64_c{c}_{s}x{s}_g8"
    CASES.append((f"BM_GroupNormForward/{i}/-1/real_time", f"group_norm fwd {tag}",
                  group_norm_case(c, s, False)))
    CASES.append((f"BM_GroupNormForwardBackward/{i}/-1/real_time", f"group_norm fwd+bwd {tag}",
                  group_norm_case(c, s, True)))
for i, (c, s) in enumerate(LEVELS):
    tag = f"n64_c{c}_{s}x{s}_g8"
    CASES.append((f"BM_GroupNormSiluForward/{i}/1/real_time", f"group_norm+silu fwd {tag}",
                  group_norm_case(c, s, False, True)))
    CASES.append((f"BM_GroupNormSiluForwardBackward/{i}/1/real_time", f"group_norm+silu fwd+bwd {tag}",
                  group_norm_case(c, s, True, True)))
for rows, length in [(256, 49), (64, 196)]:
    CASES.append((f"BM_SoftmaxForward/{rows}/{length}/real_time",
                  f"softmax [{rows},{length},{length}]", softmax_case(rows, length)))
for name, label, kind in [("BM_AddSameShape", "add [64,32,28,28]", "add"),
                          ("BM_AddChannelBroadcast", "add [64,32,28,28] + [1,32,1,1]", "bias"),
                          ("BM_SiluForward", "silu fwd [64,32,28,28]", "silu"),
                          ("BM_SiluForwardBackward", "silu fwd+bwd [64,32,28,28]", "silu_bwd")]:
    CASES.append((f"{name}/real_time", label, elementwise_case(kind)))
CASES.append(("BM_AttentionForward/real_time", "attention fwd b64 h4 l49 d32", attention_case(False)))
CASES.append(("BM_AttentionForwardBackward/real_time", "attention fwd+bwd b64 h4 l49 d32",
              attention_case(True)))


def time_torch(run, min_time):
    run()  # warm-up
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def time_ours(bench, name, min_time, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    # Benchmark names hold only [A-Za-z0-9_/-]; Google Benchmark's regex rejects re.escape's "\-".
    pattern = re.escape(name.replace('/real_time', '')).replace("\\-", "-")
    out = subprocess.run([bench, f"--benchmark_filter=^{pattern}/real_time$",
                          f"--benchmark_min_time={min_time}", "--benchmark_format=json"],
                         capture_output=True, text=True, env=env, check=True).stdout
    runs = json.loads(out)["benchmarks"]
    if not runs:
        sys.exit(f"compare_torch: benchmark {name} not found in {bench}")
    return runs[0]  # real_time in ms (the benchmarks report in milliseconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--filter", default="")
    ap.add_argument("--bench", default="build/release/diffkd_bench")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = [c for c in CASES if re.search(args.filter, c[1])]
    ours = {c[1]: [] for c in cases}
    theirs = {c[1]: [] for c in cases}
    peaks = []  # GFLOP/s
    for r in range(args.rounds):
        peaks.append(time_ours(args.bench, "BM_PeakFma/real_time", args.min_time, args.threads)["GFLOP/s"])
        for name, label, run in cases:
            ours[label].append(time_ours(args.bench, name, args.min_time, args.threads)["real_time"])
            theirs[label].append(time_torch(run, args.min_time))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    peak = statistics.median(peaks)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.rounds} interleaved rounds; "
          f"measured f32 peak {peak:.0f} GFLOP/s (BM_PeakFma, range {min(peaks):.0f}-{max(peaks):.0f})")
    if args.markdown:
        print("\n| workload | diffkd ms | torch ms | torch / diffkd | diffkd GFLOP/s | of peak |\n"
              "|---|---:|---:|---:|---:|---:|")
    for _, label, _ in cases:
        a, b = statistics.median(ours[label]), statistics.median(theirs[label])
        rate = f"{FLOPS[label] / a / 1e6:.0f}" if label in FLOPS else ""
        share = f"{FLOPS[label] / a / 1e6 / peak:.0%}" if label in FLOPS else ""
        if args.markdown:
            print(f"| {label} | {a:.3f} | {b:.3f} | {b / a:.2f} | {rate} | {share} |")
        else:
            print(f"{label:40s} diffkd {a:9.3f} ms   torch {b:9.3f} ms   ratio {b / a:5.2f}   "
                  f"{rate:>5s} GFLOP/s {share:>4s}")


if __name__ == "__main__":
    main()
