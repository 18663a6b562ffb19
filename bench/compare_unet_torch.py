#!/usr/bin/python3
"""The whole UNet in diffkd and in PyTorch on this machine: a training step (forward, MSE,
backward, Adam) and the inference forward pass, images/s and peak memory, side by side.

Usage: /usr/bin/python3 bench/compare_unet_torch.py [--threads 2] [--rounds 3] [--filter REGEX]
       [--bench build/release/diffkd_bench] [--markdown]

Every case runs in its own process on each side (so each process's peak resident memory is that
case's), alternating diffkd and torch in every round; the report is the median over rounds.
The PyTorch model is the independent implementation of nn/README.md in
tests/golden/make_unet_goldens.py, built from the same configs/*.json presets; both sides use
the same thread count (OMP_NUM_THREADS for diffkd, torch.set_num_threads for torch).
Memory is reported as the peak RSS of the process; for torch also the peak above the RSS just
before the model was built (python + torch's libraries alone are ~230 MB, diffkd's binary a few
MB), for diffkd also the most its caching allocator held (tensors and cached free blocks).
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (benchmark name in diffkd_bench, preset, mode, batch)
CASES = [
    ("BM_UNetTrainStep/mnist_unet/64", "mnist-unet", "train", 64),
    ("BM_UNetForward/mnist_unet/1", "mnist-unet", "forward", 1),
    ("BM_UNetForward/mnist_unet/64", "mnist-unet", "forward", 64),
    ("BM_UNetTrainStep/mnist_unet_64/64", "mnist-unet-64", "train", 64),
    ("BM_UNetForward/mnist_unet_64/1", "mnist-unet-64", "forward", 1),
    ("BM_UNetForward/mnist_unet_64/64", "mnist-unet-64", "forward", 64),
    ("BM_UNetTrainStep/ddpm_cifar10/8", "ddpm-cifar10", "train", 8),
    ("BM_UNetForward/ddpm_cifar10/1", "ddpm-cifar10", "forward", 1),
    ("BM_UNetForward/ddpm_cifar10/64", "ddpm-cifar10", "forward", 64),
]


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def torch_worker(preset, mode, batch, threads, min_time):
    """Runs one case in this process; prints JSON {images_per_s, peak_mb, base_mb}."""
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
    from make_unet_goldens import UNet
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with open(os.path.join(ROOT, "configs", preset + ".json")) as f:
        cfg = json.load(f)["unet"]
    base = rss_mb()
    model = UNet(cfg)
    c, s = cfg["in_channels"], cfg["image_size"]
    x = torch.randn(batch, c, s, s)
    target = torch.randn(batch, cfg["out_channels"], s, s)
    t = torch.tensor([float((i * 397) % 1000) for i in range(batch)])
    if mode == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def run():
            loss = F.mse_loss(model(x, t), target)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        model.eval()

        def run():
            with torch.no_grad():
                model(x, t)
    for _ in range(2):
        run()
    iters, start = 0, time.perf_counter()
    while True:
        run()
        iters += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and iters >= 3:
            break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images_per_s": iters * batch / elapsed, "peak_mb": peak, "base_mb": base}))


def run_child(cmd, env):
    """Runs cmd, returns (stdout, peak RSS of the child in MB)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return out


def run_diffkd(bench, name, threads, min_time):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = run_child([bench, f"--benchmark_filter=^{re.escape(name)}/real_time$", "--benchmark_format=json",
                     f"--benchmark_min_time={min_time}"], env)
    results = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    if not results:
        sys.exit(f"diffkd_bench has no benchmark {name}")
    return {"images_per_s": results[0]["items_per_second"], "peak_mb": results[0]["peak_MB"],
            "held_mb": results[0]["held_peak_MB"], "base_mb": 0.0}


def run_torch(preset, mode, batch, threads, min_time):
    out = run_child([sys.executable, os.path.abspath(__file__), "--worker", preset, mode,
                     str(batch), "--threads", str(threads), "--min-time", str(min_time)],
                    dict(os.environ))
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-time", type=float, default=2.0)
    p.add_argument("--filter", default="")
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "release", "diffkd_bench"))
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--worker", nargs=3, metavar=("PRESET", "MODE", "BATCH"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        torch_worker(a.worker[0], a.worker[1], int(a.worker[2]), a.threads, a.min_time)
        return
    cases = [c for c in CASES if re.search(a.filter, c[0])]
    results = {c[0]: {"diffkd": [], "torch": []} for c in cases}
    for r in range(a.rounds):
        for name, preset, mode, batch in cases:
            results[name]["diffkd"].append(run_diffkd(a.bench, name, a.threads, a.min_time))
            results[name]["torch"].append(run_torch(preset, mode, batch, a.threads, a.min_time))
            d, t = results[name]["diffkd"][-1], results[name]["torch"][-1]
            print(f"round {r + 1}/{a.rounds} {name}: diffkd {d['images_per_s']:.2f} img/s, "
                  f"torch {t['images_per_s']:.2f} img/s", file=sys.stderr, flush=True)

    def med(runs, key):
        return statistics.median(x[key] for x in runs)

    header = ("| case | diffkd img/s | torch img/s | diffkd / torch | diffkd peak MB (allocator) | "
              "torch peak MB (above base) |")
    print(header if a.markdown else header.replace("|", " "))
    if a.markdown:
        print("|---|---:|---:|---:|---:|---:|")
    for name, preset, mode, batch in cases:
        d, t = results[name]["diffkd"], results[name]["torch"]
        di, ti = med(d, "images_per_s"), med(t, "images_per_s")
        tpeak, tbase = med(t, "peak_mb"), med(t, "base_mb")
        row = (f"| {preset} {mode} batch {batch} | {di:.2f} | {ti:.2f} | {di / ti:.2f} | "
               f"{med(d, 'peak_mb'):.0f} ({med(d, 'held_mb'):.0f}) | {tpeak:.0f} ({tpeak - tbase:.0f}) |")
        print(row if a.markdown else row.replace("|", " "))


if __name__ == "__main__":
    main()
