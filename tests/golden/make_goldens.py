#!/usr/bin/python3
"""Writes the PyTorch reference ("golden") files that tests/golden/golden_test.cpp reads.

Run with Debian's PyTorch 1.13 (only /usr/bin/python3 has torch):

    /usr/bin/python3 tests/golden/make_goldens.py           # (re)write tests/golden/data/*.bin
    /usr/bin/python3 tests/golden/make_goldens.py --check   # ... then re-read and verify every file

Every case is one small, self-describing binary file in tests/golden/data/. Format, little-endian:

    8 bytes   magic b"DKGOLD01"
    u32       tensor count
    per tensor:
      u32       name length, then the name (UTF-8, no terminator)
      u32       dtype code: 0 float32, 1 float64, 2 int64
      u32       ndim, then ndim x i64 shape (ndim 0 = scalar, one element)
      raw data  row-major contiguous, numel * itemsize bytes

Scalar parameters of a case are tensors too, named "param.*" (int64 for integers and flags, float64
for real numbers), so the C++ test takes everything it needs from the file.

Conventions: inputs are float32 drawn from torch.randn under a fixed torch.manual_seed; the forward
runs in float32; a fixed random grad_output (float32, the output's shape; a scalar for losses) is
stored and the gradients are torch.autograd.grad(output, inputs, grad_output). Output is bit-for-bit
reproducible: rerunning the script rewrites identical files.
"""
import argparse
import os
import struct
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MAGIC = b"DKGOLD01"
DTYPE_CODE = {torch.float32: 0, torch.float64: 1, torch.int64: 2}
NUMPY_DTYPE = {0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<i8")}
# param.reduction codes shared with the C++ side.
REDUCTION_CODE = {"none": 0, "mean": 1, "sum": 2, "batchmean": 3}
# Size limits for the files (they are meant to live in the repository).
MAX_FILE_BYTES, MAX_TOTAL_BYTES = 200 * 1024, 2 * 1024 * 1024

# path -> list of (name, tensor) as written, for --check.
written = {}


# ----------------------------------------------------------------------------------------------
# Writing helpers
# ----------------------------------------------------------------------------------------------

def as_tensor(value):
    """Python int -> int64 scalar, Python float -> float64 scalar, tensors unchanged (detached)."""
    if torch.is_tensor(value):
        return value.detach().contiguous()
    if isinstance(value, bool):
        value = int(value)
    dtype = torch.int64 if isinstance(value, int) else torch.float64
    return torch.tensor(value, dtype=dtype)


def write(case, tensors):
    """Writes data/<case>.bin. tensors: list of (name, torch tensor or Python int/float)."""
    blob = [MAGIC, struct.pack("<I", len(tensors))]
    kept = []
    for name, value in tensors:
        t = as_tensor(value)
        code = DTYPE_CODE[t.dtype]
        raw_name = name.encode("utf-8")
        blob.append(struct.pack("<I", len(raw_name)) + raw_name)
        blob.append(struct.pack("<II", code, t.dim()))
        blob.append(struct.pack("<%dq" % t.dim(), *t.shape))
        blob.append(t.numpy().astype(NUMPY_DTYPE[code]).tobytes(order="C"))
        kept.append((name, t.clone()))
    path = os.path.join(OUT, case + ".bin")
    with open(path, "wb") as f:
        f.write(b"".join(blob))
    written[path] = kept


def leaf(*shape, seed, scale=1.0, shift=0.0):
    """A float32 leaf tensor randn(shape) * scale + shift, drawn under manual_seed(seed)."""
    torch.manual_seed(seed)
    return (torch.randn(*shape) * scale + shift).requires_grad_()


def grads(out, inputs, seed):
    """Draws grad_output (out's shape, under manual_seed(seed)) and backpropagates it."""
    torch.manual_seed(seed)
    grad_output = torch.randn(out.shape)
    return grad_output, torch.autograd.grad(out, inputs, grad_output)


def pair(a, b=None):
    """An int64 [2] parameter (height, width); b defaults to a."""
    return torch.tensor([a, a if b is None else b], dtype=torch.int64)


# ----------------------------------------------------------------------------------------------
# Case families (one function each)
# ----------------------------------------------------------------------------------------------

def conv2d_cases():
    """F.conv2d with bias. weight [O, C, kh, kw], bias [O]; param.stride / param.padding [2]."""
    cases = [
        # n, c, h, w, o, (kh, kw), (sh, sw), (ph, pw)
        (2, 3, 7, 6, 4, (3, 3), (1, 1), (1, 1)),    # 'same' 3x3
        (2, 3, 7, 6, 4, (3, 3), (2, 2), (1, 1)),    # strided, odd input size
        (2, 4, 5, 5, 3, (1, 1), (1, 1), (0, 0)),    # 1x1 (pointwise)
        (2, 3, 8, 8, 5, (4, 4), (2, 2), (1, 1)),    # discriminator-like 4x4 s2 p1
        (1, 16, 9, 9, 13, (3, 3), (1, 1), (1, 1)),  # enough channels for the packed f32 kernels
        (2, 3, 7, 6, 4, (3, 2), (2, 1), (1, 0)),    # non-square kernel, stride and padding
    ]
    for n, c, h, w, o, k, s, p in cases:
        x = leaf(n, c, h, w, seed=1)
        weight = leaf(o, c, *k, seed=2, scale=0.3)
        bias = leaf(o, seed=3)
        y = F.conv2d(x, weight, bias, stride=s, padding=p)
        gy, (gx, gw, gb) = grads(y, (x, weight, bias), 4)
        # Square settings keep the short names (k3_s2_p1); others spell both sides (k3x2_s2x1_p1x0).
        tag = lambda v: str(v[0]) if v[0] == v[1] else "%dx%d" % v
        write(f"conv2d_n{n}_c{c}_h{h}_w{w}_o{o}_k{tag(k)}_s{tag(s)}_p{tag(p)}",
              [("input", x), ("weight", weight), ("bias", bias), ("output", y),
               ("grad_output", gy), ("grad_input", gx), ("grad_weight", gw), ("grad_bias", gb),
               ("param.stride", pair(*s)), ("param.padding", pair(*p))])


def conv_transpose2d_cases():
    """F.conv_transpose2d with bias. weight [C_in, C_out, kh, kw], bias [C_out];
    param.stride / param.padding / param.output_padding [2]."""
    cases = [
        # n, c_in, h, w, c_out, k, s, p, output_padding
        (2, 3, 4, 5, 4, 3, 2, 1, 1),  # exact 2x upsampling with k3
        (2, 3, 4, 4, 2, 4, 2, 1, 0),  # exact 2x upsampling with k4 (generator-like)
        (1, 2, 5, 3, 3, 3, 1, 0, 0),  # stride 1, no padding: grows by k - 1
    ]
    for n, c, h, w, o, k, s, p, op in cases:
        x = leaf(n, c, h, w, seed=5)
        weight = leaf(c, o, k, k, seed=6, scale=0.3)
        bias = leaf(o, seed=7)
        y = F.conv_transpose2d(x, weight, bias, stride=s, padding=p, output_padding=op)
        gy, (gx, gw, gb) = grads(y, (x, weight, bias), 8)
        write(f"conv_transpose2d_n{n}_c{c}_h{h}_w{w}_o{o}_k{k}_s{s}_p{p}_op{op}",
              [("input", x), ("weight", weight), ("bias", bias), ("output", y),
               ("grad_output", gy), ("grad_input", gx), ("grad_weight", gw), ("grad_bias", gb),
               ("param.stride", pair(s)), ("param.padding", pair(p)),
               ("param.output_padding", pair(op))])


def group_norm_cases():
    """F.group_norm with per-channel affine weight/bias [C]; param.groups, param.eps."""
    cases = [
        # n, c, h, w, groups, eps
        (2, 6, 5, 4, 3, 1e-5),  # 2 channels per group
        (3, 8, 4, 4, 8, 1e-5),  # one channel per group (instance-norm-like)
        (2, 4, 3, 3, 1, 1e-6),  # one group (layer-norm-like), different eps
    ]
    for n, c, h, w, groups, eps in cases:
        # Non-zero mean and non-unit variance so that the normalisation actually does something.
        x = leaf(n, c, h, w, seed=9, scale=2.0, shift=0.5)
        weight, bias = leaf(c, seed=10), leaf(c, seed=11)
        y = F.group_norm(x, groups, weight, bias, eps)
        gy, (gx, gw, gb) = grads(y, (x, weight, bias), 12)
        write(f"group_norm_n{n}_c{c}_h{h}_w{w}_g{groups}",
              [("input", x), ("weight", weight), ("bias", bias), ("output", y),
               ("grad_output", gy), ("grad_input", gx), ("grad_weight", gw), ("grad_bias", gb),
               ("param.groups", groups), ("param.eps", eps)])


def batch_norm_cases():
    """F.batch_norm with affine weight/bias [C] and running statistics.

    Training mode normalises with the batch's biased variance and updates the running statistics
    in place with momentum 0.1 using the *unbiased* batch variance (as torch does):
        running_mean_out = 0.9 * running_mean_in + 0.1 * batch_mean
        running_var_out  = 0.9 * running_var_in  + 0.1 * batch_var * m / (m - 1),  m = N*H*W
    Eval mode normalises with running_*_in, which stay unchanged (running_*_out == running_*_in).
    param.training (int64 0/1), param.momentum, param.eps (float64).
    """
    cases = [
        ("batch_norm2d_train_n4_c3_h5_w5", (4, 3, 5, 5), True),
        ("batch_norm2d_eval_n4_c3_h5_w5", (4, 3, 5, 5), False),
        ("batch_norm1d_train_n6_c5", (6, 5), True),
    ]
    momentum, eps = 0.1, 1e-5
    for case, shape, training in cases:
        c = shape[1]
        x = leaf(*shape, seed=13, scale=1.5, shift=0.3)
        weight, bias = leaf(c, seed=14), leaf(c, seed=15)
        # Non-trivial running statistics (not the default zeros / ones).
        torch.manual_seed(16)
        running_mean_in = torch.randn(c) * 0.1
        running_var_in = torch.rand(c) + 0.5
        running_mean, running_var = running_mean_in.clone(), running_var_in.clone()
        y = F.batch_norm(x, running_mean, running_var, weight, bias, training=training,
                         momentum=momentum, eps=eps)
        gy, (gx, gw, gb) = grads(y, (x, weight, bias), 17)
        write(case,
              [("input", x), ("weight", weight), ("bias", bias),
               ("running_mean_in", running_mean_in), ("running_var_in", running_var_in),
               ("running_mean_out", running_mean), ("running_var_out", running_var),
               ("output", y), ("grad_output", gy),
               ("grad_input", gx), ("grad_weight", gw), ("grad_bias", gb),
               ("param.training", int(training)), ("param.momentum", momentum),
               ("param.eps", eps)])


def bilinear_cases():
    """F.interpolate(mode='bilinear', align_corners=False) to an explicit size; input [2, 3, H, W].

    With an explicit size torch uses scale = in / out per axis and the source coordinate
    max(0, (dst + 0.5) * scale - 0.5); no antialiasing when downsampling. param.size [2] = (oh, ow).
    """
    cases = [
        (5, 4, 10, 8),  # integer 2x upsampling
        (5, 4, 7, 9),   # non-integer upsampling, different factor per axis
        (8, 8, 3, 5),   # downsampling
    ]
    for h, w, oh, ow in cases:
        x = leaf(2, 3, h, w, seed=18)
        y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
        gy, (gx,) = grads(y, (x,), 19)
        write(f"bilinear_h{h}_w{w}_to_{oh}x{ow}",
              [("input", x), ("output", y), ("grad_output", gy), ("grad_input", gx),
               ("param.size", pair(oh, ow))])


def softmax_cases():
    """torch.softmax / torch.log_softmax along param.dim (stored as given, -1 stays -1)."""
    for op_name, op in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
        for shape, dim in [((3, 5, 4), 1), ((4, 7), -1)]:
            x = leaf(*shape, seed=20, scale=2.0)
            y = op(x, dim)
            gy, (gx,) = grads(y, (x,), 21)
            shape_tag = "x".join(map(str, shape))
            write(f"{op_name}_{shape_tag}_dim{dim}",
                  [("input", x), ("output", y), ("grad_output", gy), ("grad_input", gx),
                   ("param.dim", dim)])


def attention_cases():
    """softmax(q k^T / sqrt(d)) v over the last two dims, d = q's (and k's) last dim.

    Composed by hand: torch 1.13 has no F.scaled_dot_product_attention. No mask, no dropout.
    """
    cases = [
        # q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv]: Lq != Lk and Dv != D on purpose.
        ("attention_b2_h2_lq5_lk6_d4_dv3", (2, 2, 5, 4), (2, 2, 6, 4), (2, 2, 6, 3)),
        # Single head, 3-D tensors [B, L, D].
        ("attention_b2_l9_d8", (2, 9, 8), (2, 9, 8), (2, 9, 8)),
    ]
    for case, q_shape, k_shape, v_shape in cases:
        q, k, v = leaf(*q_shape, seed=22), leaf(*k_shape, seed=23), leaf(*v_shape, seed=24)
        scale = q_shape[-1] ** 0.5
        y = torch.softmax(q @ k.transpose(-2, -1) / scale, dim=-1) @ v
        gy, (gq, gk, gv) = grads(y, (q, k, v), 25)
        write(case, [("q", q), ("k", k), ("v", v), ("output", y), ("grad_output", gy),
                     ("grad_q", gq), ("grad_k", gk), ("grad_v", gv)])


def cross_entropy_cases():
    """F.cross_entropy(logits, int64 class targets). Class dim is 1; 'mean' divides by the number
    of targets (N for [N, C], N*H*W for [N, C, H, W]). label_smoothing eps follows torch:
    loss_i = (1 - eps) * nll_i + eps * mean_over_classes(-log_softmax_i).
    The output is the scalar loss; grad_output is a random scalar.
    param.reduction (1 mean, 2 sum), param.label_smoothing (float64)."""
    cases = [
        # case, logits shape, target shape, reduction, label_smoothing
        ("cross_entropy_6x5_mean", (6, 5), (6,), "mean", 0.0),
        ("cross_entropy_6x5_sum", (6, 5), (6,), "sum", 0.0),
        ("cross_entropy_2x4x3x3_mean", (2, 4, 3, 3), (2, 3, 3), "mean", 0.0),
        ("cross_entropy_6x5_mean_smooth01", (6, 5), (6,), "mean", 0.1),
    ]
    for case, shape, target_shape, reduction, smoothing in cases:
        x = leaf(*shape, seed=27, scale=2.0)
        torch.manual_seed(28)
        target = torch.randint(0, shape[1], target_shape)  # int64
        y = F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing)
        gy, (gx,) = grads(y, (x,), 29)
        write(case, [("input", x), ("target", target), ("output", y), ("grad_output", gy),
                     ("grad_input", gx), ("param.reduction", REDUCTION_CODE[reduction]),
                     ("param.label_smoothing", smoothing)])


def kl_div_cases():
    """F.kl_div(input, target, reduction, log_target) with input = log_softmax(randn [4, 6]) and
    target = softmax(randn [4, 6]) (log_softmax when log_target). Both are leaves: gradients are
    taken w.r.t. input and target directly, not through the (log_)softmax that produced them.
    Pointwise loss: target * (log(target) - input), or exp(target) * (target - input) if log_target.
    Reductions: 'sum'; 'mean' = sum / numel (torch 1.13 semantics, it warns about it);
    'batchmean' = sum / N. param.reduction (1 mean, 2 sum, 3 batchmean), param.log_target (0/1)."""
    cases = [
        ("kl_div_batchmean", "batchmean", False),
        ("kl_div_sum", "sum", False),
        ("kl_div_mean", "mean", False),
        ("kl_div_batchmean_log_target", "batchmean", True),
    ]
    for case, reduction, log_target in cases:
        torch.manual_seed(30)
        inp = torch.log_softmax(torch.randn(4, 6), dim=1).requires_grad_()
        raw = torch.randn(4, 6)
        target = torch.log_softmax(raw, dim=1) if log_target else torch.softmax(raw, dim=1)
        target.requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the 'mean' vs 'batchmean' notice
            y = F.kl_div(inp, target, reduction=reduction, log_target=log_target)
        gy, (gi, gt) = grads(y, (inp, target), 31)
        write(case, [("input", inp), ("target", target), ("output", y), ("grad_output", gy),
                     ("grad_input", gi), ("grad_target", gt),
                     ("param.reduction", REDUCTION_CODE[reduction]),
                     ("param.log_target", int(log_target))])


FAMILIES = [conv2d_cases, conv_transpose2d_cases, group_norm_cases, batch_norm_cases,
            bilinear_cases, softmax_cases, attention_cases, cross_entropy_cases, kl_div_cases]


# ----------------------------------------------------------------------------------------------
# Reader and --check (struct + numpy only, independent of the writer)
# ----------------------------------------------------------------------------------------------

def read_golden(path):
    """Parses one golden file into a list of (name, numpy array) in file order."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC:
        raise ValueError(f"{path}: bad magic {data[:8]!r}")
    (count,), pos = struct.unpack_from("<I", data, 8), 12
    tensors = []
    for _ in range(count):
        (name_len,) = struct.unpack_from("<I", data, pos)
        pos += 4
        name = data[pos:pos + name_len].decode("utf-8")
        pos += name_len
        code, ndim = struct.unpack_from("<II", data, pos)
        pos += 8
        if code not in NUMPY_DTYPE:
            raise ValueError(f"{path}: {name} has unknown dtype code {code}")
        shape = struct.unpack_from("<%dq" % ndim, data, pos)
        pos += 8 * ndim
        numel = int(np.prod(shape, dtype=np.int64))  # 1 for ndim 0
        dtype = NUMPY_DTYPE[code]
        if pos + numel * dtype.itemsize > len(data):
            raise ValueError(f"{path}: {name} is truncated")
        array = np.frombuffer(data, dtype, numel, pos).reshape(shape)
        pos += numel * dtype.itemsize
        tensors.append((name, array))
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes")
    return tensors


def check():
    """Re-reads every file in data/ and verifies it round-trips to exactly what was written
    (names, order, dtypes, shapes, bits), that no stale files are left, and the size limits."""
    on_disk = sorted(os.path.join(OUT, f) for f in os.listdir(OUT) if f.endswith(".bin"))
    stale = [p for p in on_disk if p not in written]
    assert not stale, f"files not produced by this script: {stale}"
    total = 0
    for path, expected in written.items():
        got = read_golden(path)
        assert [n for n, _ in got] == [n for n, _ in expected], path
        for (name, array), (_, t) in zip(got, expected):
            want = t.numpy()
            assert array.dtype == NUMPY_DTYPE[DTYPE_CODE[t.dtype]], (path, name, array.dtype)
            assert array.shape == want.shape, (path, name, array.shape, want.shape)
            # Bitwise equality (array_equal would call NaN != NaN and -0.0 == 0.0).
            assert array.tobytes() == want.astype(array.dtype).tobytes(), (path, name)
            assert np.all(np.isfinite(array)), (path, name)
        size = os.path.getsize(path)
        assert size < MAX_FILE_BYTES, f"{path} is {size} bytes"
        total += size
    assert total < MAX_TOTAL_BYTES, f"total {total} bytes"
    print(f"checked {len(written)} files: all round-trip, {total} bytes in total")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="after writing, re-read every file and verify it round-trips")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for family in FAMILIES:
        family()
    total = sum(os.path.getsize(p) for p in written)
    print(f"wrote {len(written)} files, {total} bytes, to {OUT}")
    if args.check:
        check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
