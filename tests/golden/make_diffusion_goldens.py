#!/usr/bin/python3
"""Writes the diffusion schedule / sampler goldens (safetensors) that the C++ diffusion tests read.

Run with Debian's Python (only /usr/bin/python3 has torch and numpy):

    /usr/bin/python3 tests/golden/make_diffusion_goldens.py           # (re)write the files
    /usr/bin/python3 tests/golden/make_diffusion_goldens.py --check   # ... then re-read and verify

Written from the diffusion specification (shared METHODS.md sections 0.1-0.4 and the golden brief)
only, not from the C++ code. All schedule and sampler arithmetic is float64 Python scalars and
libm functions (math.*), evaluated element by element; only the trajectory's network runs in float32.
Three files go to tests/golden/data/:

  diffusion_schedules.safetensors   betas / alphas_cumprod of linear(1000), cosine(1000),
                                    alphas_cumprod of cosine(1025) ("rdd"), the PD logSNR cosine
                                    on u = 0, 0.1, ..., 1, and three timestep sequences.
  diffusion_steps.safetensors       single DDIM and respaced-DDPM steps on cosine(1000) with random
                                    float64 inputs (the network output is a v-prediction), and
                                    learned-range DDPM steps (eps-prediction plus variance channels).
  diffusion_trajectory.safetensors  a whole 10-step DDIM (eta 0, clipped x0) trajectory of the tiny
                                    "ddpm" golden UNet (data/unet_ddpm_weights.safetensors).

Conventions: schedule index t = 0..T-1 (index t is DDPM's step t+1); alpha_bar[t] =
prod_{s<=t}(1 - beta[s]) (a sequential running product); a_t = sqrt(alpha_bar[t]),
s_t = sqrt(1 - alpha_bar[t]). v-prediction: x0 = a_t x_t - s_t v. x0 is clipped to [-1, 1] and eps
is then recomputed as (x_t - a_t x0) / s_t.

The safetensors layout (F64, I64 and F32 tensors; 0-d tensors have shape []) is the hand-written
one of safetensors_io.py, which also holds the writer and the independent reader used by --check.
Output is bit-for-bit reproducible.
"""
import argparse
import json
import math
import os
import sys
from fractions import Fraction

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
sys.path.insert(0, HERE)
import make_unet_goldens as unet_goldens  # noqa: E402  (the golden UNet)
from safetensors_io import GoldenFiles, read_safetensors, seed_of  # noqa: E402

MAX_FILE = 150 * 1024
MAX_TOTAL = 500 * 1024

goldens = GoldenFiles(OUT)


def f64(values):
    return np.array(values, dtype="<f8")


def i64(values):
    return np.array(values, dtype="<i8")


# ----------------------------------------------------------------------------------------------
# Schedules (float64, element by element with libm)
# ----------------------------------------------------------------------------------------------

def cumprod(betas):
    """alpha_bar[t] = prod_{s<=t} (1 - beta[s]), as a sequential running product."""
    out, acc = [], 1.0
    for b in betas:
        acc = acc * (1.0 - b)
        out.append(acc)
    return out


def linear_betas(T):
    """guided-diffusion's linear schedule: np.linspace(scale * 1e-4, scale * 0.02, T), scale =
    1000 / T (scale is exactly 1 for T = 1000)."""
    scale = 1000.0 / T
    return [float(b) for b in np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)]


def cosine_f(u):
    return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2


def cosine_betas(T):
    return [min(1.0 - cosine_f((t + 1) / T) / cosine_f(t / T), 0.999) for t in range(T)]


PD_LMIN, PD_LMAX = -20.0, 20.0


def pd_logsnr(u):
    b = math.atan(math.exp(-PD_LMAX / 2))
    a = math.atan(math.exp(-PD_LMIN / 2)) - b
    return -2.0 * math.log(math.tan(a * u + b))


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


PD_U = [k / 10 for k in range(11)]  # the doubles nearest 0.0, 0.1, ..., 1.0 (not k * 0.1)


def round_half_away(q):
    """Round a Fraction to the nearest integer, halves away from zero."""
    return math.floor(q + Fraction(1, 2)) if q >= 0 else -math.floor(-q + Fraction(1, 2))


def uniform_steps(T, n):
    """round-half-away-from-zero of linspace(0, T-1, n), evaluated exactly (rationals)."""
    if n == 1:
        return [T - 1]
    return [int(round_half_away(Fraction(k * (T - 1), n - 1))) for k in range(n)]


def quadratic_steps(last, n):
    """[int((k * sqrt(last) / (n - 1)) ** 2) for k in range(n)], final entry forced to last.
    Evaluated literally in float64, in that operation order."""
    seq = [int((k * math.sqrt(last) / (n - 1)) ** 2) for k in range(n)]
    seq[-1] = last
    return seq


LINEAR1000 = linear_betas(1000)
COSINE1000 = cosine_betas(1000)
AB_LINEAR1000 = cumprod(LINEAR1000)
AB_COSINE1000 = cumprod(COSINE1000)
AB_RDD = cumprod(cosine_betas(1025))


def make_schedules():
    lam = [pd_logsnr(u) for u in PD_U]
    tensors = {
        "linear1000.betas": f64(LINEAR1000),
        "linear1000.alphas_cumprod": f64(AB_LINEAR1000),
        "cosine1000.betas": f64(COSINE1000),
        "cosine1000.alphas_cumprod": f64(AB_COSINE1000),
        "rdd.alphas_cumprod": f64(AB_RDD),
        "pd.u": f64(PD_U),
        "pd.logsnr": f64(lam),
        "pd.signal": f64([math.sqrt(sigmoid(x)) for x in lam]),
        "pd.noise": f64([math.sqrt(sigmoid(-x)) for x in lam]),
        "steps.uniform_1000_5": i64(uniform_steps(1000, 5)),
        "steps.uniform_1000_50": i64(uniform_steps(1000, 50)),
        "steps.quadratic_800_100": i64(quadratic_steps(800, 100)),
    }
    meta = {
        "description": "diffusion schedules, float64; index t = 0..T-1 is DDPM step t+1; "
                       "alphas_cumprod[t] = prod_{s<=t}(1 - betas[s]) (sequential running product)",
        "linear": "betas = np.linspace(1e-4 * 1000/T, 0.02 * 1000/T, T) (numpy's linspace)",
        "cosine": "f(u) = cos((u + 0.008)/1.008 * pi/2)^2; betas[t] = min(1 - f((t+1)/T)/f(t/T), "
                  "0.999); rdd = cosine with T = 1025 (alphas_cumprod only)",
        "pd": "u = k/10, k = 0..10; b = atan(exp(-lmax/2)), a = atan(exp(-lmin/2)) - b, logsnr = "
              "-2 log tan(a u + b), lmin -20, lmax 20; signal = sqrt(sigmoid(logsnr)), noise = "
              "sqrt(sigmoid(-logsnr))",
        "steps": "uniform_T_n = round-half-away-from-zero(linspace(0, T-1, n)) (exact); "
                 "quadratic_last_n = [int((k*sqrt(last)/(n-1))**2) for k in range(n)] in float64, "
                 "final entry forced to last (the first entries repeat: 0, 0, 0, 0, 1, ...)",
    }
    goldens.write("diffusion_schedules.safetensors", tensors, meta)


# ----------------------------------------------------------------------------------------------
# Single sampler steps (float64 numpy arrays, scalar coefficients in float64)
# ----------------------------------------------------------------------------------------------

SHAPE = (2, 1, 4, 4)


def x0_from_v(x_t, v, ab):
    """Clipped x0 from a v-prediction at alpha_bar ab, and eps recomputed from the clipped x0."""
    a, s = math.sqrt(ab), math.sqrt(1.0 - ab)
    x0 = np.clip(a * x_t - s * v, -1.0, 1.0)
    eps = (x_t - a * x0) / s
    return x0, eps


def ddim_step(x_t, v, ab_t, ab_s, eta, z):
    """One DDIM step (v-prediction, clipped x0); ab_s = 1 means "return x0"."""
    x0, eps = x0_from_v(x_t, v, ab_t)
    sigma = eta * math.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * math.sqrt(1.0 - ab_t / ab_s)
    x_s = math.sqrt(ab_s) * x0 + math.sqrt(1.0 - ab_s - sigma * sigma) * eps
    if eta != 0.0:
        x_s = x_s + sigma * z
    return x_s, x0


DDPM_KEPT = [0, 249, 499, 749, 999]


def respaced(kept, ab_full):
    """alpha_bar_k = ab_full[kept[k]], beta_k = 1 - alpha_bar_k / alpha_bar_{k-1} (alpha_bar_-1 = 1)."""
    ab = [ab_full[t] for t in kept]
    betas = [1.0 - ab[k] / (ab[k - 1] if k else 1.0) for k in range(len(kept))]
    return ab, betas


def ddpm_step(x_k, v, k, kept, variance, z):
    ab, betas = respaced(kept, AB_COSINE1000)
    ab_k, ab_prev, beta = ab[k], (ab[k - 1] if k else 1.0), betas[k]
    x0, _ = x0_from_v(x_k, v, ab_k)
    mean = (beta * math.sqrt(ab_prev) / (1.0 - ab_k)) * x0 + \
           ((1.0 - ab_prev) * math.sqrt(1.0 - beta) / (1.0 - ab_k)) * x_k
    if k == 0:
        return mean, x0
    var = beta * (1.0 - ab_prev) / (1.0 - ab_k) if variance == "small" else beta
    return mean + math.sqrt(var) * z, x0


def ddpm_step_learned(x_k, eps_out, var_out, k, kept, z):
    """iDDPM learned-range variance (Nichol & Dhariwal 2021, eq. 15), eps-prediction, as
    guided-diffusion's p_mean_variance: frac = (var_out + 1) / 2, log var = frac log beta_k +
    (1 - frac) log beta~_k with beta~ "clipped" (index 0 takes beta~_1, as log 0 is -inf)."""
    ab, betas = respaced(kept, AB_COSINE1000)
    ab_k, ab_prev, beta = ab[k], (ab[k - 1] if k else 1.0), betas[k]
    post_var = [betas[j] * (1.0 - (ab[j - 1] if j else 1.0)) / (1.0 - ab[j]) for j in range(len(kept))]
    min_log = math.log(post_var[1] if k == 0 else post_var[k])
    max_log = math.log(beta)
    frac = (var_out + 1.0) / 2.0
    log_var = frac * max_log + (1.0 - frac) * min_log
    x0 = np.clip(math.sqrt(1.0 / ab_k) * x_k - math.sqrt(1.0 / ab_k - 1.0) * eps_out, -1.0, 1.0)
    mean = (beta * math.sqrt(ab_prev) / (1.0 - ab_k)) * x0 + \
           ((1.0 - ab_prev) * math.sqrt(1.0 - beta) / (1.0 - ab_k)) * x_k
    if k == 0:
        return mean, x0
    return mean + np.vectorize(math.exp)(0.5 * log_var) * z, x0


# (prefix, k): a learned-range model (2C output channels: eps, then the variance values in [-1, 1])
DDPM_LEARNED_CASES = [("ddpm_learned_k3", 3), ("ddpm_learned_k1", 1), ("ddpm_learned_k0", 0)]


# (prefix, t, s, eta, uses z); s = -1 is the final step (alpha_bar_s = 1: the output is x0)
DDIM_CASES = [("ddim_999_979", 999, 979, 0.0), ("ddim_500_480", 500, 480, 0.5),
              ("ddim_20_0", 20, 0, 1.0), ("ddim_final_0", 0, -1, 0.0)]
# (prefix, k, variance)
DDPM_CASES = [("ddpm_k3_small", 3, "small"), ("ddpm_k3_large", 3, "large"),
              ("ddpm_k1_large", 1, "large"), ("ddpm_k0", 0, None)]


def case_inputs(prefix, with_z):
    """x_t ~ N(0, 1), out ~ N(0, 0.5^2), then z ~ N(0, 1) if used: numpy PCG64, seeded per case."""
    rng = np.random.default_rng(seed_of("diffusion." + prefix))
    x_t = rng.standard_normal(SHAPE)
    out = 0.5 * rng.standard_normal(SHAPE)
    z = rng.standard_normal(SHAPE) if with_z else None
    return x_t, out, z


def make_steps():
    tensors = {}
    for prefix, t, s, eta in DDIM_CASES:
        x_t, out, z = case_inputs(prefix, eta != 0.0)
        ab_s = AB_COSINE1000[s] if s >= 0 else 1.0
        x_next, x0 = ddim_step(x_t, out, AB_COSINE1000[t], ab_s, eta, z)
        tensors.update({prefix + ".x_t": x_t, prefix + ".out": out, prefix + ".x_next": x_next,
                        prefix + ".x0": x0, prefix + ".t": i64(t), prefix + ".s": i64(s),
                        prefix + ".eta": f64(eta)})
        if z is not None:
            tensors[prefix + ".z"] = z
    for prefix, k, variance in DDPM_CASES:
        x_t, out, z = case_inputs(prefix, k > 0)
        x_next, x0 = ddpm_step(x_t, out, k, DDPM_KEPT, variance, z)
        tensors.update({prefix + ".x_t": x_t, prefix + ".out": out, prefix + ".x_next": x_next,
                        prefix + ".x0": x0, prefix + ".k": i64(k),
                        prefix + ".t": i64(DDPM_KEPT[k])})
        if z is not None:
            tensors[prefix + ".z"] = z
    for prefix, k in DDPM_LEARNED_CASES:
        x_t, out, z = case_inputs(prefix, k > 0)
        var_out = np.tanh(np.random.default_rng(seed_of("diffusion." + prefix + ".var")).standard_normal(SHAPE))
        x_next, x0 = ddpm_step_learned(x_t, out, var_out, k, DDPM_KEPT, z)
        tensors.update({prefix + ".x_t": x_t, prefix + ".out": out, prefix + ".var": var_out,
                        prefix + ".x_next": x_next, prefix + ".x0": x0, prefix + ".k": i64(k)})
        if z is not None:
            tensors[prefix + ".z"] = z
    tensors["ddpm.kept"] = i64(DDPM_KEPT)
    meta = {
        "description": "single sampler steps on cosine(1000), float64, shapes [2,1,4,4]; `out` is "
                       "a v-prediction: x0 = clip(a_t x_t - s_t out, -1, 1), eps = (x_t - a_t x0)/s_t "
                       "(a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar)); inputs from numpy "
                       "default_rng(seed) drawn in order x_t ~ N(0,1), out = 0.5 N(0,1), z ~ N(0,1); "
                       "<p>.x0 is the clipped x0 (diagnostic)",
        "ddim": "<p>.t -> <p>.s schedule indices, <p>.eta: sigma = eta sqrt((1-ab_s)/(1-ab_t)) "
                "sqrt(1 - ab_t/ab_s), x_next = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma^2) eps + "
                "sigma z (z only when eta > 0). s = -1 (ddim_final_0) means alpha_bar_s = 1: "
                "x_next = x0. ddim_20_0 goes to index 0 (alpha_bar[0] = 1 - beta[0] < 1), not to x0",
        "ddpm": "respaced on kept = ddpm.kept of cosine(1000): ab_k = alpha_bar[kept[k]], beta_k = "
                "1 - ab_k/ab_{k-1} (ab_{-1} = 1); <p>.k respaced index, <p>.t = kept[k] (the "
                "model's time input); mean = beta_k sqrt(ab_{k-1})/(1-ab_k) x0 + (1-ab_{k-1}) "
                "sqrt(1-beta_k)/(1-ab_k) x_k; var small = beta_k (1-ab_{k-1})/(1-ab_k), large = "
                "beta_k; x_next = mean + sqrt(var) z, no noise (and no z) at k = 0",
        "ddpm_learned": "the same respaced schedule, iDDPM learned range (eq. 15): <p>.out is an "
                        "eps-prediction (x0 = clip(sqrt(1/ab_k) x_k - sqrt(1/ab_k - 1) out)), <p>.var "
                        "= tanh(N(0,1)) from default_rng(seed_of('diffusion.<p>.var')) the variance "
                        "channels; log var = f log beta_k + (1-f) log beta~_k, f = (var + 1)/2, "
                        "beta~_0 replaced by beta~_1; x_next = mean + exp(log var / 2) z",
    }
    goldens.write("diffusion_steps.safetensors", tensors, meta)


# ----------------------------------------------------------------------------------------------
# Whole DDIM trajectory of the tiny golden UNet
# ----------------------------------------------------------------------------------------------

TRAJ_STEPS = uniform_steps(1000, 10)
TRAJ_SHAPE = (3, 1, 8, 8)


def load_unet(dtype=torch.float32):
    weights, meta = read_safetensors(os.path.join(OUT, "unet_ddpm_weights.safetensors"))
    model = unet_goldens.UNet(json.loads(meta["config"]))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    return model.to(dtype).eval()


def trajectory_x_T():
    rng = np.random.default_rng(seed_of("diffusion.traj.x_T"))
    return rng.standard_normal(TRAJ_SHAPE).astype("<f4")


def run_trajectory(model, x_T, state_dtype):
    """DDIM, eta 0, clipped x0, v-prediction, over TRAJ_STEPS (descending), then the final step
    from index 0 to x0. The network sees the state in the model's dtype and the ORIGINAL schedule
    index as a time tensor [N] of that dtype; the update is float64; the state is rounded to
    state_dtype after every step (float32 for the golden)."""
    seq = TRAJ_STEPS[::-1]  # 999, 888, ..., 0
    mdtype = next(model.parameters()).dtype
    x = x_T.astype(state_dtype)
    states = []
    with torch.no_grad():
        for i, t in enumerate(seq):
            x_in = torch.from_numpy(x.astype(np.float32 if mdtype == torch.float32 else np.float64))
            t_in = torch.full((x.shape[0],), float(t), dtype=mdtype)
            v = model(x_in, t_in).numpy().astype(np.float64)
            ab_s = AB_COSINE1000[seq[i + 1]] if i + 1 < len(seq) else 1.0
            x_next, _ = ddim_step(x.astype(np.float64), v, AB_COSINE1000[t], ab_s, 0.0, None)
            x = x_next.astype(state_dtype)
            states.append(x)
    return states


def make_trajectory():
    model = load_unet(torch.float32)
    x_T = trajectory_x_T()
    states = run_trajectory(model, x_T, np.float32)
    tensors = {"traj.x_T": x_T, "traj.steps": i64(TRAJ_STEPS)}
    for k, x in enumerate(states, start=1):
        tensors[f"traj.x_after_step_{k}"] = x.astype("<f4")
    meta = {
        "description": "10-step DDIM trajectory (eta 0, x0 clipped to [-1,1], eps recomputed from "
                       "the clipped x0) of the tiny golden UNet, config 'ddpm', weights "
                       "data/unet_ddpm_weights.safetensors, float32 model in eval mode; the output "
                       "is a v-prediction: x0 = a_t x_t - s_t v",
        "schedule": "cosine(1000); traj.steps = uniform(1000, 10) = [0, 111, ..., 999] (ascending), "
                    "visited descending 999 -> 888 -> ... -> 111 -> 0, then a final step from index "
                    "0 that returns x0 (alpha_bar_s = 1): 10 steps",
        "model_input": "x as float32 [3,1,8,8]; t = float32 tensor [3] filled with the ORIGINAL "
                       "schedule index of the current step (999.0, 888.0, ..., 0.0)",
        "precision": "the state is float32: each step upcasts the float32 state and the float32 "
                     "network output to float64, does the DDIM update in float64 with float64 "
                     "schedule coefficients, and casts the new state back to float32 (that is "
                     "traj.x_after_step_k and the next network input)",
        "tensors": "traj.x_T (float32 N(0,1), numpy default_rng, float64 draw cast to float32); "
                   "traj.x_after_step_k, k = 1..10, the state after step k; step 10 is the final x0",
        "config": json.dumps(model.cfg, separators=(", ", ": ")),
    }
    goldens.write("diffusion_trajectory.safetensors", tensors, meta)
    return states


# ----------------------------------------------------------------------------------------------
# --check
# ----------------------------------------------------------------------------------------------

def close(a, b, rtol, atol=0.0):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.all(np.abs(a - b) <= atol + rtol * np.abs(b))


def check_schedules(st):
    # linear: endpoints exact, constant spacing
    lb = st["linear1000.betas"]
    assert lb.shape == (1000,) and lb[0] == 1e-4 and lb[-1] == 0.02
    assert close(np.diff(lb), (0.02 - 1e-4) / 999, 1e-9)
    for name in ["linear1000", "cosine1000"]:
        b, ab = st[name + ".betas"], st[name + ".alphas_cumprod"]
        assert b.shape == ab.shape == (1000,)
        assert np.all(b > 0) and np.all(b <= 0.999) and np.all(np.diff(ab) < 0) and ab[-1] > 0
        assert close(ab, np.cumprod(1.0 - b), 1e-14)  # numpy's cumprod (also sequential)
    # cosine: alpha_bar[t] == f((t+1)/T)/f(0) wherever no beta up to t is clamped
    for key, T in [("cosine1000", 1000), ("rdd", 1025)]:
        betas = cosine_betas(T)
        clamped = [t for t, b in enumerate(betas) if b == 0.999]
        ab = st[key + ".alphas_cumprod"]
        assert ab.shape == (T,)
        first = clamped[0] if clamped else T
        ref = [cosine_f((t + 1) / T) / cosine_f(0.0) for t in range(first)]
        rel = float(np.max(np.abs(ab[:first] - ref) / np.abs(ref)))
        assert rel < 1e-12, (key, rel)
        print(f"  {key}: clamped beta indices {clamped}; alpha_bar vs f((t+1)/T)/f(0) on 0..{first - 1}: "
              f"max rel diff {rel:.1e}; alpha_bar[0] {ab[0]:.17g}, alpha_bar[-1] {ab[-1]:.6g}")
        assert clamped == [T - 1], (key, clamped)  # only the last beta is clamped
    assert close(st["cosine1000.betas"], COSINE1000, 0.0)
    # PD logSNR
    u, lam, sig, noi = st["pd.u"], st["pd.logsnr"], st["pd.signal"], st["pd.noise"]
    assert u.shape == (11,) and u[0] == 0.0 and u[-1] == 1.0 and u[3] == 0.3
    # logsnr(1) = -20 only to ~2e-12: tan(a + b) is evaluated near pi/2, where an ulp of its
    # argument is amplified by ~e^10 (ill-conditioned; compare pd.logsnr with ~1e-10 absolute).
    assert abs(lam[0] - 20) < 1e-12 and abs(lam[-1] + 20) < 1e-10 and np.all(np.diff(lam) < 0)
    assert close(sig ** 2 + noi ** 2, 1.0, 1e-15)
    assert close(np.log(sig ** 2 / noi ** 2), lam, 0.0, 1e-9)
    assert abs(lam[5]) < 1e-12  # symmetric range: logsnr(1/2) = 0
    # step sequences
    for n in (5, 50):
        s = st[f"steps.uniform_1000_{n}"]
        lin = np.linspace(0, 999, n)
        assert s[0] == 0 and s[-1] == 999 and np.all(np.abs(s - lin) <= 0.5)
        assert np.all(s == np.floor(lin + 0.5))  # same as the float64 linspace (no near-halves)
    assert list(st["steps.uniform_1000_5"]) == [0, 250, 500, 749, 999]  # 499.5 -> 500
    assert uniform_steps(1000, 1) == [999] and uniform_steps(1000, 10) == list(range(0, 1000, 111))
    q = st["steps.quadratic_800_100"]
    exact = [math.floor(Fraction(k * k * 800, 99 * 99)) for k in range(100)]
    exact[-1] = 800
    assert list(q) == exact  # float64 evaluation agrees with exact rationals (no near-integers)
    assert np.all(np.diff(q) >= 0)
    print(f"  steps: uniform_1000_5 {list(st['steps.uniform_1000_5'])}; quadratic_800_100 starts "
          f"{list(q[:8])} ({100 - len(set(q.tolist()))} repeated entries), ends {list(q[-3:])}")


def check_steps(sp):
    clipped = 0
    for prefix, t, s, eta in DDIM_CASES:
        x_t, v, x_next = sp[prefix + ".x_t"], sp[prefix + ".out"], sp[prefix + ".x_next"]
        assert sp[prefix + ".t"].shape == () and int(sp[prefix + ".t"]) == t and int(sp[prefix + ".s"]) == s
        assert (prefix + ".z" in sp) == (eta != 0.0) and float(sp[prefix + ".eta"]) == eta
        ab_t = AB_COSINE1000[t]
        a_t, s_t = math.sqrt(ab_t), math.sqrt(1 - ab_t)
        # alternative: x0 via the eps-form; clip; eps-form update
        raw = a_t * x_t - s_t * v
        clipped += int(np.sum(np.abs(raw) > 1))
        x0 = np.clip(raw, -1, 1)
        assert np.array_equal(x0, sp[prefix + ".x0"])
        if s < 0:
            assert np.array_equal(x_next, x0)
            continue
        ab_s = AB_COSINE1000[s]
        eps = (x_t - a_t * x0) / s_t
        # eps-form of the same update: a_s (x_t - s_t eps)/a_t + c eps + sigma z
        var = eta ** 2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
        ref = math.sqrt(ab_s) * (x_t - s_t * eps) / a_t + math.sqrt(1 - ab_s - var) * eps
        if eta:
            ref = ref + math.sqrt(var) * sp[prefix + ".z"]
        assert close(x_next, ref, 1e-12, 1e-12), prefix
    ab, betas = respaced(DDPM_KEPT, AB_COSINE1000)
    assert list(sp["ddpm.kept"]) == DDPM_KEPT and betas[0] == COSINE1000[0]
    for prefix, k, variance in DDPM_CASES:
        x_t, v, x_next, x0 = (sp[prefix + n] for n in (".x_t", ".out", ".x_next", ".x0"))
        assert int(sp[prefix + ".k"]) == k and int(sp[prefix + ".t"]) == DDPM_KEPT[k]
        clipped += int(np.sum(np.abs(math.sqrt(ab[k]) * x_t - math.sqrt(1 - ab[k]) * v) > 1))
        if k == 0:
            assert prefix + ".z" not in sp
            assert close(x_next, x0, 1e-15)  # mean at k = 0 is x0 (coefficients 1 and 0)
            continue
        z = sp[prefix + ".z"]
        if variance == "small":
            # A DDIM eta = 1 step between consecutive kept indices is exactly the fixed-small
            # DDPM posterior step (same mean and variance).
            ref, _ = ddim_step(x_t, v, ab[k], ab[k - 1], 1.0, z)
        else:
            # posterior mean written with eps instead of x0: (x_k - beta/s_k eps)/sqrt(alpha_k)
            ab_prev = ab[k - 1]
            x0c, eps = x0_from_v(x_t, v, ab[k])
            mean_eps = (x_t - betas[k] / math.sqrt(1 - ab[k]) * eps) / math.sqrt(1 - betas[k])
            ref = mean_eps + math.sqrt(betas[k]) * z
            assert close(x0c, x0, 0.0)
        err = float(np.max(np.abs(x_next - ref)))
        assert err < 1e-12, (prefix, err)
    for prefix, k in DDPM_LEARNED_CASES:
        x_t, e, var_out, x_next = (sp[prefix + n] for n in (".x_t", ".out", ".var", ".x_next"))
        assert int(sp[prefix + ".k"]) == k and (prefix + ".z" in sp) == (k > 0)
        if k == 0:
            continue
        # variance as a geometric interpolation beta^f beta~^(1-f); mean from the clipped x0
        # through the eps-form (x_k - beta/s_k eps')/sqrt(alpha_k), eps' recomputed from x0.
        ab_prev = ab[k - 1]
        post = betas[k] * (1 - ab_prev) / (1 - ab[k])
        f = (var_out + 1) / 2
        x0 = np.clip((x_t - math.sqrt(1 - ab[k]) * e) / math.sqrt(ab[k]), -1, 1)
        eps = (x_t - math.sqrt(ab[k]) * x0) / math.sqrt(1 - ab[k])
        mean_eps = (x_t - betas[k] / math.sqrt(1 - ab[k]) * eps) / math.sqrt(1 - betas[k])
        ref = mean_eps + np.sqrt(betas[k] ** f * post ** (1 - f)) * sp[prefix + ".z"]
        err = float(np.max(np.abs(x_next - ref)))
        assert err < 1e-12, (prefix, err)
    print(f"  steps: all {len(DDIM_CASES) + len(DDPM_CASES) + len(DDPM_LEARNED_CASES)} cases agree with alternative formulas "
          f"(eps-form DDIM, DDIM eta=1 == DDPM fixed-small, eps-form posterior mean); "
          f"{clipped} clipped x0 elements over all cases")
    assert clipped > 0


def check_trajectory(tr, states):
    assert list(tr["traj.steps"]) == TRAJ_STEPS and tr["traj.x_T"].dtype == np.float32
    assert np.array_equal(tr["traj.x_T"], trajectory_x_T())
    assert sorted(k for k in tr if k.startswith("traj.x_after_step_")) == \
        sorted(f"traj.x_after_step_{k}" for k in range(1, 11))
    final = tr["traj.x_after_step_10"]
    assert np.all(np.abs(final) <= 1)
    # Determinism: a second float32 run gives identical bits.
    again = run_trajectory(load_unet(torch.float32), tr["traj.x_T"], np.float32)
    assert all(np.array_equal(a, b) for a, b in zip(again, states))
    # Tolerance floor: the same trajectory with a float64 model and float64 state.
    ref = run_trajectory(load_unet(torch.float64), tr["traj.x_T"].astype(np.float64), np.float64)
    devs = [float(np.max(np.abs(tr[f"traj.x_after_step_{k}"] - ref[k - 1]))) for k in range(1, 11)]
    print("  trajectory: max |float32 golden - float64 run| per step: "
          + ", ".join(f"{d:.1e}" for d in devs)
          + f"; final x0 range [{final.min():.3f}, {final.max():.3f}], "
          f"{int(np.sum(np.abs(final) == 1))} of {final.size} elements at +-1")
    assert max(devs) < 1e-4


def check(states):
    loaded, total = goldens.check_round_trips(MAX_FILE)
    assert total < MAX_TOTAL, total
    stale = sorted(set(f for f in os.listdir(OUT) if f.startswith("diffusion_")) - set(loaded))
    assert not stale, stale
    check_schedules(loaded["diffusion_schedules.safetensors"])
    check_steps(loaded["diffusion_steps.safetensors"])
    check_trajectory(loaded["diffusion_trajectory.safetensors"], states)
    print(f"checked {len(goldens.written)} files: all round-trip, {total} bytes in total")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="after writing, re-read every file and verify it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    make_schedules()
    make_steps()
    states = make_trajectory()
    print(f"wrote {len(goldens.written)} files, {goldens.total_bytes()} bytes, to {OUT}")
    if args.check:
        check(states)
    return 0


if __name__ == "__main__":
    sys.exit(main())
