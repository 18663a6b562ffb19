#!/usr/bin/python3
"""Writes the Score identity Distillation (SiD) goldens (safetensors) that the C++ SiD tests read.

Run with Debian's Python (only /usr/bin/python3 has torch and numpy):

    /usr/bin/python3 tests/golden/make_sid_goldens.py           # (re)write the files
    /usr/bin/python3 tests/golden/make_sid_goldens.py --check   # ... then re-read and verify

Written from the golden brief (SiD, Zhou et al. ICML 2024, in a discrete-time VP form on the
teacher's cosine(1000) steps) only, not from the C++ code. Everything is float64 (the three tiny
"ddpm" golden UNets of make_unet_goldens.py converted to double after their float32 weights are
built); gradients are torch autograd. Two files go to tests/golden/data/:

  sid_generator.safetensors   one SiD generator update (alpha = 1.2): generator sample x_g from
                              the one-step generator at t_init = step_of(2.5), noised per sample,
                              teacher and fake-score x0 predictions, the stop-gradient-weighted
                              SiD loss, and d loss / d every generator parameter (F32).
  sid_fake_score.safetensors  one fake-score update: the v-prediction MSE of the fake score
                              network on detached generator samples, and d loss / d every fake
                              score parameter (F32); psi_check.* holds the perturbed weights of
                              the first two state_dict tensors.

Networks (config "ddpm" of make_unet_goldens.py, v-prediction on cosine(1000)): teacher phi = the
weights of data/unet_ddpm_weights.safetensors; generator G = the same weights (SiD initialises G
from the teacher); fake score psi = every state_dict tensor W perturbed elementwise,
float32(float64(W[k]) + 0.02 sin(0.5 k + 1)), k the 0-based flat (C-order) index within W.

Inputs come from numpy default_rng(seed_of(<file stem>)) in a documented order, so the output is
bit-for-bit reproducible (single-threaded torch). Same hand-written safetensors layout as the other
goldens (safetensors_io.py: writer and the independent reader used by --check). The cosine schedule
is imported from make_diffusion_goldens.py and the UNet from make_unet_goldens.py (importing them
writes nothing).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
sys.path.insert(0, HERE)
import make_diffusion_goldens as dg  # noqa: E402  (cosine schedule, f64 / i64)
import make_unet_goldens as ug  # noqa: E402  (the golden UNet and its configs)
from safetensors_io import GoldenFiles, read_safetensors, seed_of, t64  # noqa: E402

MAX_FILE = 100 * 1024
FILES = ["sid_generator.safetensors", "sid_fake_score.safetensors"]
goldens = GoldenFiles(OUT, dtypes=(np.float64, np.int64, np.float32))

CFG = ug.CONFIGS["ddpm"]
WEIGHTS = os.path.join(OUT, "unet_ddpm_weights.safetensors")
SHAPE = (3, 1, 8, 8)

# ---- schedule and SiD's noise levels ---------------------------------------------------------

T = 1000
AB = dg.AB_COSINE1000
assert len(AB) == T
SIGMA_VP = [math.sqrt((1.0 - ab) / ab) for ab in AB]
LN_SIGMA_VP = [math.log(s) for s in SIGMA_VP]
assert all(a < b for a, b in zip(SIGMA_VP, SIGMA_VP[1:]))   # increasing in t

SIGMA_INIT = 2.5
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
T_MAX = 800
ALPHA = 1.2
W_FLOOR = 1e-5
TIE_MARGIN = 1e-6
U_GEN = [0.05, 0.5, 0.95]
U_FAKE = [0.2, 0.6, 0.9]
PERTURB_SCALE = 0.02


def step_margin(sigma):
    """(step_of(sigma), margin): step_of = argmin_t |ln sigma_VP(t) - ln sigma| (ties: smaller t);
    margin = second-smallest distance - smallest (a tie has margin 0)."""
    ls = math.log(sigma)
    dist = [abs(l - ls) for l in LN_SIGMA_VP]
    t = min(range(T), key=lambda i: (dist[i], i))
    second = min(dist[i] for i in range(T) if i != t)
    return t, second - dist[t]


def step_of(sigma):
    t, margin = step_margin(sigma)
    assert margin > TIE_MARGIN, (sigma, t, margin)
    return t


def sigma_of_u(u):
    """SiD's training sigma for a uniform draw u in [0, 1): s = u * t_max / 1000 and the EDM rho
    interpolation from sigma_min (s = 0) towards sigma_max (s = 1)."""
    s = u * T_MAX / 1000.0
    lo, hi = SIGMA_MIN ** (1.0 / RHO), SIGMA_MAX ** (1.0 / RHO)
    return (hi + (1.0 - s) * (lo - hi)) ** RHO


T_INIT = step_of(SIGMA_INIT)


def coef(ts, dtype=torch.float64):
    """[B,1,1,1] tensors (a_t, s_t) = (sqrt(ab_t), sqrt(1 - ab_t)), computed in float64."""
    a = torch.tensor([math.sqrt(AB[t]) for t in ts], dtype=torch.float64).reshape(-1, 1, 1, 1)
    s = torch.tensor([math.sqrt(1.0 - AB[t]) for t in ts], dtype=torch.float64).reshape(-1, 1, 1, 1)
    return a.to(dtype), s.to(dtype)


def time_input(ts):
    return torch.tensor([float(t) for t in ts], dtype=torch.float64)


# ---- networks ---------------------------------------------------------------------------------

def teacher_state():
    """The teacher's state_dict (float32 numpy), in the model's state_dict order."""
    w, meta = read_safetensors(WEIGHTS)
    assert json.loads(meta["config"]) == CFG
    names = list(ug.UNet(CFG).state_dict())
    assert sorted(names) == sorted(w)
    return {n: w[n].copy() for n in names}


def perturb(W):
    """float32(float64(W[k]) + 0.02 sin(0.5 k + 1.0)), k the flat C-order index (libm sin)."""
    flat = W.astype(np.float64).reshape(-1)
    wave = np.array([math.sin(0.5 * k + 1.0) for k in range(flat.size)], dtype=np.float64)
    return (flat + PERTURB_SCALE * wave).astype(np.float32).reshape(W.shape)


def fake_state():
    return {n: perturb(v) for n, v in teacher_state().items()}


def build(state, dtype, trainable):
    net = ug.UNet(CFG)
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    net = net.to(dtype).eval()
    for p in net.parameters():
        p.requires_grad_(trainable)
    return net


def inputs(stem):
    rng = np.random.default_rng(seed_of(stem))
    z = rng.standard_normal(SHAPE)
    eps = rng.standard_normal(SHAPE)
    return z, eps


# ---- the SiD computations ---------------------------------------------------------------------

def generate(G, z):
    """x_g = a x_in - s G(x_in, t_init), x_in = s z (sigma_init z in VP form), at t = t_init."""
    B = z.shape[0]
    a, s = coef([T_INIT] * B, z.dtype)
    x_in = s * z
    out = G(x_in, time_input([T_INIT] * B))
    return a * x_in - s * out


def x0_of(net, x_t, ts):
    a, s = coef(ts, x_t.dtype)
    return a * x_t - s * net(x_t, time_input(ts))


def generator_loss(G, phi, psi, z, eps, ts, w_fixed=None, alpha=ALPHA):
    """Returns (L_G, x_g, f_phi, f_psi, w). w is computed with the gradient stopped, or taken as
    the given constant w_fixed."""
    x_g = generate(G, z)
    a, s = coef(ts, z.dtype)
    x_t = a * x_g + s * eps
    f_phi = x0_of(phi, x_t, ts)
    f_psi = x0_of(psi, x_t, ts)
    d = f_phi - f_psi
    dims = (1, 2, 3)
    if w_fixed is None:
        w = (x_g.detach() - f_phi.detach()).abs().mean(dim=dims).clamp_min(W_FLOOR)
    else:
        w = w_fixed
    per = (d * ((f_phi - x_g) - alpha * d)).mean(dim=dims) / w
    return per.mean(), x_g, f_phi, f_psi, w


def fake_score_loss(G, psi, z, eps, ts):
    """Returns (L_psi, x_g): the v-MSE of psi on detached generator samples."""
    with torch.no_grad():
        x_g = generate(G, z)
    a, s = coef(ts, z.dtype)
    x_t = a * x_g + s * eps
    v_star = a * eps - s * x_g
    return ((psi(x_t, time_input(ts)) - v_star) ** 2).mean(), x_g


def run_generator(dtype, stem="sid_generator"):
    z_np, eps_np = inputs(stem)
    ts = [step_of(sigma_of_u(u)) for u in U_GEN]
    teacher = teacher_state()
    G = build(teacher, dtype, True)
    phi = build(teacher, dtype, False)
    psi = build(fake_state(), dtype, False)
    z, eps = torch.from_numpy(z_np).to(dtype), torch.from_numpy(eps_np).to(dtype)
    loss, x_g, f_phi, f_psi, w = generator_loss(G, phi, psi, z, eps, ts)
    named = list(G.named_parameters())
    grads = torch.autograd.grad(loss, [p for _, p in named])
    return dict(z=z_np, eps=eps_np, ts=ts, G=G, phi=phi, psi=psi, loss=loss, x_g=x_g,
                f_phi=f_phi, f_psi=f_psi, w=w, grads={n: g for (n, _), g in zip(named, grads)})


def run_fake_score(dtype, stem="sid_fake_score"):
    z_np, eps_np = inputs(stem)
    ts = [step_of(sigma_of_u(u)) for u in U_FAKE]
    G = build(teacher_state(), dtype, False)
    psi = build(fake_state(), dtype, True)
    z, eps = torch.from_numpy(z_np).to(dtype), torch.from_numpy(eps_np).to(dtype)
    loss, x_g = fake_score_loss(G, psi, z, eps, ts)
    named = list(psi.named_parameters())
    grads = torch.autograd.grad(loss, [p for _, p in named])
    return dict(z=z_np, eps=eps_np, ts=ts, G=G, psi=psi, loss=loss, x_g=x_g,
                grads={n: g for (n, _), g in zip(named, grads)})


# ---- the files --------------------------------------------------------------------------------

COMMON = (
    "SiD (Score identity Distillation, Zhou et al. ICML 2024) in discrete-time VP form. "
    "Networks: the 'ddpm' config of make_unet_goldens.py (1 in / 1 out channel, 8x8), v-prediction "
    "on the iDDPM cosine schedule, T = 1000 (alpha_bar[t] as diffusion_schedules.safetensors "
    "cosine1000.alphas_cumprod), a_t = sqrt(alpha_bar[t]), s_t = sqrt(1 - alpha_bar[t]), x0 of a "
    "v-output v at (x, t) = a_t x - s_t v; the time input is the step index t as a float. Teacher "
    "phi = unet_ddpm_weights.safetensors; generator G = the same weights; fake score psi = every "
    "state_dict tensor W perturbed elementwise: float32(float64(W[k]) + 0.02*sin(0.5*k + 1.0)), k = "
    "0-based flat C-order index WITHIN that tensor (restarting at 0 for each tensor; biases and "
    "norms too). All maths in float64 (the float32 weights converted to double). Noise levels: "
    "sigma_VP(t) = sqrt((1 - alpha_bar[t]) / alpha_bar[t]) (increasing in t); step_of(sigma) = "
    "argmin_t |ln sigma_VP(t) - ln sigma| (ties: smaller t; every mapped step here is > 1e-6 from a "
    "tie). t_init (I64 0-d) = step_of(2.5) (sigma_init 2.5). A draw u in [0,1) (u [3] F64): s = "
    "u*800/1000 (t_max 800), sigma = (80^(1/7) + (1 - s)*(0.002^(1/7) - 80^(1/7)))^7; t (I64 [3]) = "
    "step_of(sigma) per sample; sigma [3] F64 = that continuous sigma (diagnostic). Inputs from "
    "numpy default_rng(seed_of(<file stem>)), float64, drawn in this order: z [3,1,8,8] ~ N(0,1), "
    "then eps [3,1,8,8] ~ N(0,1). Generator sample: x_in = s_{t_init} z, x_g [3,1,8,8] = "
    "a_{t_init} x_in - s_{t_init} G(x_in, t_init). Noised: x_t = a_t x_g + s_t eps (per-sample t). "
    "grad.<name> (F32, state_dict names and shapes) are the float64 autograd gradients rounded to "
    "float32; grad.*.qkv.bias rows C..2C (the attention key biases) are mathematically 0 (softmax "
    "shift invariance) and hold rounding noise. ")


def make_generator():
    r = run_generator(torch.float64)
    out = {"z": r["z"], "eps": r["eps"], "u": dg.f64(U_GEN), "t": dg.i64(r["ts"]),
           "t_init": np.array(T_INIT, dtype="<i8"), "sigma": dg.f64([sigma_of_u(u) for u in U_GEN]),
           "x_g": r["x_g"], "f_teacher": r["f_phi"], "f_fake": r["f_psi"], "w": r["w"],
           "loss": r["loss"], "alpha": np.array(ALPHA, dtype="<f8")}
    for n, g in r["grads"].items():
        out["grad." + n] = g.to(torch.float32)
    meta = {
        "description": COMMON + (
            "GENERATOR UPDATE (alpha 0-d F64 = 1.2): f_teacher = x0 of phi at (x_t, t), f_fake = x0 "
            "of psi at (x_t, t); d = f_teacher - f_fake; w [3] (diagnostic) = max(mean over the "
            "sample's 64 pixels of |x_g - f_teacher|, 1e-5) with the gradient STOPPED; loss (0-d) = "
            "mean over b of [mean over pixels of d*((f_teacher - x_g) - alpha*d)] / w_b (= per "
            "sample ((1 - alpha)|d|^2 + d.(f_fake - x_g)) / (64 w_b)). grad.<name> = d loss / d G's "
            "parameters, flowing through x_g into G and through x_t into both frozen score networks "
            "(phi and psi receive no update)."),
        "seed": str(seed_of("sid_generator")),
    }
    goldens.write("sid_generator.safetensors", out, meta)
    return r


def make_fake_score():
    r = run_fake_score(torch.float64)
    out = {"z": r["z"], "eps": r["eps"], "u": dg.f64(U_FAKE), "t": dg.i64(r["ts"]),
           "t_init": np.array(T_INIT, dtype="<i8"),
           "sigma": dg.f64([sigma_of_u(u) for u in U_FAKE]), "x_g": r["x_g"], "loss": r["loss"]}
    for n, g in r["grads"].items():
        out["grad." + n] = g.to(torch.float32)
    fake = fake_state()
    first_two = list(fake)[:2]
    for n in first_two:
        out["psi_check." + n] = fake[n]
    meta = {
        "description": COMMON + (
            "FAKE-SCORE UPDATE: x_g as above but DETACHED (no gradient into G); x_t = a_t x_g + "
            "s_t eps; target v* = a_t eps - s_t x_g; loss (0-d) = mean over batch and pixels of "
            "(psi(x_t, t) - v*)^2. grad.<name> = d loss / d psi's parameters. psi_check.<name> (F32) "
            "= the perturbed psi weights of the first two tensors in state_dict (model) order: "
            + ", ".join(first_two) + "."),
        "seed": str(seed_of("sid_fake_score")),
    }
    goldens.write("sid_fake_score.safetensors", out, meta)
    return r


# ==============================================================================================
# Checking
# ==============================================================================================

def close(got, want, rtol, atol=0.0):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want)
    bad = err > atol + rtol * np.abs(want)
    if np.any(bad):
        k = np.unravel_index(int(np.argmax(np.where(bad, err, -1.0))), err.shape) if err.ndim else ()
        raise AssertionError(f"mismatch at {k}: got {got[k]!r} want {want[k]!r} (err {err[k]:.3g}, "
                             f"{int(bad.sum())} of {err.size} elements out of tolerance)")


def np_step_of(sigma):
    """step_of by vectorised numpy, ln sigma_VP = (log1p(-ab) - log(ab)) / 2."""
    ab = np.array(AB, dtype=np.float64)
    dist = np.abs(0.5 * (np.log1p(-ab) - np.log(ab)) - np.log(sigma))
    order = np.argsort(dist, kind="stable")
    assert dist[order[1]] - dist[order[0]] > TIE_MARGIN
    return int(order[0])


def check_common(d, stem, us):
    z, eps = inputs(stem)
    assert np.array_equal(d["z"], z) and np.array_equal(d["eps"], eps)
    assert np.array_equal(d["u"], np.array(us))
    assert d["t_init"].shape == () and int(d["t_init"]) == T_INIT == np_step_of(SIGMA_INIT)
    sig = [(SIGMA_MAX ** (1 / RHO) + (1 - 0.8 * u) * (SIGMA_MIN ** (1 / RHO) - SIGMA_MAX ** (1 / RHO)))
           ** RHO for u in us]
    close(d["sigma"], sig, 1e-14)
    assert [int(t) for t in d["t"]] == [np_step_of(s) for s in sig]
    # x_g from the file's z with a fresh float64 generator
    G = build(teacher_state(), torch.float64, False)
    with torch.no_grad():
        x_g = generate(G, t64(d["z"])).numpy()
    assert np.array_equal(x_g, d["x_g"])


def max_rel_grad_dev(g32, g64):
    worst = 0.0
    for n, ref in g64.items():
        scale = float(ref.abs().max()) + 1e-300
        worst = max(worst, float((g32[n].double() - ref).abs().max()) / scale)
    return worst


def check_generator(d, r64):
    check_common(d, "sid_generator", U_GEN)
    ts = [int(t) for t in d["t"]]
    x_g, fp, ff = d["x_g"], d["f_teacher"], d["f_fake"]
    # the loss in its other form, numpy, from the stored tensors
    B = x_g.shape[0]
    dd = (fp - ff).reshape(B, -1)
    w = np.maximum(np.mean(np.abs(x_g - fp).reshape(B, -1), axis=1), W_FLOOR)
    close(d["w"], w, 1e-14)
    per = ((1 - ALPHA) * np.sum(dd ** 2, axis=1)
           + np.sum(dd * (ff - x_g).reshape(B, -1), axis=1)) / (dd.shape[1] * w)
    close(d["loss"], per.mean(), 1e-12)
    # teacher / fake x0 from fresh networks and numpy coefficients
    a = np.array([math.sqrt(AB[t]) for t in ts]).reshape(-1, 1, 1, 1)
    s = np.array([math.sqrt(1 - AB[t]) for t in ts]).reshape(-1, 1, 1, 1)
    x_t = a * x_g + s * d["eps"]
    phi = build(teacher_state(), torch.float64, False)
    psi = build(fake_state(), torch.float64, False)
    with torch.no_grad():
        v_phi = phi(t64(x_t), time_input(ts)).numpy()
        v_psi = psi(t64(x_t), time_input(ts)).numpy()
    close(fp, a * x_t - s * v_phi, 1e-13, 1e-14)
    close(ff, a * x_t - s * v_psi, 1e-13, 1e-14)
    # stored F32 gradients are the float64 ones rounded
    for n, g in r64["grads"].items():
        assert np.array_equal(d["grad." + n], g.numpy().astype(np.float32)), n
    kb = ug.key_bias_rows(r64["G"])
    for n, g in r64["grads"].items():
        gmax = float(g.abs().max())
        assert gmax > 1e-6, (n, gmax)
        if n in kb:
            assert float(g[kb[n]].abs().max()) < 1e-10 * max(1.0, gmax), n

    # autograd with w a constant equals the stop-gradient autograd
    G, phi, psi = r64["G"], r64["phi"], r64["psi"]
    z, eps = t64(d["z"]), t64(d["eps"])
    w0 = r64["w"].detach().clone()
    names = [n for n, _ in G.named_parameters()]
    params = dict(G.named_parameters())
    loss_c = generator_loss(G, phi, psi, z, eps, ts, w_fixed=w0)[0]
    gc = torch.autograd.grad(loss_c, [params[n] for n in names])
    assert float(loss_c) == float(d["loss"])
    for n, g in zip(names, gc):
        close(g.numpy(), r64["grads"][n].numpy(), 1e-13, 1e-15 * float(g.abs().max()))

    # central finite differences (h = 1e-6) on 3 random entries, w held at its unperturbed value;
    # entries drawn among those with |grad| >= 5% of their tensor's max |grad|
    rng = np.random.default_rng(seed_of("sid_generator.fd"))
    picks = []
    while len(picks) < 3:
        n = names[int(rng.integers(len(names)))]
        g = r64["grads"][n].reshape(-1)
        k = int(rng.integers(g.numel()))
        if abs(float(g[k])) >= 0.05 * float(g.abs().max()) and n not in [p[0] for p in picks]:
            picks.append((n, k))
    h = 1e-6
    report = []
    for n, k in picks:
        p = params[n]
        flat = p.data.view(-1)
        orig = float(flat[k])

        def L(x, fixed):
            flat[k] = x
            with torch.no_grad():
                return float(generator_loss(G, phi, psi, z, eps, ts,
                                            w_fixed=w0 if fixed else None)[0])
        fd = (L(orig + h, True) - L(orig - h, True)) / (2 * h)
        fd_free = (L(orig + h, False) - L(orig - h, False)) / (2 * h)   # w moving with G
        flat[k] = orig
        ag = float(r64["grads"][n].reshape(-1)[k])
        err = abs(fd - ag)
        assert err <= 1e-6 * abs(ag) + 1e-9, (n, k, fd, ag)
        assert abs(fd_free - ag) > 100 * (1e-6 * abs(ag) + 1e-9)   # the stop-gradient matters
        report.append(f"{n}[{k}]: autograd {ag:.9g}, FD {fd:.9g} (err {err:.1e}; w moving: "
                      f"{fd_free:.6g})")
    assert float(generator_loss(G, phi, psi, z, eps, ts)[0]) == float(d["loss"])
    print("  generator: loss in the (1-alpha)|d|^2 + d.(f_psi - x_g) form, f_teacher/f_fake from "
          "fresh networks, w-constant autograd == stop-gradient autograd; FD (w fixed):")
    for line in report:
        print("    " + line)


def check_fake_score(d, r64):
    check_common(d, "sid_fake_score", U_FAKE)
    ts = [int(t) for t in d["t"]]
    # psi_check against a per-element Python recomputation of the perturbation
    teacher = teacher_state()
    first_two = list(teacher)[:2]
    assert sorted(k for k in d if k.startswith("psi_check.")) == sorted(
        "psi_check." + n for n in first_two)
    for n in first_two:
        W = teacher[n].reshape(-1)
        want = np.array([np.float32(float(W[k]) + 0.02 * math.sin(0.5 * k + 1.0))
                         for k in range(W.size)], dtype=np.float32).reshape(teacher[n].shape)
        assert np.array_equal(d["psi_check." + n], want), n
        assert not np.array_equal(want, teacher[n])
    # loss from numpy maths on a fresh psi's output
    a = np.array([math.sqrt(AB[t]) for t in ts]).reshape(-1, 1, 1, 1)
    s = np.array([math.sqrt(1 - AB[t]) for t in ts]).reshape(-1, 1, 1, 1)
    x_g, eps = d["x_g"], d["eps"]
    x_t = a * x_g + s * eps
    psi = build(fake_state(), torch.float64, False)
    with torch.no_grad():
        v = psi(t64(x_t), time_input(ts)).numpy()
    close(d["loss"], np.mean((v - (a * eps - s * x_g)) ** 2), 1e-13)
    for n, g in r64["grads"].items():
        assert np.array_equal(d["grad." + n], g.numpy().astype(np.float32)), n
    # central finite differences on 3 random psi entries
    rng = np.random.default_rng(seed_of("sid_fake_score.fd"))
    psi, G = r64["psi"], r64["G"]
    params = dict(psi.named_parameters())
    names = list(params)
    z, e = t64(d["z"]), t64(d["eps"])
    worst = 0.0
    done = 0
    while done < 3:
        n = names[int(rng.integers(len(names)))]
        g = r64["grads"][n].reshape(-1)
        k = int(rng.integers(g.numel()))
        if abs(float(g[k])) < 0.05 * float(g.abs().max()):
            continue
        flat = params[n].data.view(-1)
        orig = float(flat[k])
        vals = []
        for x in (orig + 1e-6, orig - 1e-6):
            flat[k] = x
            with torch.no_grad():
                vals.append(float(fake_score_loss(G, psi, z, e, ts)[0]))
        flat[k] = orig
        fd = (vals[0] - vals[1]) / 2e-6
        err = abs(fd - float(g[k]))
        assert err <= 1e-6 * abs(float(g[k])) + 1e-9, (n, k, fd, float(g[k]))
        worst = max(worst, err)
        done += 1
    print(f"  fake score: psi_check vs per-element recomputation, loss from numpy, FD on 3 psi "
          f"entries (max err {worst:.1e})")


def float32_floor(r64_gen, r64_fake):
    r32 = run_generator(torch.float32)
    f32 = run_fake_score(torch.float32)
    assert r32["ts"] == r64_gen["ts"] and f32["ts"] == r64_fake["ts"]
    out = {}
    for label, a, b in (("generator", r32, r64_gen), ("fake_score", f32, r64_fake)):
        dl = abs(float(a["loss"]) - float(b["loss"]))
        out[label] = (dl, dl / abs(float(b["loss"])), max_rel_grad_dev(a["grads"], b["grads"]))
        print(f"  float32 floor, {label}: |loss32 - loss64| = {dl:.2e} (relative {out[label][1]:.2e}; "
              f"loss {float(b['loss']):.10g}), grads max |g32 - g64| / max |g64| per tensor = "
              f"{out[label][2]:.2e}")
    return out


def check(r_gen, r_fake):
    loaded, _ = goldens.check_round_trips(MAX_FILE)
    assert sorted(loaded) == sorted(FILES), sorted(loaded)
    check_generator(loaded["sid_generator.safetensors"], r_gen)
    check_fake_score(loaded["sid_fake_score.safetensors"], r_fake)
    float32_floor(r_gen, r_fake)
    print(f"checked {len(FILES)} files: all round-trip and match the independent cross-checks")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="after writing, re-read every file and verify it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    r_gen = make_generator()
    r_fake = make_fake_score()
    margins = {s: step_margin(s)[1] for s in [SIGMA_INIT] + [sigma_of_u(u) for u in U_GEN + U_FAKE]}
    print(f"t_init {T_INIT}; generator t {r_gen['ts']}, loss {float(r_gen['loss']):.12g}; fake score "
          f"t {r_fake['ts']}, loss {float(r_fake['loss']):.12g}; smallest tie margin "
          f"{min(margins.values()):.3g}")
    print(f"wrote {len(FILES)} files, {goldens.total_bytes()} bytes, to {OUT}")
    if args.check:
        check(r_gen, r_fake)
    return 0


if __name__ == "__main__":
    sys.exit(main())
