#!/usr/bin/env python3
"""Data-parallel scaling of `diffkd train` on this machine: images/s of the training step at
1 rank x 1 thread, 2 ranks x 1 thread (mpirun) and 1 rank x 2 threads, the three alternating in
every round; the report is the median over rounds, and the scaling efficiency
(2 ranks' img/s over twice 1 rank's).

Usage: python3 bench/dist_scaling.py [--diffkd build/release/diffkd] [--model mnist-unet]
       [--data mnist] [--batch 64] [--steps 14] [--rounds 3] [--markdown]

Each run trains --steps steps into a fresh folder with --log-every 4 and reads the steps/s of
the windows after the first (which holds start-up and warm-up) from metrics.jsonl. Needs mpirun.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile

CONFIGS = [("1 rank x 1 thread", 1, 1), ("2 ranks x 1 thread", 2, 1), ("1 rank x 2 threads", 1, 2)]


def run_once(a, ranks, threads, folder):
    shutil.rmtree(folder, ignore_errors=True)
    train = [a.diffkd, "train", "--model", a.model, "--data", a.data, "--batch", str(a.batch),
             "--steps", str(a.steps), "--log-every", "4", "--sample-every", "0",
             "--checkpoint-every", str(a.steps), "--run-dir", folder]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if ranks > 1:
        # One core per rank (Open MPI binds to cores by default at this size).
        train = ["mpirun", "--oversubscribe", "-np", str(ranks), "-x", "OMP_NUM_THREADS"] + train
    subprocess.run(train, env=env, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        rates = [json.loads(line)["steps_per_s"] for line in f][1:]
    return statistics.median(rates) * a.batch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--diffkd", default="build/release/diffkd")
    ap.add_argument("--model", default="mnist-unet")
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    images = {name: [] for name, _, _ in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="diffkd-scaling-") as tmp:
        for r in range(a.rounds):
            for name, ranks, threads in CONFIGS:
                images[name].append(run_once(a, ranks, threads, os.path.join(tmp, "run")))
                print(f"round {r + 1}/{a.rounds} {name}: {images[name][-1]:.1f} img/s", flush=True)
    med = {name: statistics.median(v) for name, v in images.items()}
    one = med["1 rank x 1 thread"]
    print(f"\n{a.model}, global batch {a.batch}, median of {a.rounds} rounds\n")
    print("| configuration | img/s (range) | vs 1 rank x 1 thread |")
    print("|---|---:|---:|")
    for name, _, _ in CONFIGS:
        v = images[name]
        print(f"| {name} | {med[name]:.1f} ({min(v):.1f}-{max(v):.1f}) | {med[name] / one:.2f}x |")
    print(f"\nscaling efficiency of 2 ranks: {med['2 ranks x 1 thread'] / (2 * one):.0%}; "
          f"2 ranks against 1 rank x 2 threads: {med['2 ranks x 1 thread'] / med['1 rank x 2 threads']:.2f}x")


if __name__ == "__main__":
    main()
