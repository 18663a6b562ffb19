#!/usr/bin/python3
"""Writes the Frechet-distance (FID) and KID goldens (safetensors) that the C++ metric tests read.

Run with Debian's python (only /usr/bin/python3 has numpy):

    /usr/bin/python3 tests/golden/make_metric_goldens.py           # (re)write data/metrics_*.safetensors
    /usr/bin/python3 tests/golden/make_metric_goldens.py --check   # ... then re-read and verify them

Written from the metric specification only (not from the C++ code). Everything is float64.

Frechet distance between feature sets A [n, d] and B [m, d]:
    mu = column means, S = covariance with 1/(n-1) (numpy.cov(rowvar=False));
    FD = ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr(sqrtm(S_a S_b)),
    tr(sqrtm(S_a S_b)) = sum_i sqrt(max(lambda_i, 0)), lambda_i the eigenvalues of the symmetric
    PSD matrix S_a^{1/2} S_b S_a^{1/2}; S_a^{1/2} = V diag(sqrt(max(w, 0))) V^T from
    numpy.linalg.eigh(S_a). (The product is symmetrised, (M + M^T) / 2, before eigvalsh, since
    rounding makes it very slightly asymmetric.) Cross-checked against scipy.linalg.sqrtm when scipy
    is importable, otherwise against numpy.linalg.eigvals(S_a @ S_b) (sum of sqrt of the real parts
    clamped at 0); the two must agree to 1e-8 relative.

KID (Binkowski et al. 2018): unbiased MMD^2, polynomial kernel k(x, y) = (x . y / d + 1)^3, one
subset = all of A and all of B:
    KID = sum_{i!=j} k(a_i, a_j) / (n(n-1)) + sum_{i!=j} k(b_i, b_j) / (m(m-1))
          - 2 sum_{i,j} k(a_i, b_j) / (n m).
Cross-checked against a pure-Python math.fsum loop over all pairs.

One file per case, data/metrics_<case>.safetensors, with tensors a, b, mu_a, mu_b, cov_a, cov_b
(F64) and fid, kid (F64, 0-d) and __metadata__ {"case", "formula", "seed", "generator"}.

The safetensors layout (F64 only) is the hand-written one of safetensors_io.py, which also holds
the writer and the independent reader used by --check. Output is bit-for-bit reproducible.

Precision: with singular covariances (rank_deficient_d32) the float64 FD is ~7e-8 absolute off the
exact value (sqrt of ~1e-16 null-space eigenvalue noise); --check compares every FD with a 50-digit
mpmath evaluation when mpmath is importable. "identical" has an exact FD of 0 (stored ~5e-15).
"""
import os

# Single-threaded BLAS/LAPACK (reproducibility, and the machine is shared).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import glob
import math
import sys

import numpy as np

from safetensors_io import read_safetensors, write_safetensors

try:
    import scipy.linalg as _scipy_linalg
except ImportError:  # Debian's python here has no scipy
    _scipy_linalg = None

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MAX_FILE_BYTES = 120 * 1024

FORMULA = ("fid = |mu_a-mu_b|^2 + tr(S_a) + tr(S_b) - 2 sum sqrt(max(eig(S_a^1/2 S_b S_a^1/2),0)), "
           "S unbiased 1/(n-1), S_a^1/2 via eigh clamped at 0; "
           "kid = unbiased MMD^2, k(x,y) = (x.y/d + 1)^3, one subset = all of A and B: "
           "sum_{i!=j} k(a_i,a_j)/(n(n-1)) + sum_{i!=j} k(b_i,b_j)/(m(m-1)) - 2 sum_{i,j} k(a_i,b_j)/(nm)")


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------

def case_gauss_d8(rng):
    a = rng.standard_normal((200, 8))
    b = 0.3 + 1.2 * rng.standard_normal((150, 8))
    return a, b


def case_correlated_d16(rng):
    d = 16
    w_a = rng.standard_normal((d, d)) / math.sqrt(d)
    w_b = rng.standard_normal((d, d)) / math.sqrt(d)
    a = rng.standard_normal((300, d)) @ w_a
    b = rng.standard_normal((250, d)) @ w_b + 0.5
    return a, b


def case_rank_deficient_d32(rng):
    # n, m < d: S_a has rank <= 19, S_b rank <= 24 (singular; exercises the clamping at 0).
    a = rng.standard_normal((20, 32))
    b = 0.1 + rng.standard_normal((25, 32))
    return a, b


def case_identical(rng):
    a = rng.standard_normal((100, 4))
    return a, a.copy()


# name -> (seed, builder, short description of the generator for the metadata)
CASES = {
    "gauss_d8": (1001, case_gauss_d8,
                 "a = N(0,1) [200,8]; b = 0.3 + 1.2 N(0,1) [150,8]"),
    "correlated_d16": (1002, case_correlated_d16,
                       "W_a, W_b = N(0,1)/4 [16,16] (drawn first, in that order); "
                       "a = N(0,1)[300,16] @ W_a; b = N(0,1)[250,16] @ W_b + 0.5"),
    "rank_deficient_d32": (1003, case_rank_deficient_d32,
                           "a = N(0,1) [20,32]; b = 0.1 + N(0,1) [25,32]"),
    "identical": (1004, case_identical, "a = N(0,1) [100,4]; b = a"),
}


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------

def stats(x):
    mu = x.mean(axis=0)
    cov = np.cov(x, rowvar=False)  # 1/(n-1)
    return mu, np.atleast_2d(cov)


def trace_sqrt_product_eigh(s_a, s_b):
    """tr(sqrtm(S_a S_b)) via the symmetric form S_a^1/2 S_b S_a^1/2 (the specified method)."""
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.maximum(w, 0.0))) @ v.T
    m = root_a @ s_b @ root_a
    m = 0.5 * (m + m.T)
    lam = np.linalg.eigvalsh(m)
    return float(np.sum(np.sqrt(np.maximum(lam, 0.0))))


def trace_sqrt_product_crosscheck(s_a, s_b):
    """Independent route: scipy.linalg.sqrtm(S_a S_b) if scipy exists, else eig(S_a S_b)."""
    if _scipy_linalg is not None:
        r = _scipy_linalg.sqrtm(s_a @ s_b)
        return float(np.real(np.trace(r))), "scipy.linalg.sqrtm"
    lam = np.linalg.eigvals(s_a @ s_b)
    return float(np.sum(np.sqrt(np.maximum(lam.real, 0.0)))), "numpy.linalg.eigvals(S_a @ S_b)"


def frechet(a, b):
    mu_a, cov_a = stats(a)
    mu_b, cov_b = stats(b)
    diff = mu_a - mu_b
    base = float(diff @ diff) + float(np.trace(cov_a)) + float(np.trace(cov_b))
    tr = trace_sqrt_product_eigh(cov_a, cov_b)
    tr_x, how = trace_sqrt_product_crosscheck(cov_a, cov_b)
    assert abs(tr - tr_x) <= 1e-8 * max(abs(tr), abs(tr_x), 1e-300), (tr, tr_x, how)
    return base - 2.0 * tr, base - 2.0 * tr_x, tr, tr_x, how, mu_a, mu_b, cov_a, cov_b


def kid(a, b):
    n, d = a.shape
    m = b.shape[0]
    k_aa = (a @ a.T / d + 1.0) ** 3
    k_bb = (b @ b.T / d + 1.0) ** 3
    k_ab = (a @ b.T / d + 1.0) ** 3
    s_aa = k_aa.sum() - np.trace(k_aa)
    s_bb = k_bb.sum() - np.trace(k_bb)
    return float(s_aa / (n * (n - 1)) + s_bb / (m * (m - 1)) - 2.0 * k_ab.sum() / (n * m))


def kid_loop(a, b):
    """Pure-Python reference (exactly rounded sums via math.fsum)."""
    n, d = a.shape
    m = b.shape[0]
    al, bl = a.tolist(), b.tolist()

    def k(x, y):
        return (math.fsum(p * q for p, q in zip(x, y)) / d + 1.0) ** 3

    s_aa = math.fsum(k(al[i], al[j]) for i in range(n) for j in range(n) if i != j)
    s_bb = math.fsum(k(bl[i], bl[j]) for i in range(m) for j in range(m) if i != j)
    s_ab = math.fsum(k(x, y) for x in al for y in bl)
    return s_aa / (n * (n - 1)) + s_bb / (m * (m - 1)) - 2.0 * s_ab / (n * m)


def compute_case(name):
    seed, build, gen = CASES[name]
    a, b = build(np.random.default_rng(seed))
    a = np.array(a, dtype=np.float64, order="C")
    b = np.array(b, dtype=np.float64, order="C")
    fid, fid_x, tr, tr_x, how, mu_a, mu_b, cov_a, cov_b = frechet(a, b)
    k = kid(a, b)
    k_ref = kid_loop(a, b)
    assert abs(k - k_ref) <= 1e-9 * max(1.0, abs(k_ref)), (name, k, k_ref)
    tensors = {"a": a, "b": b, "mu_a": mu_a, "mu_b": mu_b, "cov_a": cov_a, "cov_b": cov_b,
               "fid": np.array(fid, dtype=np.float64), "kid": np.array(k, dtype=np.float64)}
    metadata = {"case": name, "formula": FORMULA, "seed": str(seed),
                "generator": "numpy.random.default_rng(seed): " + gen}
    info = dict(fid=fid, fid_crosscheck=fid_x, trace_sqrt=tr, trace_sqrt_crosscheck=tr_x,
                crosscheck=how, kid=k, kid_loop=k_ref,
                rank_a=int(np.linalg.matrix_rank(cov_a)), rank_b=int(np.linalg.matrix_rank(cov_b)))
    return tensors, metadata, info


# ----------------------------------------------------------------------------------------------
# Files, --check
# ----------------------------------------------------------------------------------------------

def fid_mpmath(got, dps=50):
    """High-precision FD of the stored (exact) mu/cov doubles, or None without mpmath. In exact
    arithmetic the null-space eigenvalues are 0; float64 leaves ~1e-16 noise there whose sqrt
    (~1e-8 each) biases tr(sqrtm) when covariances are singular (rank_deficient_d32)."""
    try:
        import mpmath as mp
    except ImportError:
        return None
    mp.mp.dps = dps
    s_a, s_b = mp.matrix(got["cov_a"].tolist()), mp.matrix(got["cov_b"].tolist())
    e, q = mp.eigsy(s_a)
    root_a = q * mp.diag([mp.sqrt(max(e[i], 0)) for i in range(s_a.rows)]) * q.T
    m = root_a * s_b * root_a
    lam = mp.eigsy((m + m.T) / 2, eigvals_only=True)
    tr = mp.fsum(mp.sqrt(max(x, 0)) for x in lam)
    diff = [mp.mpf(float(x)) - mp.mpf(float(y)) for x, y in zip(got["mu_a"], got["mu_b"])]
    base = mp.fsum(x * x for x in diff) + mp.fsum(s_a[i, i] + s_b[i, i] for i in range(s_a.rows))
    return float(base - 2 * tr)


def path_of(name):
    return os.path.join(OUT, "metrics_%s.safetensors" % name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="re-read the files and verify them")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)

    results = {}
    for name in CASES:
        tensors, metadata, info = compute_case(name)
        write_safetensors(path_of(name), tensors, metadata)
        results[name] = (tensors, metadata, info)
        print("%-20s fid % .17g  kid % .17g  (%d bytes)"
              % (name, info["fid"], info["kid"], os.path.getsize(path_of(name))))

    if not args.check:
        return 0

    expected_files = {path_of(name) for name in CASES}
    stale = set(glob.glob(os.path.join(OUT, "metrics_*.safetensors"))) - expected_files
    assert not stale, ("stale metric goldens", sorted(stale))
    for name, (tensors, metadata, info) in results.items():
        path = path_of(name)
        size = os.path.getsize(path)
        assert size < MAX_FILE_BYTES, (path, size)
        got, meta = read_safetensors(path)
        assert meta == metadata, (path, meta)
        assert sorted(got) == sorted(tensors), (path, sorted(got))
        for k, v in tensors.items():
            assert got[k].shape == v.shape and got[k].dtype == np.dtype("<f8"), (path, k)
            assert got[k].tobytes() == np.asarray(v).tobytes(order="C"), (path, k, "bits differ")
        assert got["fid"].shape == () and got["kid"].shape == ()
        # Recompute from the stored a, b only.
        a, b = np.array(got["a"]), np.array(got["b"])
        fid2 = frechet(a, b)[0]
        assert fid2 == float(got["fid"]), (path, fid2, float(got["fid"]))
        assert kid(a, b) == float(got["kid"]), path
        np.testing.assert_array_equal(a.mean(axis=0), got["mu_a"])
        np.testing.assert_array_equal(np.cov(b, rowvar=False), got["cov_b"])
        print("check %-20s ok  %6d bytes  fid %.17g (cross-check %.17g, via %s)"
              % (name, size, info["fid"], info["fid_crosscheck"], info["crosscheck"]))
        print("      %-20s     tr sqrt %.17g vs %.17g  rel %.2e;  rank S_a %d, S_b %d"
              % ("", info["trace_sqrt"], info["trace_sqrt_crosscheck"],
                 abs(info["trace_sqrt"] - info["trace_sqrt_crosscheck"]) / abs(info["trace_sqrt"]),
                 info["rank_a"], info["rank_b"]))
        print("      %-20s     kid %.17g (fsum loop %.17g)" % ("", info["kid"], info["kid_loop"]))
        ref = fid_mpmath(got)
        if ref is not None:
            err = abs(info["fid"] - ref)
            assert err <= 1e-6 * max(1.0, abs(ref)), (name, info["fid"], ref)
            print("      %-20s     fid vs 50-digit mpmath %.17g: abs err %.2e" % ("", ref, err))
    print("all metric goldens ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
