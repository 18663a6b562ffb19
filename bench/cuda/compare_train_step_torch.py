#!/usr/bin/env python3
"""The ddpm-cifar10 training step at batch 128 on the GPU, diffkd against PyTorch, side by side:
fp32 with TF32 off on both sides, then both with TF32 on (PyTorch enables TF32 in cuDNN
convolutions by default; diffkd only with DIFFKD_ALLOW_TF32=1).

Usage: python3 bench/cuda/compare_train_step_torch.py [--rounds 3] [--bench build/release/diffkd_cuda_bench]
       [--markdown]

Each side runs in its own process per round, alternating; the report is the median images/s over
rounds. The PyTorch model is the independent implementation of nn/README.md in
tests/golden/make_unet_goldens.py, built from configs/ddpm-cifar10.json (dropout 0 on both
sides, as the diffkd benchmark); timing with CUDA events around each step after two warm-up steps.
Needs a GPU and a CUDA build of PyTorch (the device machine's, not Debian's CPU one).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BATCH = 128


def torch_worker(tf32, min_time):
    """One run in this process: prints JSON {images_per_s}."""
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
    from make_unet_goldens import UNet
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True  # PyTorch's fastest algorithms (diffkd picks deterministic ones)
    torch.manual_seed(0)
    with open(os.path.join(ROOT, "configs", "ddpm-cifar10.json")) as f:
        cfg = json.load(f)["unet"]
    cfg["dropout"] = 0.0
    model = UNet(cfg).cuda().train()
    x = torch.randn(BATCH, 3, 32, 32, device="cuda")
    target = torch.randn(BATCH, 3, 32, 32, device="cuda")
    t = torch.tensor([float((i * 397) % 1000) for i in range(BATCH)], device="cuda")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        loss = F.mse_loss(model(x, t), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    steps, elapsed_ms = 0, 0.0
    while elapsed_ms < 1000 * min_time or steps < 3:
        start.record()
        step()
        stop.record()
        stop.synchronize()
        elapsed_ms += start.elapsed_time(stop)
        steps += 1
    print(json.dumps({"images_per_s": steps * BATCH / (elapsed_ms / 1000)}))


def run(cmd, env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def run_diffkd(bench, tf32):
    env = dict(os.environ, DIFFKD_ALLOW_TF32="1" if tf32 else "0")
    # The case's own MinTime (5 s) sets its length; the flag would not override it.
    out = run([bench, "--benchmark_filter=^BM_CudaUNetTrainStep", "--benchmark_format=json"], env)
    rows = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    if not rows or "error_message" in rows[0]:
        sys.exit(f"diffkd_cuda_bench: {rows[0].get('error_message') if rows else 'no BM_CudaUNetTrainStep'}")
    return rows[0]["items_per_second"]


def run_torch(tf32, min_time):
    out = run([sys.executable, os.path.abspath(__file__), "--worker", "1" if tf32 else "0",
               "--min-time", str(min_time)], dict(os.environ))
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-time", type=float, default=5.0, help="seconds of PyTorch steps per run (diffkd: 5)")
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "release", "diffkd_cuda_bench"))
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--worker", choices=["0", "1"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker is not None:
        torch_worker(a.worker == "1", a.min_time)
        return
    rows = []
    for tf32 in (False, True):
        ours, theirs = [], []
        for r in range(a.rounds):
            ours.append(run_diffkd(a.bench, tf32))
            theirs.append(run_torch(tf32, a.min_time))
            print(f"TF32 {'on' if tf32 else 'off'} round {r + 1}/{a.rounds}: diffkd {ours[-1]:.1f} img/s, "
                  f"torch {theirs[-1]:.1f} img/s", file=sys.stderr, flush=True)
        d, t = statistics.median(ours), statistics.median(theirs)
        rows.append(f"| ddpm-cifar10 train step, batch {BATCH}, TF32 {'on' if tf32 else 'off'} | {d:.1f} | {t:.1f} | "
                    f"{d / t:.2f} |")
    header = "| case | diffkd img/s | torch img/s | diffkd / torch |"
    print(header if a.markdown else header.replace("|", " "))
    if a.markdown:
        print("|---|---:|---:|---:|")
    for row in rows:
        print(row if a.markdown else row.replace("|", " "))


if __name__ == "__main__":
    main()
