#!/usr/bin/python3
"""Writes the DKDM and Adv-KD goldens (safetensors) that the C++ distillation tests read.

Run with Debian's Python (only /usr/bin/python3 has torch and numpy):

    /usr/bin/python3 tests/golden/make_distill2_goldens.py           # (re)write the files
    /usr/bin/python3 tests/golden/make_distill2_goldens.py --check   # ... then re-read and verify

Written from the specification only (shared METHODS.md section 3.1 DKDM objective, sections 2.5-2.6
Adv-KD discriminator and losses, and the golden brief), not from the C++ code. Everything is float64
(numpy / torch.float64); gradients are torch autograd. Two files go to tests/golden/data/:

  distill_dkdm.safetensors   DKDM: teacher posterior (clipped x0, learned-range variance) and its
                             ancestral step, student eps-MSE + stop-gradient-mean KL in bits, the
                             loss and d loss / d student_out; also a fixed-variance teacher.
  distill_advkd.safetensors  Adv-KD: a small conditional discriminator (training-mode BatchNorm),
                             logistic D/G losses with the WGAN-GP penalty, and the gradients
                             (double backward through the GP).

Inputs come from numpy default_rng(seed_of(<file stem>)) in a documented order, so the output is
bit-for-bit reproducible (single-threaded torch). The files (F64, and I64 where noted) use the
hand-written safetensors layout of safetensors_io.py, which also holds the writer and the
independent reader used by --check; the cosine schedule is imported from make_diffusion_goldens.py
(importing it writes nothing).
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
sys.path.insert(0, HERE)
import make_diffusion_goldens as dg  # noqa: E402  (f64/i64, seed_of, cosine schedule)
from safetensors_io import GoldenFiles, t64  # noqa: E402

MAX_FILE = 100 * 1024
FILES = ["distill_dkdm.safetensors", "distill_advkd.safetensors"]
goldens = GoldenFiles(OUT, dtypes=(np.float64, np.int64))
LN2 = math.log(2.0)


# ==============================================================================================
# File 1: DKDM objective (METHODS 3.1)
# ==============================================================================================

T_DKDM = 1000
BETA = dg.COSINE1000
AB = dg.AB_COSINE1000
assert len(AB) == T_DKDM
DKDM_T = [0, 1, 500, 999]
DKDM_SHAPE = (4, 1, 3, 3)


def sched(t):
    """(beta_t, ab_t, ab_prev, posterior variance, clipped log posterior variance) at index t."""
    def post_var(s):
        ab_prev = AB[s - 1] if s > 0 else 1.0
        return BETA[s] * (1.0 - ab_prev) / (1.0 - AB[s])
    ab_prev = AB[t - 1] if t > 0 else 1.0
    return BETA[t], AB[t], ab_prev, post_var(t), math.log(post_var(1) if t == 0 else post_var(t))


def per_sample(ts, k):
    """[B,1,1,1] tensor of the k-th sched() entry per sample."""
    return t64([sched(t)[k] for t in ts]).reshape(-1, 1, 1, 1)


def posterior_mean(x0, x_t, ts):
    beta, ab, ab_prev = per_sample(ts, 0), per_sample(ts, 1), per_sample(ts, 2)
    c1 = beta * torch.sqrt(ab_prev) / (1.0 - ab)
    c2 = (1.0 - ab_prev) * torch.sqrt(1.0 - beta) / (1.0 - ab)
    return c1 * x0 + c2 * x_t


def learned_logvar(v, ts):
    frac = (v + 1.0) / 2.0
    max_log = torch.log(per_sample(ts, 0))
    min_log = per_sample(ts, 4)
    return frac * max_log + (1.0 - frac) * min_log


def gauss_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def dkdm_loss(x_t, ts, eps_T, mu_T, logvar_T, student_out):
    """Returns (loss, mse batch mean, vb batch mean, mu_S, logvar_S)."""
    C = x_t.shape[1]
    eps_S, v_S = student_out[:, :C], student_out[:, C:]
    ab = per_sample(ts, 1)
    x0_S = (x_t - torch.sqrt(1.0 - ab) * eps_S.detach()) / torch.sqrt(ab)   # stop-gradient, no clip
    mu_S = posterior_mean(x0_S, x_t, ts)
    logvar_S = learned_logvar(v_S, ts)
    dims = tuple(range(1, x_t.dim()))
    mse = ((eps_T - eps_S) ** 2).mean(dim=dims)
    vb = gauss_kl(mu_T, logvar_T, mu_S, logvar_S).mean(dim=dims) / LN2
    return (mse + vb).mean(), mse.mean(), vb.mean(), mu_S, logvar_S, mse, vb


def dkdm_inputs():
    rng = np.random.default_rng(dg.seed_of("distill_dkdm"))
    x_t = rng.standard_normal(DKDM_SHAPE)
    teacher_eps = 0.8 * rng.standard_normal(DKDM_SHAPE)
    teacher_var = np.tanh(rng.standard_normal(DKDM_SHAPE))
    s_eps = 0.8 * rng.standard_normal(DKDM_SHAPE)
    s_var = np.tanh(rng.standard_normal(DKDM_SHAPE))
    z = rng.standard_normal(DKDM_SHAPE)
    return x_t, teacher_eps, teacher_var, np.concatenate([s_eps, s_var], axis=1), z


def make_dkdm():
    x_t_np, eps_T_np, var_T_np, s_out_np, z_np = dkdm_inputs()
    ts = DKDM_T
    x_t, eps_T, z = t64(x_t_np), t64(eps_T_np), t64(z_np)
    ab = per_sample(ts, 1)
    x0_raw = (x_t - torch.sqrt(1.0 - ab) * eps_T) / torch.sqrt(ab)
    n_clip = int((x0_raw.abs() > 1).sum())
    assert 0 < n_clip < x0_raw.numel()
    x0_T = x0_raw.clamp(-1.0, 1.0)
    mu_T = posterior_mean(x0_T, x_t, ts)
    logvar_T = learned_logvar(t64(var_T_np), ts)
    nonzero = t64([0.0 if t == 0 else 1.0 for t in ts]).reshape(-1, 1, 1, 1)
    x_prev = mu_T + nonzero * torch.exp(0.5 * logvar_T) * z

    so = t64(s_out_np, True)
    loss, l_mse, l_vb, mu_S, logvar_S, mse_b, vb_b = dkdm_loss(x_t, ts, eps_T, mu_T, logvar_T, so)
    (g,) = torch.autograd.grad(loss, so)
    logvar_fixed = per_sample(ts, 4).expand_as(x_t).clone()
    so2 = t64(s_out_np, True)
    f_loss, f_mse, f_vb, _, _, _, f_vb_b = dkdm_loss(x_t, ts, eps_T, mu_T, logvar_fixed, so2)
    (f_g,) = torch.autograd.grad(f_loss, so2)
    assert torch.equal(f_mse, l_mse)

    out = {"t": dg.i64(ts), "x_t": x_t_np, "teacher_eps": eps_T_np, "teacher_var": var_T_np,
           "student_out": s_out_np, "z": z_np,
           "beta_t": [sched(t)[0] for t in ts], "alpha_bar_t": [sched(t)[1] for t in ts],
           "alpha_bar_prev_t": [sched(t)[2] for t in ts],
           "posterior_log_variance_clipped_t": [sched(t)[4] for t in ts],
           "teacher_x0": x0_T, "teacher_mean": mu_T, "teacher_logvar": logvar_T,
           "teacher_x_prev": x_prev, "student_mean": mu_S, "student_logvar": logvar_S,
           "loss": loss, "loss_mse": l_mse, "loss_vb": l_vb, "grad_student_out": g,
           "mse_per_sample": mse_b, "vb_per_sample": vb_b, "fixed.vb_per_sample": f_vb_b,
           "fixed.loss": f_loss, "fixed.loss_vb": f_vb, "fixed.grad_student_out": f_g,
           "fixed.teacher_logvar": logvar_fixed}
    out = {k: (dg.f64(v) if isinstance(v, list) else v) for k, v in out.items()}
    meta = {
        "description":
            "DKDM objective (METHODS 3.1), float64 (I64 where noted). Schedule: iDDPM cosine, T = 1000, "
            "as in diffusion_schedules.safetensors (cosine1000.betas / .alphas_cumprod): f(u) = "
            "cos((u+0.008)/1.008*pi/2)^2, beta[t] = min(1 - f((t+1)/T)/f(t/T), 0.999), alpha_bar[t] = "
            "sequential cumprod of (1-beta), schedule index t = 0..999 (the model's time input; t = 0 "
            "is the last denoising step, producing the clean sample). ab = alpha_bar[t], ab_prev = "
            "alpha_bar[t-1] (1 at t = 0). Posterior q(x_{t-1}|x_t,x0): mean = beta_t sqrt(ab_prev)/(1-ab) "
            "x0 + (1-ab_prev) sqrt(1-beta_t)/(1-ab) x_t; variance bt~_t = beta_t (1-ab_prev)/(1-ab) (0 at "
            "t = 0); clipped log variance L_t = log(bt~_1) at t = 0, else log(bt~_t) (guided-diffusion "
            "posterior_log_variance_clipped). Learned range of variance values v: frac = (v+1)/2, log var "
            "= frac*log(beta_t) + (1-frac)*L_t. Shapes [B,C,H,W] = [4,1,3,3]. t (I64 [4]) = [0,1,500,999], "
            "per sample. Inputs from numpy default_rng(seed_of('distill_dkdm')), drawn in this order, "
            "each [4,1,3,3]: x_t ~ N(0,1); teacher_eps = 0.8 N(0,1); teacher_var = tanh(N(0,1)) (the "
            "teacher's variance values); student eps = 0.8 N(0,1); student variance values = tanh(N(0,1)); "
            "z ~ N(0,1). student_out [4,2,3,3] = concat(student eps, student variance values) along "
            "channels (channel 0 = eps_S, channel 1 = v_S). Diagnostics [4] per sample: beta_t, "
            "alpha_bar_t, alpha_bar_prev_t, posterior_log_variance_clipped_t (= L_t). TEACHER (learned "
            "variance, clip_denoised): teacher_x0 = clip((x_t - sqrt(1-ab) teacher_eps)/sqrt(ab), -1, 1) "
            "(some elements clipped); teacher_mean = posterior mean(teacher_x0, x_t); teacher_logvar = "
            "learned range of teacher_var; teacher_x_prev = teacher_mean + exp(0.5 teacher_logvar) z, "
            "except the sample with t = 0 gets no noise (= teacher_mean): the teacher's ancestral step. "
            "STUDENT: x0_S = (x_t - sqrt(1-ab) eps_S)/sqrt(ab) with STOP-GRADIENT on eps_S and NO "
            "clipping; student_mean = posterior mean(x0_S, x_t) (no gradient); student_logvar = learned "
            "range of v_S (with gradient). LOSS per sample: mse = mean over C,H,W of (teacher_eps - "
            "eps_S)^2; vb = mean over C,H,W of KL/ln(2), KL = 0.5*(-1 + logvar_S - logvar_T + "
            "exp(logvar_T - logvar_S) + (mu_T - mu_S)^2 exp(-logvar_S)) (KL(teacher || student), used "
            "at every t including t = 0, no decoder NLL). loss (0-d) = mean over batch of (mse + vb); "
            "loss_mse, loss_vb (0-d) = batch means of each part (loss = loss_mse + loss_vb); "
            "mse_per_sample, vb_per_sample [4] = the per-sample mse and vb (vb in bits; the t = 0 and "
            "t = 999 samples dominate: the teacher's clipped x0 vs the student's unclipped one). "
            "grad_student_out [4,2,3,3] = d loss / d student_out (autograd): channel 0 gets only the MSE "
            "gradient -2(teacher_eps - eps_S)/(B*C*H*W), channel 1 only the VB gradient. FIXED-VARIANCE "
            "teacher (prefix 'fixed.'): same teacher mean, fixed.teacher_logvar [4,1,3,3] = L_t broadcast "
            "(teacher without learned variance); fixed.loss, fixed.loss_vb (0-d), fixed.vb_per_sample [4], "
            "fixed.grad_student_out "
            "[4,2,3,3] as above with this logvar_T (the MSE part equals loss_mse).",
        "seed": str(dg.seed_of("distill_dkdm")),
    }
    goldens.write("distill_dkdm.safetensors", out, meta)


def check_dkdm(d):
    ts = [int(t) for t in d["t"]]
    assert ts == DKDM_T
    x_t, eps_T, v_T, so, z = d["x_t"], d["teacher_eps"], d["teacher_var"], d["student_out"], d["z"]
    # the inputs re-drawn
    for a, b in zip(dkdm_inputs(), (x_t, eps_T, v_T, so, z)):
        assert np.array_equal(a, b)
    B, C = x_t.shape[0], x_t.shape[1]
    n = x_t[0].size
    # schedule values against the closed form f((t+1)/T)/f(0) and betas recomputed
    f0 = dg.cosine_f(0.0)
    for b, t in enumerate(ts):
        if t < T_DKDM - 1:   # the last beta is clamped to 0.999, so the closed form stops there
            close(d["alpha_bar_t"][b], dg.cosine_f((t + 1) / T_DKDM) / f0, 1e-13)
        else:
            close(d["beta_t"][b], 0.999, 0, 0)
        close(d["beta_t"][b], 1 - d["alpha_bar_t"][b] / (d["alpha_bar_prev_t"][b]), 1e-9)
    assert d["alpha_bar_prev_t"][0] == 1.0
    # clipped log variance at t = 0 equals the one at t = 1
    assert d["posterior_log_variance_clipped_t"][0] == d["posterior_log_variance_clipped_t"][1]
    lossv, lossm, grad = 0.0, 0.0, np.zeros_like(so)
    lossv_f, grad_f = 0.0, np.zeros_like(so)
    eps_form_dev = 0.0
    for b, t in enumerate(ts):
        # per-sample numpy maths: guided-diffusion's x0 form (and the eps form) of the means, the KL
        # written as log(sigma_S/sigma_T) + (sigma_T^2 + dmu^2)/(2 sigma_S^2) - 1/2, closed-form grads
        beta = BETA[t]
        ab = AB[t]
        ab_prev = AB[t - 1] if t > 0 else 1.0
        alpha = 1.0 - beta
        bt = lambda s: BETA[s] * (1.0 - (AB[s - 1] if s > 0 else 1.0)) / (1.0 - AB[s])  # noqa: E731
        Lt = math.log(bt(max(t, 1)))
        # teacher: x0 = sqrt(1/ab) x_t - sqrt(1/ab - 1) eps, clipped; posterior mean
        x0 = np.clip(x_t[b] / math.sqrt(ab) - math.sqrt(1.0 / ab - 1.0) * eps_T[b], -1, 1)
        close(d["teacher_x0"][b], x0, 1e-12, 1e-12)
        w = beta * math.sqrt(ab_prev) / (1 - ab)
        mu_T = w * x0 + (1 - ab_prev) * math.sqrt(alpha) / (1 - ab) * x_t[b]
        close(d["teacher_mean"][b], mu_T, 1e-12, 1e-13)
        lv_T = Lt + (v_T[b] + 1) / 2 * (math.log(beta) - Lt)
        close(d["teacher_logvar"][b], lv_T, 1e-13, 1e-13)
        xp = mu_T + (0.0 if t == 0 else 1.0) * np.exp(lv_T / 2) * z[b]
        close(d["teacher_x_prev"][b], xp, 1e-12, 1e-13)
        if t == 0:
            assert np.array_equal(d["teacher_x_prev"][b], d["teacher_mean"][b])
        # student mean: guided-diffusion's x0 form, and the eps form of the posterior mean
        # (x_t - beta/sqrt(1-ab) eps)/sqrt(alpha), which is algebraically equal but uses the schedule
        # identity beta = 1 - ab/ab_prev that holds only to rounding (1 - ab ~ 1e-4 near t = 0)
        e_S, v_S = so[b, :C], so[b, C:]
        x0_S = x_t[b] / math.sqrt(ab) - math.sqrt(1.0 / ab - 1.0) * e_S
        mu_S = w * x0_S + (1 - ab_prev) * math.sqrt(alpha) / (1 - ab) * x_t[b]
        close(d["student_mean"][b], mu_S, 1e-12, 1e-13)
        mu_S_eps = (x_t[b] - beta / math.sqrt(1 - ab) * e_S) / math.sqrt(alpha)
        close(d["student_mean"][b], mu_S_eps, 1e-9, 1e-10)
        eps_form_dev = max(eps_form_dev, float(np.max(np.abs(mu_S_eps - d["student_mean"][b]))))
        lv_S = Lt + (v_S + 1) / 2 * (math.log(beta) - Lt)
        close(d["student_logvar"][b], lv_S, 1e-13, 1e-13)
        for fixed in (False, True):
            lvT = np.full_like(lv_T, Lt) if fixed else lv_T
            sT, sS = np.exp(lvT / 2), np.exp(lv_S / 2)
            kl = np.log(sS / sT) + (sT ** 2 + (mu_T - mu_S) ** 2) / (2 * sS ** 2) - 0.5
            vb = math.fsum(kl.ravel()) / n / LN2
            # d KL / d logvar_S = 0.5 (1 - (sT^2 + dmu^2)/sS^2); d logvar_S / d v = (log beta - Lt)/2
            gv = 0.5 * (1 - (sT ** 2 + (mu_T - mu_S) ** 2) / sS ** 2) * 0.5 * (math.log(beta) - Lt)
            close(d["fixed.vb_per_sample" if fixed else "vb_per_sample"][b], vb, 1e-10)
            if fixed:
                lossv_f += vb / B
                grad_f[b, C:] = gv / (n * LN2 * B)
            else:
                lossv += vb / B
                grad[b, C:] = gv / (n * LN2 * B)
        mse = math.fsum(((eps_T[b] - e_S) ** 2).ravel()) / n
        close(d["mse_per_sample"][b], mse, 1e-13)
        lossm += mse / B
        grad[b, :C] = -2 * (eps_T[b] - e_S) / (n * B)
        grad_f[b, :C] = grad[b, :C]
    close(d["loss_mse"], lossm, 1e-13)
    close(d["loss_vb"], lossv, 1e-10)
    close(d["loss"], lossm + lossv, 1e-10)
    close(d["fixed.loss_vb"], lossv_f, 1e-10)
    close(d["fixed.loss"], lossm + lossv_f, 1e-10)
    close(d["grad_student_out"], grad, 1e-10, 1e-14)
    close(d["fixed.grad_student_out"], grad_f, 1e-10, 1e-14)
    close(d["fixed.teacher_logvar"], np.broadcast_to(
        d["posterior_log_variance_clipped_t"].reshape(-1, 1, 1, 1), x_t.shape), 0, 0)
    # finite differences with the student's mean frozen (= the stop-gradient semantics), one sample
    # at a time (sample b's outputs only enter its own term; the t = 0 and t = 999 terms are ~1e3-1e4,
    # so a whole-loss difference quotient would lose ~1e-7 to rounding)
    mu_T_t, lv_T_t, lvf_t = t64(d["teacher_mean"]), t64(d["teacher_logvar"]), t64(d["fixed.teacher_logvar"])
    mu_S_frozen = t64(d["student_mean"])
    for lvT, gname in ((lv_T_t, "grad_student_out"), (lvf_t, "fixed.grad_student_out")):
        for b in range(B):
            def frozen_loss(o, lvT=lvT, b=b):
                o = t64(o)
                mse = ((t64(eps_T[b]) - o[:C]) ** 2).mean()
                vb = gauss_kl(mu_T_t[b], lvT[b], mu_S_frozen[b],
                              learned_logvar(o[None, C:], [ts[b]])[0]).mean() / LN2
                return float(mse + vb) / B
            L_b = abs(frozen_loss(so[b]))
            close(d[gname][b], fd_grad(frozen_loss, so[b]), 1e-6, 1e-9 * max(1.0, L_b))
        # gradcheck in the variance channels only (a numerical derivative in the eps channels would
        # see the student's mean move: the stop-gradient makes autograd differ there, on purpose)
        assert torch.autograd.gradcheck(
            lambda v, lvT=lvT: dkdm_loss(t64(x_t), ts, t64(eps_T), mu_T_t, lvT,
                                         torch.cat([t64(so[:, :C]), v], dim=1))[0], (t64(so[:, C:], True),))
    n_clip = int(np.sum(np.abs(x_t / np.sqrt(d["alpha_bar_t"]).reshape(-1, 1, 1, 1)
                               - np.sqrt(1 / d["alpha_bar_t"] - 1).reshape(-1, 1, 1, 1) * eps_T) > 1))
    print(f"  dkdm: teacher/student posteriors (eps-form mean), KL via log(sigma_S/sigma_T) form, "
          f"closed-form gradients, FD with frozen student mean, gradcheck ok; loss {float(d['loss']):.6g} "
          f"(mse {float(d['loss_mse']):.6g}, vb {float(d['loss_vb']):.6g}; fixed vb "
          f"{float(d['fixed.loss_vb']):.6g}); {n_clip} of {x_t.size} teacher x0 elements clipped; "
          f"eps-form student mean deviates by {eps_form_dev:.2g} (schedule rounding); vb per sample "
          + ", ".join(f"{v:.4g}" for v in d["vb_per_sample"]))


# ==============================================================================================
# File 2: Adv-KD discriminator and losses (METHODS 2.5-2.6), scaled down
# ==============================================================================================

ADV_B, ADV_RES, NDF, MAX_CH, HIDDEN = 3, 16, 2, 4, 4
LRELU, BN_EPS, GP_WEIGHT = 0.2, 1e-5, 10.0
# (name, shape, kind) in draw order; kind: w = 0.3 N, g = 1 + 0.1 N, b = 0.1 N
D_PARAMS = [
    ("D.image.0.weight", (2, 1, 4, 4), "w"),
    ("D.image.1.weight", (4, 2, 4, 4), "w"),
    ("D.image.1.bn.weight", (4,), "g"),
    ("D.image.1.bn.bias", (4,), "b"),
    ("D.noise.0.weight", (2, 1, 3, 3), "w"),
    ("D.noise.0.bn.weight", (2,), "g"),
    ("D.noise.0.bn.bias", (2,), "b"),
    ("D.noise.1.weight", (4, 2, 3, 3), "w"),
    ("D.noise.1.bn.weight", (4,), "g"),
    ("D.noise.1.bn.bias", (4,), "b"),
    ("D.head.0.weight", (4, 80), "w"),
    ("D.head.0.bias", (4,), "b"),
    ("D.head.bn.weight", (4,), "g"),
    ("D.head.bn.bias", (4,), "b"),
    ("D.head.1.weight", (1, 4), "w"),
    ("D.head.1.bias", (1,), "b"),
]
PNAMES = [p[0] for p in D_PARAMS]


def advkd_inputs():
    rng = np.random.default_rng(dg.seed_of("distill_advkd"))
    P = {}
    for name, shape, kind in D_PARAMS:
        r = rng.standard_normal(shape)
        P[name] = 0.3 * r if kind == "w" else (1.0 + 0.1 * r if kind == "g" else 0.1 * r)
    shp = (ADV_B, 1, ADV_RES, ADV_RES)
    real = rng.uniform(-1.0, 1.0, shp)
    fake = np.tanh(rng.standard_normal(shp))
    noise = rng.standard_normal((ADV_B, 1, 4, 4))
    alpha = rng.uniform(0.0, 1.0, ADV_B)
    return P, real, fake, noise, alpha


def bn(x, P, prefix):
    return Fn.batch_norm(x, None, None, P[prefix + ".weight"], P[prefix + ".bias"], training=True,
                         momentum=0.0, eps=BN_EPS)


def disc(P, img, noise, pre=None):
    """The discriminator D(img, noise) -> logits [B]; pre collects every LeakyReLU input."""
    def lrelu(x):
        if pre is not None:
            pre.append(x.detach())
        return Fn.leaky_relu(x, LRELU)
    h = lrelu(Fn.conv2d(img, P["D.image.0.weight"], stride=2, padding=1))
    size, k = img.shape[-1] // 2, 1
    while size > 4:
        h = lrelu(bn(Fn.conv2d(h, P[f"D.image.{k}.weight"], stride=2, padding=1), P, f"D.image.{k}.bn"))
        size, k = size // 2, k + 1
    n = lrelu(bn(Fn.conv2d(noise, P["D.noise.0.weight"], padding=1), P, "D.noise.0.bn"))
    n = lrelu(bn(Fn.conv2d(n, P["D.noise.1.weight"], padding=0), P, "D.noise.1.bn"))
    f = torch.cat([h.flatten(1), n.flatten(1)], dim=1)
    f = lrelu(bn(Fn.linear(f, P["D.head.0.weight"], P["D.head.0.bias"]), P, "D.head.bn"))
    return Fn.linear(f, P["D.head.1.weight"], P["D.head.1.bias"])[:, 0]


def gp_term(P, x_hat, noise, create_graph=True):
    """(gp, inner gradient d sum(D(x_hat))/d x_hat, D(x_hat)); x_hat must require grad."""
    d_hat = disc(P, x_hat, noise)
    (g,) = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=create_graph)
    gp = ((g.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
    return gp, g, d_hat


def loss_d_of(P, real, fake, noise, alpha):
    d_real = disc(P, real, noise)
    d_fake = disc(P, fake.detach(), noise)
    a = alpha.reshape(-1, 1, 1, 1)
    x_hat = (a * real + (1.0 - a) * fake.detach()).detach().requires_grad_(True)
    gp, g, d_hat = gp_term(P, x_hat, noise)
    loss = Fn.softplus(-d_real).mean() + Fn.softplus(d_fake).mean() + GP_WEIGHT * gp
    return loss, d_real, d_fake, gp, g, x_hat, d_hat


def make_advkd():
    P_np, real_np, fake_np, noise_np, alpha_np = advkd_inputs()
    P = {k: t64(v, True) for k, v in P_np.items()}
    real, noise, alpha = t64(real_np), t64(noise_np), t64(alpha_np)
    fake = t64(fake_np, True)
    # no LeakyReLU input near its kink (finite differences in --check)
    pre = []
    for img in (real_np, fake_np, alpha_np.reshape(-1, 1, 1, 1) * real_np
                + (1 - alpha_np.reshape(-1, 1, 1, 1)) * fake_np):
        disc(P, t64(img), noise, pre)
    min_pre = min(float(p.abs().min()) for p in pre)
    assert min_pre > 1e-5, min_pre

    loss_d, d_real, d_fake, gp, g_xhat, x_hat, d_hat = loss_d_of(P, real, fake, noise, alpha)
    params = [P[n] for n in PNAMES]
    g_d = torch.autograd.grad(loss_d, params, retain_graph=True)
    g_gp = torch.autograd.grad(gp, [P["D.image.0.weight"], P["D.head.1.weight"]])
    loss_g = Fn.softplus(-disc(P, fake, noise)).mean()
    (g_fake,) = torch.autograd.grad(loss_g, fake)

    out = {"real": real_np, "fake": fake_np, "noise": noise_np, "alpha": alpha_np,
           "x_hat": x_hat, "d_real": d_real, "d_fake": d_fake, "d_hat": d_hat, "gp": gp,
           "loss_d": loss_d, "loss_g": loss_g, "grad_x_hat": g_xhat, "grad_loss_g_fake": g_fake,
           "grad_gp.D.image.0.weight": g_gp[0], "grad_gp.D.head.1.weight": g_gp[1]}
    out.update(P_np)
    out.update({"grad_loss_d." + n: g for n, g in zip(PNAMES, g_d)})
    meta = {
        "description":
            "Adv-KD discriminator and losses (METHODS 2.5-2.6), scaled down, float64. Conditional "
            "discriminator D(image, noise) for stage resolution r = 16, 1-channel images [B,1,16,16], "
            "1-channel noise [B,1,4,4], ndf 2, max channels 4, head hidden 4, B = 3, NCHW. Image branch: "
            "conv 4x4 stride 2 pad 1, D.image.0.weight [2,1,4,4], no bias -> LeakyReLU(0.2) [16->8]; "
            "then (while size > 4, once here) conv 4x4 s2 p1 D.image.1.weight [4,2,4,4], no bias -> "
            "BatchNorm2d (D.image.1.bn.weight/.bias [4]) -> LeakyReLU(0.2) [8->4]; flatten [B,64] "
            "(index c*16 + h*4 + w). Noise branch: conv 3x3 pad 1 D.noise.0.weight [2,1,3,3], no bias "
            "-> BatchNorm2d (D.noise.0.bn.*, [2]) -> LReLU(0.2) -> conv 3x3 pad 0 D.noise.1.weight "
            "[4,2,3,3], no bias -> BatchNorm2d (D.noise.1.bn.*, [4]) -> LReLU(0.2) -> flatten [B,16] "
            "(c*4 + h*2 + w). Head: concat [image features (64), noise features (16)] -> Linear "
            "D.head.0.weight [4,80], D.head.0.bias [4] (y = x W^T + b) -> BatchNorm1d (D.head.bn.*, "
            "[4]) -> LReLU(0.2) -> Linear D.head.1.weight [1,4], D.head.1.bias [1] -> logit [B]. "
            "Every BatchNorm in TRAINING mode: batch statistics (over N,H,W for 2d, over N for 1d), "
            "biased variance, eps 1e-5, y = (x-mean)/sqrt(var+eps)*weight + bias. Each call of D is its "
            "own forward pass with its own batch statistics. Parameters and inputs from numpy "
            "default_rng(seed_of('distill_advkd')), drawn in this order: the 16 parameters in the order "
            "D.image.0.weight, D.image.1.weight, D.image.1.bn.weight, D.image.1.bn.bias, "
            "D.noise.0.weight, D.noise.0.bn.weight, D.noise.0.bn.bias, D.noise.1.weight, "
            "D.noise.1.bn.weight, D.noise.1.bn.bias, D.head.0.weight, D.head.0.bias, D.head.bn.weight, "
            "D.head.bn.bias, D.head.1.weight, D.head.1.bias (conv/linear weights 0.3 N(0,1), BN weights "
            "1 + 0.1 N(0,1), BN and linear biases 0.1 N(0,1)); then real [3,1,16,16] = uniform(-1,1) "
            "(teacher images), fake [3,1,16,16] = tanh(N(0,1)) (generator output), noise [3,1,4,4] ~ "
            "N(0,1), alpha [3] = uniform(0,1). Outputs: d_real = D(real, noise), d_fake = D(fake, noise) "
            "[3] (separate passes); x_hat = alpha*real + (1-alpha)*fake per sample [3,1,16,16]; d_hat = "
            "D(x_hat, noise) [3] (a third pass); grad_x_hat = d sum(d_hat) / d x_hat [3,1,16,16] (image "
            "input only; with training-mode BN it couples the samples); gp (0-d) = mean over batch of "
            "(||grad_x_hat[b] flattened||_2 - 1)^2; loss_d (0-d) = mean softplus(-d_real) + mean "
            "softplus(d_fake) + 10*gp (fake a constant). grad_loss_d.<param> for all 16 parameters = "
            "d loss_d / d param, including the double backward through the GP (inner gradient with "
            "create_graph). NOTE grad_loss_d.D.head.0.bias is mathematically 0 (a constant shift before "
            "training-mode BatchNorm1d) and is rounding noise (~1e-16): compare with an absolute "
            "tolerance. grad_gp.D.image.0.weight, grad_gp.D.head.1.weight = d gp / d param alone. "
            "loss_g (0-d) = mean softplus(-D(fake, noise)) from a fresh pass (same values as d_fake); "
            "grad_loss_g_fake [3,1,16,16] = d loss_g / d fake. No weight clipping and no optimiser "
            "step are applied (parameters are outside [-0.1,0.1]). softplus(x) = log(1 + exp(x)).",
        "seed": str(dg.seed_of("distill_advkd")),
    }
    goldens.write("distill_advkd.safetensors", out, meta)


# ---- an independent numpy forward of D (explicit patch sums, BatchNorm from its definition) ----

def np_conv(x, w, stride, pad):
    B, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    out = np.zeros((B, O, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]  # [B,C,kh,kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out


def np_bn(x, g, b):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    m = x.mean(axis=axes, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(v + BN_EPS) * g.reshape(shape) + b.reshape(shape)


def np_lrelu(x):
    return np.where(x > 0, x, LRELU * x)


def np_disc(P, img, noise):
    h = np_lrelu(np_conv(img, P["D.image.0.weight"], 2, 1))
    h = np_lrelu(np_bn(np_conv(h, P["D.image.1.weight"], 2, 1), P["D.image.1.bn.weight"],
                       P["D.image.1.bn.bias"]))
    n = np_lrelu(np_bn(np_conv(noise, P["D.noise.0.weight"], 1, 1), P["D.noise.0.bn.weight"],
                       P["D.noise.0.bn.bias"]))
    n = np_lrelu(np_bn(np_conv(n, P["D.noise.1.weight"], 1, 0), P["D.noise.1.bn.weight"],
                       P["D.noise.1.bn.bias"]))
    B = img.shape[0]
    f = np.concatenate([h.reshape(B, -1), n.reshape(B, -1)], axis=1)
    f = np_lrelu(np_bn(f @ P["D.head.0.weight"].T + P["D.head.0.bias"], P["D.head.bn.weight"],
                       P["D.head.bn.bias"]))
    return (f @ P["D.head.1.weight"].T + P["D.head.1.bias"])[:, 0]


def np_softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def check_advkd(d):
    P_np, real, fake, noise, alpha = advkd_inputs()
    for n in PNAMES:
        assert np.array_equal(d[n], P_np[n]), n
    for n, a in (("real", real), ("fake", fake), ("noise", noise), ("alpha", alpha)):
        assert np.array_equal(d[n], a), n
    P = {n: d[n] for n in PNAMES}
    a = alpha.reshape(-1, 1, 1, 1)
    close(d["x_hat"], a * real + (1 - a) * fake, 1e-15, 1e-15)
    x_hat = d["x_hat"]
    # forward: the numpy discriminator
    close(d["d_real"], np_disc(P, real, noise), 1e-11, 1e-12)
    close(d["d_fake"], np_disc(P, fake, noise), 1e-11, 1e-12)
    close(d["d_hat"], np_disc(P, x_hat, noise), 1e-11, 1e-12)
    # GP inner gradient: central finite differences of the numpy sum(D(x_hat)) (batch statistics move)
    g_fd = fd_grad(lambda x: float(np.sum(np_disc(P, x, noise))), x_hat)
    close(d["grad_x_hat"], g_fd, 1e-6, 1e-8)
    norms = np.sqrt(np.sum(d["grad_x_hat"].reshape(ADV_B, -1) ** 2, axis=1))
    gp = float(np.mean((norms - 1) ** 2))
    close(d["gp"], gp, 1e-12)
    lossd = float(np.mean(np_softplus(-d["d_real"])) + np.mean(np_softplus(d["d_fake"]))) + GP_WEIGHT * gp
    close(d["loss_d"], lossd, 1e-12)
    close(d["loss_g"], float(np.mean(np_softplus(-np_disc(P, fake, noise)))), 1e-11)
    # the sample coupling through BatchNorm is real: the per-sample gradient of D(x_hat)[0] alone
    # differs from the gradient of the sum restricted to sample 0
    g0 = fd_grad(lambda x: float(np_disc(P, x, noise)[0]), x_hat)
    assert np.max(np.abs(g0[0] - d["grad_x_hat"][0])) > 1e-3
    # d loss_g / d fake: finite differences of the numpy forward
    close(d["grad_loss_g_fake"],
          fd_grad(lambda f: float(np.mean(np_softplus(-np_disc(P, f, noise)))), fake), 1e-6, 1e-9)

    # d loss_d / d param (through the double backward): central differences of the torch loss_d,
    # whose GP uses autograd's first-order gradient; every element of every parameter
    def loss_d_np(Pv):
        Pt = {n: t64(v) for n, v in Pv.items()}
        return float(loss_d_of(Pt, t64(real), t64(fake), t64(noise), t64(alpha))[0])

    def gp_np(Pv):
        Pt = {n: t64(v) for n, v in Pv.items()}
        xh = t64(x_hat, True)
        return float(gp_term(Pt, xh, t64(noise))[0])
    worst = 0.0
    for name in PNAMES:
        def f(x, name=name):
            Q = dict(P)
            Q[name] = x
            return loss_d_np(Q)
        g = fd_grad(f, P[name])
        close(d["grad_loss_d." + name], g, 1e-6, 1e-8)
        worst = max(worst, float(np.max(np.abs(g - d["grad_loss_d." + name]))))
    assert np.max(np.abs(d["grad_loss_d.D.head.0.bias"])) < 1e-12
    for name in ("D.image.0.weight", "D.head.1.weight"):
        def f(x, name=name):
            Q = dict(P)
            Q[name] = x
            return gp_np(Q)
        close(d["grad_gp." + name], fd_grad(f, P[name]), 1e-6, 1e-9)
    # gradcheck / gradgradcheck on the GP as a function of (x_hat, first-layer weight)
    rest = {n: t64(v) for n, v in P.items()}

    def inner(xh, w0):
        Q = dict(rest)
        Q["D.image.0.weight"] = w0
        return disc(Q, xh, t64(noise)).sum()
    args = (t64(x_hat, True), t64(P["D.image.0.weight"], True))
    assert torch.autograd.gradcheck(inner, args)
    assert torch.autograd.gradgradcheck(inner, args)

    def gp_of_w(w0, w_out):
        Q = dict(rest)
        Q["D.image.0.weight"], Q["D.head.1.weight"] = w0, w_out
        return gp_term(Q, t64(x_hat, True), t64(noise))[0]
    assert torch.autograd.gradcheck(gp_of_w, (t64(P["D.image.0.weight"], True),
                                              t64(P["D.head.1.weight"], True)))
    print(f"  advkd: numpy forward of D (3 passes), GP inner gradient vs FD of numpy sum(D), "
          f"gp {gp:.6g}, loss_d {lossd:.6g}, loss_g {float(d['loss_g']):.6g}; grad_loss_d of all "
          f"{len(PNAMES)} parameters vs FD of loss_d (max abs err {worst:.2g}); grad_gp, "
          f"grad_loss_g_fake vs FD; gradcheck + gradgradcheck ok; BN couples samples in grad_x_hat")


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


def fd_grad(f, x, h=1e-6):
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for k in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[k] += h
        xm.flat[k] -= h
        g.flat[k] = (f(xp) - f(xm)) / (2 * h)
    return g


def check():
    loaded, _ = goldens.check_round_trips(MAX_FILE)
    assert sorted(loaded) == sorted(FILES), sorted(loaded)
    check_dkdm(loaded["distill_dkdm.safetensors"])
    check_advkd(loaded["distill_advkd.safetensors"])
    print(f"checked {len(FILES)} files: all round-trip and match the independent cross-checks")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="after writing, re-read every file and verify it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    make_dkdm()
    make_advkd()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in FILES)
    print(f"wrote {len(FILES)} files, {total} bytes, to {OUT}")
    if args.check:
        check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
