#!/usr/bin/python3
"""Writes the distillation-objective goldens (safetensors) that the C++ distillation tests read.

Run with Debian's Python (only /usr/bin/python3 has torch and numpy):

    /usr/bin/python3 tests/golden/make_distill_goldens.py           # (re)write the files
    /usr/bin/python3 tests/golden/make_distill_goldens.py --check   # ... then re-read and verify

Written from the specification only (shared METHODS.md section 0.5 progressive-distillation target,
section 1 Denoising Student, section 4.3 RDD loss, and the golden brief), not from the C++ code.
Everything is float64 (numpy / torch.float64); gradients are torch autograd. Three files go to
tests/golden/data/:

  distill_student.safetensors  Denoising Student: uint8-quantised teacher target, student
                               x_T - net(x_T, 999), L1 / L2 losses (sum / B) and d loss / d net_out.
  distill_pd.safetensors       progressive-distillation target (two unclipped teacher DDIM steps with
                               an analytic v-prediction teacher) on cosine(1000), per-sample student
                               steps, the "snr_trunc" and "v_mse" losses and their gradients.
  distill_rdd.safetensors      RDD: RCFD pooled-feature KL, IS-P2P relation KL, M-P2P memory-bank KL
                               (projection head with training-mode BatchNorm, queue enqueue in the
                               official "faithful" raw-view flatten and a "clean" permuted flatten),
                               and the gradients.

Inputs come from numpy default_rng(seed_of(<file name>)) in a documented order, so the output is
bit-for-bit reproducible (single-threaded torch). The files (F64, and I64 where noted) use the
hand-written safetensors layout of safetensors_io.py, which also holds the writer and the
independent reader used by --check; the cosine schedule is imported from make_diffusion_goldens.py
(importing it writes nothing).
"""
import argparse
import math
import os
import sys
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as Fn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
sys.path.insert(0, HERE)
import make_diffusion_goldens as dg  # noqa: E402  (f64/i64, seed_of, cosine schedule)
from safetensors_io import GoldenFiles, t64  # noqa: E402

MAX_FILE = 100 * 1024
FILES = ["distill_student.safetensors", "distill_pd.safetensors", "distill_rdd.safetensors"]
goldens = GoldenFiles(OUT, dtypes=(np.float64, np.int64))


# ==============================================================================================
# File 1: Denoising Student (METHODS section 1)
# ==============================================================================================

STUDENT_SHAPE = (3, 1, 4, 4)


def quantise_u8(x0):
    """The official 8-bit target: clip to [-1, 1], x*127.5 + 127.5 in float32, truncating uint8 cast."""
    x = np.clip(np.asarray(x0).astype(np.float32), np.float32(-1.0), np.float32(1.0))
    y = x * np.float32(127.5) + np.float32(127.5)
    assert y.dtype == np.float32
    return y.astype(np.uint8)


def student_losses(x_T, net_out, target):
    """(l1, l2) losses of the student x_T - net_out against target: sum over elements / B."""
    B = x_T.shape[0]
    diff = target - (x_T - net_out)
    return diff.abs().sum() / B, (diff * diff).sum() / B


def make_student():
    rng = np.random.default_rng(dg.seed_of("distill_student"))
    x_T = rng.standard_normal(STUDENT_SHAPE)
    net_out = 0.5 * rng.standard_normal(STUDENT_SHAPE)
    teacher_x0 = 1.3 * rng.standard_normal(STUDENT_SHAPE)
    target_u8 = quantise_u8(teacher_x0).astype(np.float64)
    target = target_u8 / 127.5 - 1.0
    student = x_T - net_out
    B = STUDENT_SHAPE[0]
    # no element may sit on the |.| kink (finite differences and sign conventions would disagree)
    assert np.min(np.abs(target - student)) > 1e-3 and np.min(np.abs(teacher_x0 - student)) > 1e-3
    assert np.any(teacher_x0 > 1) and np.any(teacher_x0 < -1)

    out = {}
    n = t64(net_out, True)
    l1, l2 = student_losses(t64(x_T), n, t64(target))
    (g1,) = torch.autograd.grad(l1, n)
    (g2,) = torch.autograd.grad(l2, n)
    n2 = t64(net_out, True)
    l1f, _ = student_losses(t64(x_T), n2, t64(teacher_x0))
    (g1f,) = torch.autograd.grad(l1f, n2)
    out.update({"x_T": x_T, "net_out": net_out, "teacher_x0": teacher_x0, "target_u8": target_u8,
                "target": target, "student": student, "loss_l1": l1, "loss_l2": l2,
                "grad_net_out_l1": g1, "grad_net_out_l2": g2, "loss_l1_float": l1f,
                "grad_net_out_l1_float": g1f})
    meta = {
        "description":
            f"Denoising Student (METHODS 1), float64, shapes [B,C,H,W] = {list(STUDENT_SHAPE)}, B = {B}. "
            "Inputs from numpy default_rng(seed_of('distill_student')) drawn in this order: "
            "x_T ~ N(0,1) (the student's input noise); net_out = 0.5 N(0,1) (the network output at "
            "fixed time 999, read as a noise prediction); teacher_x0 = 1.3 N(0,1) (the teacher's DDIM "
            "image; some values lie outside [-1,1]). target_u8 (F64 holding integers 0..255) = the "
            "official 8-bit quantisation of teacher_x0: cast to float32, clip to [-1,1], multiply-add "
            "x*127.5+127.5 in float32, cast to uint8 by truncation (numpy astype('uint8')). target = "
            "target_u8/127.5 - 1 (float64, the dequantised target). student = x_T - net_out (the "
            "student's image, no sqrt(alpha_bar) scaling). loss_l1 = sum over all elements "
            "|target - student| / B; loss_l2 = sum (target - student)^2 / B (0-d). grad_net_out_l1, "
            "grad_net_out_l2 = d loss / d net_out (autograd; = sign(target - student)/B and "
            "2 (target - student)/B). Unquantised option ('quantise off'): loss_l1_float = sum "
            "|teacher_x0 - student| / B with the raw (unclipped, unquantised) teacher_x0, and its "
            "gradient grad_net_out_l1_float. No element is within 1e-3 of the |.| kink.",
        "seed": str(dg.seed_of("distill_student")),
    }
    goldens.write("distill_student.safetensors", out, meta)


def check_student(d):
    x_T, net_out, tx0 = d["x_T"], d["net_out"], d["teacher_x0"]
    B = x_T.shape[0]
    u8 = d["target_u8"]
    assert np.all(u8 == np.round(u8)) and u8.min() >= 0 and u8.max() <= 255
    assert u8.min() == 0 and u8.max() == 255  # clipped values on both sides
    # alternative quantisation: float64 floor; the float32 arithmetic may differ by one level at most
    alt = np.floor(np.clip(tx0, -1, 1) * 127.5 + 127.5)
    ndiff = int(np.sum(alt != u8))
    assert np.max(np.abs(alt - u8)) <= 1
    # truncation matters: rounding to nearest would give a different target
    nround = int(np.sum(np.round(np.clip(tx0, -1, 1) * 127.5 + 127.5) != u8))
    assert nround > 0
    assert np.all(np.abs(d["target"] - np.clip(tx0, -1, 1)) < 1 / 127.5 + 1e-12)
    assert np.array_equal(d["target"], u8 / 127.5 - 1.0)
    assert np.array_equal(d["student"], x_T - net_out)
    diff = d["target"] - (x_T - net_out)
    close(d["loss_l1"], math.fsum(np.abs(diff).ravel()) / B, 1e-14)
    close(d["loss_l2"], math.fsum((diff * diff).ravel()) / B, 1e-14)
    close(d["grad_net_out_l1"], np.sign(diff) / B, 0, 0)
    close(d["grad_net_out_l2"], 2 * diff / B, 1e-14)
    diff_f = tx0 - (x_T - net_out)
    close(d["loss_l1_float"], math.fsum(np.abs(diff_f).ravel()) / B, 1e-14)
    close(d["grad_net_out_l1_float"], np.sign(diff_f) / B, 0, 0)

    def fn(n):
        return student_losses(t64(x_T), n, t64(d["target"]))
    assert torch.autograd.gradcheck(lambda n: fn(n)[0], (t64(net_out, True),))
    assert torch.autograd.gradcheck(lambda n: fn(n)[1], (t64(net_out, True),))
    print(f"  student: losses and gradients match closed forms; gradcheck ok; float64-floor "
          f"quantisation differs from the float32 one in {ndiff} of {u8.size} elements, "
          f"round-to-nearest in {nround}")


# ==============================================================================================
# File 2: progressive-distillation target and loss (METHODS 0.5), discrete-time cosine(1000)
# ==============================================================================================

T_PD = 1000
AB = dg.AB_COSINE1000
assert len(AB) == T_PD
PD_SHAPE_PIX = (1, 4, 4)
PD_CASES = [("n4", 4, [1, 2, 3, 4]), ("n1", 1, [1, 1])]


def idx(N, i):
    """Schedule index of grid point i of an N-step sampler: round(i T / N) - 1, -1 (clean) at i = 0."""
    if i == 0:
        return -1
    q = Fraction(i * T_PD, N)
    assert q - math.floor(q) != Fraction(1, 2), ("tie", N, i)
    return int(dg.round_half_away(q)) - 1


def coef(t):
    """(a_t, s_t); t = -1 is clean (1, 0)."""
    if t < 0:
        return 1.0, 0.0
    return math.sqrt(AB[t]), math.sqrt(1.0 - AB[t])


def teacher_v(z, t):
    return 0.6 * np.tanh(z) * math.cos(t / 300.0) + 0.05 * (t / 1000.0)


def teacher_step(z, t, t_to):
    """Unclipped teacher DDIM step t -> t_to (t_to = -1: clean, returns x_hat). Returns (z_to, x_hat)."""
    a, s = coef(t)
    v = teacher_v(z, t)
    x_hat = a * z - s * v
    eps_hat = (z - a * x_hat) / s
    a2, s2 = coef(t_to)
    return a2 * x_hat + s2 * eps_hat, x_hat


def pd_losses(z_t, out, x_tilde, eps_tilde, a, s):
    """a, s: [B,1,1,1] tensors. Returns (snr_trunc, v_mse)."""
    x_S = a * z_t - s * out
    eps_S = (z_t - a * x_S) / s
    dims = tuple(range(1, z_t.dim()))
    x_mse = ((x_S - x_tilde) ** 2).mean(dim=dims)
    e_mse = ((eps_S - eps_tilde) ** 2).mean(dim=dims)
    snr_trunc = torch.maximum(x_mse, e_mse).mean()
    v_tilde = a * eps_tilde - s * x_tilde
    v_mse = ((out - v_tilde) ** 2).mean()
    return snr_trunc, v_mse


def make_pd():
    out = {"T": dg.i64(T_PD)}
    rng = np.random.default_rng(dg.seed_of("distill_pd"))
    for prefix, N, ivals in PD_CASES:
        B = len(ivals)
        shape = (B,) + PD_SHAPE_PIX
        x = rng.uniform(-1.0, 1.0, shape)
        eps = rng.standard_normal(shape)
        student_out = 0.5 * rng.standard_normal(shape)
        t = [idx(N, i) for i in ivals]
        t_mid = [idx(2 * N, 2 * i - 1) for i in ivals]
        t_next = [idx(N, i - 1) for i in ivals]
        z_t, z_mid, z_next, x_tilde, eps_tilde = (np.zeros(shape) for _ in range(5))
        for b in range(B):
            a, s = coef(t[b])
            z_t[b] = a * x[b] + s * eps[b]
            z_mid[b], _ = teacher_step(z_t[b], t[b], t_mid[b])
            z_next[b], x_hat2 = teacher_step(z_mid[b], t_mid[b], t_next[b])
            if t_next[b] < 0:
                x_tilde[b] = x_hat2
            else:
                a2, s2 = coef(t_next[b])
                r = s2 / s
                x_tilde[b] = (z_next[b] - r * z_t[b]) / (a2 - r * a)
            eps_tilde[b] = (z_t[b] - a * x_tilde[b]) / s
        a_b = t64([coef(tb)[0] for tb in t]).reshape(B, 1, 1, 1)
        s_b = t64([coef(tb)[1] for tb in t]).reshape(B, 1, 1, 1)
        # the max must not tie (per sample x-MSE vs eps-MSE, i.e. SNR vs 1)
        assert all(abs(math.log(AB[tb] / (1 - AB[tb]))) > 1e-3 for tb in t)
        so = t64(student_out, True)
        l_snr, l_v = pd_losses(t64(z_t), so, t64(x_tilde), t64(eps_tilde), a_b, s_b)
        (g_snr,) = torch.autograd.grad(l_snr, so)
        (g_v,) = torch.autograd.grad(l_v, so)
        p = prefix + "."
        out.update({p + "x": x, p + "eps": eps, p + "i": dg.i64(ivals), p + "t": dg.i64(t),
                    p + "t_mid": dg.i64(t_mid), p + "t_next": dg.i64(t_next), p + "z_t": z_t,
                    p + "z_mid": z_mid, p + "z_next": z_next, p + "x_tilde": x_tilde,
                    p + "eps_tilde": eps_tilde, p + "student_out": student_out,
                    p + "loss_snr_trunc": l_snr, p + "grad_student_out_snr_trunc": g_snr,
                    p + "loss_v_mse": l_v, p + "grad_student_out_v_mse": g_v})
    meta = {
        "description":
            "Progressive-distillation target and losses (METHODS 0.5), discrete-time, float64. T (I64 "
            "0-d) = 1000. Schedule: cosine(1000) as in diffusion_schedules.safetensors "
            "(cosine1000.alphas_cumprod): f(u) = cos((u+0.008)/1.008*pi/2)^2, beta_t = min(1 - "
            "f((t+1)/T)/f(t/T), 0.999), alpha_bar = sequential cumprod of (1-beta), t = 0..999; "
            "a_t = sqrt(alpha_bar[t]), s_t = sqrt(1-alpha_bar[t]); index -1 means clean (a = 1, s = 0). "
            "Grid of an N-step sampler: idx_N(i) = round(i*T/N) - 1 (no ties occur), idx_N(0) = -1. "
            "Two cases, prefixes 'n4.' (N = 4, B = 4, i = [1,2,3,4]) and 'n1.' (N = 1, B = 2, "
            "i = [1,1]); shapes [B,1,4,4]. Per case, inputs drawn from one numpy "
            "default_rng(seed_of('distill_pd')) stream (n4 first, then n1), in order: x = uniform"
            "(-1,1) (real images), eps ~ N(0,1), student_out = 0.5 N(0,1). <p>.i (I64 [B]) student "
            "step index per sample (step from grid point i to i-1); <p>.t = idx_N(i), <p>.t_mid = "
            "idx_2N(2i-1), <p>.t_next = idx_N(i-1) (I64 [B] schedule indices, -1 = clean). z_t = a_t x "
            "+ s_t eps. Teacher (analytic v-prediction, elementwise, t = schedule index as a float): "
            "v(z,t) = 0.6*tanh(z)*cos(t/300.0) + 0.05*(t/1000.0); x_hat = a_t z - s_t v (UNCLIPPED), "
            "eps_hat = (z - a_t x_hat)/s_t, DDIM step to t2: a_t2 x_hat + s_t2 eps_hat. z_mid = teacher "
            "step t -> t_mid from z_t; z_next = teacher step t_mid -> t_next from z_mid (for t_next = -1 "
            "this is the second step's x_hat). x_tilde = (z_next - (s_next/s_t) z_t)/(a_next - "
            "(s_next/s_t) a_t), except t_next = -1: x_tilde = the second step's x_hat (= z_next). "
            "eps_tilde = (z_t - a_t x_tilde)/s_t. Student: student_out is a v-prediction at (z_t, t): "
            "x_S = a_t z_t - s_t student_out, eps_S = (z_t - a_t x_S)/s_t. loss_snr_trunc (0-d) = mean "
            "over the batch of max(mean_pixels (x_S - x_tilde)^2, mean_pixels (eps_S - eps_tilde)^2) "
            "(= mean_b max(SNR_b,1) xMSE_b); loss_v_mse = mean over all elements (student_out - "
            "v_tilde)^2 with v_tilde = a_t eps_tilde - s_t x_tilde. grad_student_out_snr_trunc, "
            "grad_student_out_v_mse: d loss / d student_out (autograd, [B,1,4,4]).",
        "seed": str(dg.seed_of("distill_pd")),
    }
    goldens.write("distill_pd.safetensors", out, meta)


def check_pd(d):
    assert int(d["T"]) == T_PD
    for prefix, N, ivals in PD_CASES:
        p = prefix + "."
        B = len(ivals)
        assert list(d[p + "i"]) == ivals
        # grid against the defining formula in float64 (round half away) and the brief's examples
        for b, i in enumerate(ivals):
            assert d[p + "t"][b] == int(math.floor(i * T_PD / N + 0.5)) - 1
            assert d[p + "t_mid"][b] == int(math.floor((2 * i - 1) * T_PD / (2 * N) + 0.5)) - 1
            assert d[p + "t_next"][b] == (int(math.floor((i - 1) * T_PD / N + 0.5)) - 1 if i > 1 else -1)
        if prefix == "n1":
            assert list(d[p + "t"]) == [999, 999] and list(d[p + "t_mid"]) == [499, 499]
        if prefix == "n4":
            assert list(d[p + "t"]) == [249, 499, 749, 999]
            assert list(d[p + "t_mid"]) == [124, 374, 624, 874]
            assert list(d[p + "t_next"]) == [-1, 249, 499, 749]
        x_tilde, eps_tilde, z_t = d[p + "x_tilde"], d[p + "eps_tilde"], d[p + "z_t"]
        out = d[p + "student_out"]
        x_mses, snrs, s2s = [], [], []
        for b in range(B):
            t, tm, tn = int(d[p + "t"][b]), int(d[p + "t_mid"][b]), int(d[p + "t_next"][b])
            ab = AB[t]
            close(z_t[b], math.sqrt(ab) * d[p + "x"][b] + math.sqrt(1 - ab) * d[p + "eps"][b], 1e-14, 1e-15)
            # teacher steps in the eps-form: z_s = a_s (z_t - s_t eps_hat)/a_t + s_s eps_hat
            for z_from, z_to, t1, t2 in ((z_t[b], d[p + "z_mid"][b], t, tm),
                                         (d[p + "z_mid"][b], d[p + "z_next"][b], tm, tn)):
                a1, s1 = math.sqrt(AB[t1]), math.sqrt(1 - AB[t1])
                v = 0.6 * np.tanh(z_from) * math.cos(t1 / 300.0) + 0.05 * t1 / 1000.0
                e_hat = s1 * z_from + a1 * v          # eps from v, without going through x_hat
                a2, s2 = (math.sqrt(AB[t2]), math.sqrt(1 - AB[t2])) if t2 >= 0 else (1.0, 0.0)
                close(z_to, a2 * (z_from - s1 * e_hat) / a1 + s2 * e_hat, 1e-9, 1e-9)
            # the target: one student DDIM step t -> t_next with (x_tilde, eps_tilde) lands on z_next
            if tn >= 0:
                an, sn = math.sqrt(AB[tn]), math.sqrt(1 - AB[tn])
                close(an * x_tilde[b] + sn * eps_tilde[b], d[p + "z_next"][b], 1e-10, 1e-10)
            else:
                assert np.array_equal(x_tilde[b], d[p + "z_next"][b])
            close(math.sqrt(ab) * x_tilde[b] + math.sqrt(1 - ab) * eps_tilde[b], z_t[b], 1e-10, 1e-10)
            # alternative loss: x-MSE weighted by max(SNR, 1); v-MSE = x-MSE / s^2
            a, s = math.sqrt(ab), math.sqrt(1 - ab)
            x_S = a * z_t[b] - s * out[b]
            x_mses.append(float(np.mean((x_S - x_tilde[b]) ** 2)))
            snrs.append(ab / (1 - ab))
            s2s.append(1 - ab)
        alt_snr = sum(max(snr, 1.0) * m for snr, m in zip(snrs, x_mses)) / B
        alt_v = sum(m / s2 for m, s2 in zip(x_mses, s2s)) / B
        close(d[p + "loss_snr_trunc"], alt_snr, 1e-9)
        close(d[p + "loss_v_mse"], alt_v, 1e-9)
        # gradients: closed form for v-MSE, finite differences of the alternative for snr_trunc
        v_tilde = np.stack([math.sqrt(AB[t]) * eps_tilde[b] - math.sqrt(1 - AB[t]) * x_tilde[b]
                            for b, t in enumerate(d[p + "t"])])
        close(d[p + "grad_student_out_v_mse"], 2 * (out - v_tilde) / out.size, 1e-9, 1e-12)

        def alt_loss(o):
            acc = 0.0
            for b, t in enumerate(d[p + "t"]):
                a, s = math.sqrt(AB[t]), math.sqrt(1 - AB[t])
                m = float(np.mean((a * z_t[b] - s * o[b] - x_tilde[b]) ** 2))
                acc += max(AB[t] / (1 - AB[t]), 1.0) * m
            return acc / B
        close(d[p + "grad_student_out_snr_trunc"], fd_grad(alt_loss, out), 1e-6, 1e-8)
        a_b = t64([math.sqrt(AB[t]) for t in d[p + "t"]]).reshape(B, 1, 1, 1)
        s_b = t64([math.sqrt(1 - AB[t]) for t in d[p + "t"]]).reshape(B, 1, 1, 1)
        for k in range(2):
            assert torch.autograd.gradcheck(
                lambda o: pd_losses(t64(z_t), o, t64(x_tilde), t64(eps_tilde), a_b, s_b)[k],
                (t64(out, True),))
        print(f"  pd {prefix}: teacher steps (eps-form), target consistency, "
              f"max(SNR,1)*xMSE = {alt_snr:.6g}, xMSE/s^2 = {alt_v:.6g}, FD and gradcheck ok; SNR per "
              f"sample " + ", ".join(f"{x:.3g}" for x in snrs))


# ==============================================================================================
# File 3: RDD losses (METHODS 4.3), scaled down
# ==============================================================================================

RDD_SHAPE = (3, 6, 2, 2)   # B, C, H, W
Q_ROWS, M_CONTRAST, K_MAX = 10, 4, 5
TAU_CFD, TAU_ISP2P, TAU_CONTRAST, TAU_KD, MP2P_WEIGHT = 0.9, 1.0, 0.1, 1.0, 0.1


def pooled(F):
    return Fn.relu(F).mean(dim=(2, 3))


def loss_cfd(F_T, F_S):
    B = F_S.shape[0]
    return Fn.kl_div(Fn.log_softmax(pooled(F_S), dim=1), Fn.softmax(pooled(F_T) / TAU_CFD, dim=1),
                     reduction="sum") / B


def relation_rows(F):
    Fh = Fn.normalize(F, dim=1).flatten(2)                    # [B, C, HW]
    s = torch.einsum("bci,dcj->bdij", Fh, Fh)                 # [B, B, HW, HW]
    return s.reshape(-1, s.shape[-1])


def loss_isp2p(F_T, F_S):
    B, HW = F_S.shape[0], F_S.shape[2] * F_S.shape[3]
    return Fn.kl_div(Fn.log_softmax(relation_rows(F_S) / TAU_ISP2P, dim=-1),
                     Fn.softmax(relation_rows(F_T) / TAU_ISP2P, dim=-1), reduction="sum") / (B * B * HW)


def head(F_S, w1, bn_w, bn_b, w2):
    y = Fn.conv2d(F_S, w1)
    y = Fn.batch_norm(y, None, None, bn_w, bn_b, training=True, momentum=0.0, eps=1e-5)
    return Fn.conv2d(Fn.relu(y), w2)


def enqueue(queue, ptr, F_T, columns, mode):
    """Returns (queue after, ptr after). F_T raw teacher map; F_T_hat is normalised per pixel."""
    C = F_T.shape[1]
    Fh = Fn.normalize(F_T, dim=1)
    if mode == "faithful":
        mat = Fh.contiguous().reshape(C, -1)                  # raw view of NCHW memory
    else:
        mat = Fh.permute(1, 0, 2, 3).reshape(C, -1)           # column = one pixel's channel vector
    keys = Fn.normalize(mat[:, torch.tensor(np.array(columns))], dim=0).t()   # [K, C]
    K, Q = keys.shape[0], queue.shape[0]
    q = queue.clone()
    if ptr + K >= Q:
        q[Q - K:] = keys
        ptr = 0
    else:
        q[ptr:ptr + K] = keys
        ptr += K
    return q, ptr


def loss_mp2p(F_T, S_out, queue_after, contrast_index):
    B, C, H, W = F_T.shape
    HW = H * W
    Qc = queue_after[torch.tensor(np.array(contrast_index))]         # [M, C]
    FT = Fn.normalize(F_T, dim=1).flatten(2).transpose(1, 2)  # [B, HW, C]
    SS = Fn.normalize(S_out, dim=1).flatten(2).transpose(1, 2)
    l_T = FT @ Qc.t() / TAU_CONTRAST
    l_S = SS @ Qc.t() / TAU_CONTRAST
    return Fn.kl_div(Fn.log_softmax(l_S / TAU_KD, dim=-1), Fn.softmax(l_T / TAU_KD, dim=-1),
                     reduction="sum") / B * TAU_KD ** 2 / HW


def rdd_inputs():
    B, C, H, W = RDD_SHAPE
    rng = np.random.default_rng(dg.seed_of("distill_rdd"))
    inp = {"F_T": rng.standard_normal(RDD_SHAPE), "F_S": rng.standard_normal(RDD_SHAPE),
           "head.w1": rng.standard_normal((C, C, 1, 1)) / math.sqrt(C),
           "head.bn_weight": 1.0 + 0.1 * rng.standard_normal(C),
           "head.bn_bias": 0.1 * rng.standard_normal(C),
           "head.w2": rng.standard_normal((C, C, 1, 1)) / math.sqrt(C)}
    for name in ("queue_before", "queue2_before"):
        q = rng.standard_normal((Q_ROWS, C))
        inp[name] = q / np.linalg.norm(q, axis=1, keepdims=True)
    K = min(B * H * W, K_MAX)
    inp["enqueue_columns"] = rng.choice(B * H * W, size=K, replace=False).astype(np.int64)
    inp["contrast_index"] = np.round(np.linspace(0, Q_ROWS - 1, M_CONTRAST)).astype(np.int64)
    inp["ptr_before"], inp["ptr2_before"] = np.int64(7), np.int64(0)
    return inp


def make_rdd():
    inp = rdd_inputs()
    B, C, H, W = RDD_SHAPE
    assert np.min(np.abs(inp["F_T"])) > 1e-4 and np.min(np.abs(inp["F_S"])) > 1e-4  # ReLU kinks
    F_T = t64(inp["F_T"])
    cols = inp["enqueue_columns"]
    q_f, ptr_f = enqueue(t64(inp["queue_before"]), int(inp["ptr_before"]), F_T, cols, "faithful")
    q_c, ptr_c = enqueue(t64(inp["queue_before"]), int(inp["ptr_before"]), F_T, cols, "clean")
    q2_c, ptr2_c = enqueue(t64(inp["queue2_before"]), int(inp["ptr2_before"]), F_T, cols, "clean")
    q2_f, ptr2_f = enqueue(t64(inp["queue2_before"]), int(inp["ptr2_before"]), F_T, cols, "faithful")
    assert ptr_f == ptr_c == 0 and ptr2_c == ptr2_f == len(cols)

    F_S = t64(inp["F_S"], True)
    params = [t64(inp[n], True) for n in ("head.w1", "head.bn_weight", "head.bn_bias", "head.w2")]
    S_out = head(F_S, *params)
    l_cfd = loss_cfd(F_T, F_S)
    l_is = loss_isp2p(F_T, F_S)
    l_mc = loss_mp2p(F_T, S_out, q_c, inp["contrast_index"])
    l_mf = loss_mp2p(F_T, S_out, q_f, inp["contrast_index"])
    total = l_cfd + l_is + MP2P_WEIGHT * l_mc
    grads = torch.autograd.grad(total, [F_S] + params, retain_graph=True)
    g_cfd = torch.autograd.grad(l_cfd, F_S, retain_graph=True)[0]
    g_is = torch.autograd.grad(l_is, F_S, retain_graph=True)[0]
    g_mc = torch.autograd.grad(l_mc, F_S)[0]

    out = dict(inp)
    out.update({"tau_cfd": dg.f64(TAU_CFD), "tau_isp2p": dg.f64(TAU_ISP2P),
                "tau_contrast": dg.f64(TAU_CONTRAST), "tau_kd": dg.f64(TAU_KD),
                "mp2p_weight": dg.f64(MP2P_WEIGHT),
                "queue_after_faithful": q_f, "queue_after_clean": q_c, "ptr_after": dg.i64(ptr_c),
                "queue2_after_clean": q2_c, "queue2_after_faithful": q2_f, "ptr2_after": dg.i64(ptr2_c),
                "loss_cfd": l_cfd, "loss_isp2p": l_is, "loss_mp2p_clean": l_mc,
                "loss_mp2p_faithful": l_mf, "loss_total_clean": total,
                "grad_F_S": grads[0], "grad_head.w1": grads[1], "grad_head.bn_weight": grads[2],
                "grad_head.bn_bias": grads[3], "grad_head.w2": grads[4],
                "grad_F_S_cfd": g_cfd, "grad_F_S_isp2p": g_is, "grad_F_S_mp2p_clean": g_mc})
    meta = {
        "description":
            f"RDD losses (METHODS 4.3), scaled down, float64 (I64 where noted). [B,C,H,W] = "
            f"{list(RDD_SHAPE)}, HW = {H * W}. Inputs from numpy default_rng(seed_of('distill_rdd')) "
            "drawn in this order: F_T (teacher feature map, no gradient) ~ N(0,1); F_S (student "
            "feature map) ~ N(0,1); head.w1 [C,C,1,1] = N(0,1)/sqrt(C); head.bn_weight [C] = 1 + "
            "0.1 N(0,1); head.bn_bias [C] = 0.1 N(0,1); head.w2 [C,C,1,1] = N(0,1)/sqrt(C); "
            f"queue_before [{Q_ROWS},{C}] and then queue2_before [{Q_ROWS},{C}]: rows N(0,1) then "
            "L2-normalised; enqueue_columns (I64 [K], K = min(B*H*W, 5) = 5, distinct) = "
            "rng.choice(B*H*W, K, replace=False). contrast_index (I64 [M], M = 4) = np.round("
            "np.linspace(0, Q-1, M)) = [0,3,6,9]. ptr_before = 7, ptr2_before = 0 (I64 0-d). Scalars: "
            "tau_cfd 0.9, tau_isp2p 1.0, tau_contrast 0.1, tau_kd 1.0, mp2p_weight 0.1. "
            "f = mean over H,W of ReLU(F) ([B,C]). kl(P, T) below = torch kl_div(input = P (log-"
            "probabilities), target = T (probabilities), reduction 'sum') = sum T (log T - P). "
            "loss_cfd = kl(log_softmax(f_S, 1), softmax(f_T/tau_cfd, 1)) / B. "
            "loss_isp2p: F_hat = F / max(||F||_2 over channels, 1e-12) per pixel (F.normalize dim 1); "
            "s[b,d,i,j] = <F_hat_b[:,i], F_hat_d[:,j]> for all ordered (b,d) incl. b = d, pixel index "
            "i = h*W + w; rows (b,d,i) of length HW; loss = kl(log_softmax(s_S/tau_isp2p, -1), "
            "softmax(s_T/tau_isp2p, -1)) / (B*B*HW). "
            "Projection head (student side only): conv1x1 head.w1 (no bias) -> BatchNorm2d in "
            "TRAINING mode (batch statistics over N,H,W, biased variance, eps 1e-5, affine "
            "head.bn_weight/head.bn_bias) -> ReLU -> conv1x1 head.w2 (no bias); S_hat = per-pixel "
            "L2-normalise(head(F_S)) over channels. "
            "Queue enqueue (no gradient, BEFORE the loss): F_T_hat = per-pixel channel-normalised "
            "F_T; matrix [C, B*H*W]: 'faithful' = F_T_hat.reshape(C, -1) of the contiguous NCHW "
            "tensor without permuting (column j = flat elements j, j + B*H*W, j + 2*B*H*W, ...), "
            "'clean' = F_T_hat.permute(1,0,2,3).reshape(C, -1) (column n*H*W + h*W + w = that "
            "pixel's channel vector). Take columns enqueue_columns (in that order), L2-normalise each "
            "column, write column k as queue row (start + k): if ptr + K >= Q the rows Q-K..Q-1 and "
            "ptr becomes 0, else rows ptr..ptr+K-1 and ptr += K. queue_after_faithful / "
            "queue_after_clean: queue_before after the enqueue (ptr 7: 'last K rows' branch), "
            "ptr_after = 0. queue2_after_clean / queue2_after_faithful: queue2_before after an "
            "enqueue of the same columns from ptr2_before = 0 (rows 0..4), ptr2_after = 5. "
            "M-P2P: Qc = queue_after[contrast_index] ([M,C]); per pixel of every sample l_T = "
            "(F_T_hat pixel . Qc^T)/tau_contrast, l_S = (S_hat pixel . Qc^T)/tau_contrast ([B,HW,M]); "
            "loss = kl(log_softmax(l_S/tau_kd, -1), softmax(l_T/tau_kd, -1)) / B * tau_kd^2 / HW, "
            "WITHOUT the mp2p_weight. loss_mp2p_clean uses queue_after_clean, loss_mp2p_faithful "
            "queue_after_faithful. loss_total_clean = loss_cfd + loss_isp2p + mp2p_weight * "
            "loss_mp2p_clean. grad_F_S, grad_head.w1, grad_head.bn_weight, grad_head.bn_bias, "
            "grad_head.w2: d loss_total_clean / d (that input) (autograd; the head gradients come "
            "only from 0.1 * M-P2P). grad_F_S_cfd, grad_F_S_isp2p, grad_F_S_mp2p_clean: d (each "
            "unweighted term) / d F_S, so grad_F_S = cfd + isp2p + 0.1 * mp2p_clean.",
        "seed": str(dg.seed_of("distill_rdd")),
    }
    goldens.write("distill_rdd.safetensors", out, meta)


def np_normalize(x, axis):
    return x / np.maximum(np.sqrt(np.sum(x * x, axis=axis, keepdims=True)), 1e-12)


def np_kl_rows(logp_in, logits_target):
    """sum T (log T - P), T = softmax(logits_target) along the last axis; P log-probabilities."""
    lt = logits_target - logits_target.max(axis=-1, keepdims=True)
    logT = lt - np.log(np.sum(np.exp(lt), axis=-1, keepdims=True))
    return float(np.sum(np.exp(logT) * (logT - logp_in)))


def np_log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))


def np_rdd_total(d, F_S, w1, bn_w, bn_b, w2, queue_after, parts=False):
    """Independent numpy forward of the three RDD terms with explicit loops for the relations."""
    F_T = d["F_T"]
    B, C, H, W = F_T.shape
    HW = H * W
    fT = np.maximum(F_T, 0).reshape(B, C, HW).mean(axis=2)
    fS = np.maximum(F_S, 0).reshape(B, C, HW).mean(axis=2)
    cfd = np_kl_rows(np_log_softmax(fS), fT / TAU_CFD) / B
    # IS-P2P with explicit loops over (b, d, i, j)
    FhT = np_normalize(F_T.reshape(B, C, HW), 1)
    FhS = np_normalize(F_S.reshape(B, C, HW), 1)
    isp = 0.0
    for b in range(B):
        for e in range(B):
            for i in range(HW):
                sT = np.array([sum(FhT[b, c, i] * FhT[e, c, j] for c in range(C)) for j in range(HW)])
                sS = np.array([sum(FhS[b, c, i] * FhS[e, c, j] for c in range(C)) for j in range(HW)])
                isp += np_kl_rows(np_log_softmax(sS / TAU_ISP2P), sT / TAU_ISP2P)
    isp /= B * B * HW
    # head: 1x1 convs as matrix products over channels, BatchNorm from its definition
    y = np.einsum("oc,bchw->bohw", w1[:, :, 0, 0], F_S)
    mu = y.mean(axis=(0, 2, 3), keepdims=True)
    var = ((y - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    y = (y - mu) / np.sqrt(var + 1e-5) * bn_w.reshape(1, C, 1, 1) + bn_b.reshape(1, C, 1, 1)
    y = np.einsum("oc,bchw->bohw", w2[:, :, 0, 0], np.maximum(y, 0))
    Sh = np_normalize(y.reshape(B, C, HW), 1)
    Qc = queue_after[d["contrast_index"]]
    mp = 0.0
    for b in range(B):
        for i in range(HW):
            lT = Qc @ FhT[b, :, i] / TAU_CONTRAST
            lS = Qc @ Sh[b, :, i] / TAU_CONTRAST
            mp += np_kl_rows(np_log_softmax(lS / TAU_KD), lT / TAU_KD)
    mp = mp / B * TAU_KD ** 2 / HW
    if parts:
        return cfd, isp, mp
    return cfd + isp + MP2P_WEIGHT * mp


def check_rdd(d):
    B, C, H, W = d["F_T"].shape
    BHW = B * H * W
    cols = d["enqueue_columns"]
    assert len(set(cols.tolist())) == len(cols) == min(BHW, K_MAX) and cols.min() >= 0 and cols.max() < BHW
    assert list(d["contrast_index"]) == [0, 3, 6, 9]
    for name in ("queue_before", "queue2_before"):
        close(np.linalg.norm(d[name], axis=1), np.ones(Q_ROWS), 1e-14)
    # enqueue by explicit element indexing
    FhT = np_normalize(d["F_T"], 1)
    flat = FhT.ravel()
    K = len(cols)
    for mode in ("faithful", "clean"):
        keys = np.zeros((K, C))
        for k, j in enumerate(cols):
            if mode == "faithful":
                col = np.array([flat[j + c * BHW] for c in range(C)])
            else:
                n, hw = divmod(int(j), H * W)
                col = FhT[n, :, hw // W, hw % W]
            keys[k] = col / np.linalg.norm(col)
        for qname, ptr, outname in (("queue_before", int(d["ptr_before"]), "queue_after_" + mode),
                                    ("queue2_before", int(d["ptr2_before"]), "queue2_after_" + mode)):
            want = d[qname].copy()
            start = Q_ROWS - K if ptr + K >= Q_ROWS else ptr
            want[start:start + K] = keys
            close(d[outname], want, 1e-14, 1e-15)
    assert int(d["ptr_after"]) == 0 and int(d["ptr2_after"]) == K
    assert not np.allclose(d["queue_after_faithful"], d["queue_after_clean"])
    # independent numpy forward
    args = [d[n] for n in ("F_S", "head.w1", "head.bn_weight", "head.bn_bias", "head.w2")]
    cfd, isp, mpc = np_rdd_total(d, *args, d["queue_after_clean"], parts=True)
    _, _, mpf = np_rdd_total(d, *args, d["queue_after_faithful"], parts=True)
    close(d["loss_cfd"], cfd, 1e-12)
    close(d["loss_isp2p"], isp, 1e-12)
    close(d["loss_mp2p_clean"], mpc, 1e-12)
    close(d["loss_mp2p_faithful"], mpf, 1e-12)
    close(d["loss_total_clean"], cfd + isp + 0.1 * mpc, 1e-12)
    close(d["grad_F_S"], d["grad_F_S_cfd"] + d["grad_F_S_isp2p"] + 0.1 * d["grad_F_S_mp2p_clean"],
          1e-12, 1e-15)
    # gradients: central finite differences of the numpy forward, every element
    for k, name in enumerate(("F_S", "head.w1", "head.bn_weight", "head.bn_bias", "head.w2")):
        def f(x, k=k):
            a = list(args)
            a[k] = x
            return np_rdd_total(d, *a, d["queue_after_clean"])
        close(d["grad_" + name], fd_grad(f, args[k]), 1e-6, 1e-8)
    for term, idx_ in (("cfd", 0), ("isp2p", 1), ("mp2p_clean", 2)):
        close(d["grad_F_S_" + term],
              fd_grad(lambda x: np_rdd_total(d, x, *args[1:], d["queue_after_clean"], parts=True)[idx_],
                      args[0]), 1e-6, 1e-8)
    # autograd against finite differences in torch as well
    qc = t64(d["queue_after_clean"])

    def total(F_S, w1, bw, bb, w2):
        S = head(F_S, w1, bw, bb, w2)
        return (loss_cfd(t64(d["F_T"]), F_S) + loss_isp2p(t64(d["F_T"]), F_S)
                + MP2P_WEIGHT * loss_mp2p(t64(d["F_T"]), S, qc, d["contrast_index"]))
    assert torch.autograd.gradcheck(total, tuple(t64(a, True) for a in args))
    print(f"  rdd: enqueue (both branches, both flattens) by explicit indexing; numpy loop forward "
          f"cfd {cfd:.6g}, isp2p {isp:.6g}, mp2p clean {mpc:.6g} / faithful {mpf:.6g}; all gradients "
          f"vs finite differences; gradcheck ok")


# ==============================================================================================
# Checking
# ==============================================================================================

def close(got, want, rtol, atol=0.0):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want)
    assert np.all(err <= atol + rtol * np.abs(want)), (float(np.max(err)), got, want)


def fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x, dtype=np.float64)
    for k in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[k] += h
        xm.flat[k] -= h
        g.flat[k] = (f(xp) - f(xm)) / (2 * h)
    return g


def check():
    loaded, _ = goldens.check_round_trips(MAX_FILE)
    assert sorted(loaded) == sorted(FILES), sorted(loaded)
    siblings = {"distill_dkdm.safetensors", "distill_advkd.safetensors"}  # make_distill2_goldens.py's
    stale = sorted(set(f for f in os.listdir(OUT) if f.startswith("distill_")) - set(FILES) - siblings)
    assert not stale, stale
    check_student(loaded["distill_student.safetensors"])
    check_pd(loaded["distill_pd.safetensors"])
    check_rdd(loaded["distill_rdd.safetensors"])
    print(f"checked {len(FILES)} files: all round-trip and match the alternative formulas")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="after writing, re-read every file and verify it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    make_student()
    make_pd()
    make_rdd()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in FILES)
    print(f"wrote {len(FILES)} files, {total} bytes, to {OUT}")
    if args.check:
        check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
