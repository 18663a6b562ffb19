#!/usr/bin/env python3
"""The ddpm-cifar10 training step on the GPU at batch 128 and 1, diffkd against PyTorch, side by side.

Rows per batch: fp32 with TF32 off on both sides, against PyTorch's fastest algorithms
(cudnn.benchmark on) and against its deterministic ones (benchmark off, deterministic algorithms
on: what diffkd picks); both with TF32 on (PyTorch enables TF32 in cuDNN convolutions by default;
diffkd only with DIFFKD_ALLOW_TF32=1); and PyTorch under bf16 autocast as the ceiling that
diffkd does not try to reach (it has no bf16 path).

Usage: python3 bench/cuda/compare_train_step_torch.py [--rounds 3] [--min-time 5]
       [--bench build/release/diffkd_cuda_bench] [--markdown]

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
BATCHES = (128, 1)
# PyTorch's settings per row: TF32, cudnn.benchmark, deterministic algorithms, bf16 autocast.
TORCH_MODES = {
    "fastest": dict(tf32=False, benchmark=True, deterministic=False, bf16=False),
    "deterministic": dict(tf32=False, benchmark=False, deterministic=True, bf16=False),
    "tf32": dict(tf32=True, benchmark=True, deterministic=False, bf16=False),
    "bf16": dict(tf32=True, benchmark=True, deterministic=False, bf16=True),
}


def torch_worker(mode, min_time):
    """One run of every batch in this process: prints JSON {batch: images_per_s}."""
    settings = TORCH_MODES[mode]
    if settings["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
    from make_unet_goldens import UNet
    torch.backends.cuda.matmul.allow_tf32 = settings["tf32"]
    torch.backends.cudnn.allow_tf32 = settings["tf32"]
    torch.backends.cudnn.benchmark = settings["benchmark"]
    torch.use_deterministic_algorithms(settings["deterministic"])
    with open(os.path.join(ROOT, "configs", "ddpm-cifar10.json")) as f:
        cfg = json.load(f)["unet"]
    cfg["dropout"] = 0.0
    rates = {}
    for batch in BATCHES:
        torch.manual_seed(0)
        model = UNet(cfg).cuda().train()
        x = torch.randn(batch, 3, 32, 32, device="cuda")
        target = torch.randn(batch, 3, 32, 32, device="cuda")
        t = torch.tensor([float((i * 397) % 1000) for i in range(batch)], device="cuda")
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=settings["bf16"]):
                loss = F.mse_loss(model(x, t).float(), target)
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
        rates[str(batch)] = steps * batch / (elapsed_ms / 1000)
    print(json.dumps(rates))


def run(cmd, env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def run_diffkd(bench, tf32):
    """{batch: images_per_s} of one diffkd_cuda_bench process (every batch)."""
    env = dict(os.environ, DIFFKD_ALLOW_TF32="1" if tf32 else "0")
    # The case's own MinTime (2 s) sets its length; the flag would not override it.
    out = run([bench, "--benchmark_filter=^BM_CudaUNetTrainStep/", "--benchmark_format=json"], env)
    rates = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        if "error_message" in b:
            sys.exit(f"diffkd_cuda_bench: {b['name']}: {b['error_message']}")
        rates[b["name"].split("/")[1]] = b["items_per_second"]
    missing = [str(n) for n in BATCHES if str(n) not in rates]
    if missing:
        sys.exit(f"diffkd_cuda_bench: no BM_CudaUNetTrainStep at batch {', '.join(missing)}")
    return rates


def run_torch(mode, min_time):
    out = run([sys.executable, os.path.abspath(__file__), "--worker", mode, "--min-time", str(min_time)],
              dict(os.environ))
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of PyTorch steps per batch (diffkd: 2)")
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "release", "diffkd_cuda_bench"))
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--worker", choices=sorted(TORCH_MODES), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker is not None:
        torch_worker(a.worker, a.min_time)
        return
    ours = {False: [], True: []}
    theirs = {mode: [] for mode in TORCH_MODES}
    for r in range(a.rounds):
        for tf32 in (False, True):
            ours[tf32].append(run_diffkd(a.bench, tf32))
        for mode in TORCH_MODES:
            theirs[mode].append(run_torch(mode, a.min_time))
        print(f"round {r + 1}/{a.rounds}: diffkd {ours[False][-1]}, torch {theirs['fastest'][-1]}",
              file=sys.stderr, flush=True)

    def median(runs, batch):
        return statistics.median(run[str(batch)] for run in runs)

    rows = []
    for batch in BATCHES:
        cases = [("TF32 off, PyTorch's fastest (cudnn.benchmark)", ours[False], theirs["fastest"]),
                 ("TF32 off, PyTorch deterministic (benchmark off)", ours[False], theirs["deterministic"]),
                 ("TF32 on", ours[True], theirs["tf32"])]
        for label, d_runs, t_runs in cases:
            d, t = median(d_runs, batch), median(t_runs, batch)
            rows.append(f"| batch {batch}, {label} | {d:.1f} | {t:.1f} | {d / t:.2f} |")
        rows.append(f"| batch {batch}, PyTorch bf16 autocast (ceiling; diffkd has no bf16) | | "
                    f"{median(theirs['bf16'], batch):.1f} | |")
    header = "| ddpm-cifar10 train step | diffkd img/s | torch img/s | diffkd / torch |"
    print(header if a.markdown else header.replace("|", " "))
    if a.markdown:
        print("|---|---:|---:|---:|")
    for row in rows:
        print(row if a.markdown else row.replace("|", " "))


if __name__ == "__main__":
    main()
