#!/usr/bin/python3
"""Writes the PyTorch reference files that tests/golden/*_test.cpp read.

Run with Debian's torch:  /usr/bin/python3 tests/golden/make_goldens.py [--check]

Each case is one small file in tests/golden/data/, format (little-endian):
  b"DKGOLD01", u32 count, then per tensor:
  u32 name_len, name (UTF-8), u32 dtype (0 f32, 1 f64, 2 i64), u32 ndim, i64 shape[ndim], data.
Scalar parameters of a case are tensors named "param.*". Forward values are computed in float32;
gradients come from torch.autograd.grad with a stored random grad_output. --check re-reads every
file and verifies it parses and matches what was written.
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CODES = {torch.float32: 0, torch.float64: 1, torch.int64: 2}
NP = {0: np.float32, 1: np.float64, 2: np.int64}
written = {}


def write(name, tensors):
    """tensors: list of (name, torch tensor or python scalar)."""
    blob = [b"DKGOLD01", struct.pack("<I", len(tensors))]
    for key, value in tensors:
        if not torch.is_tensor(value):
            value = torch.tensor(value, dtype=torch.int64 if isinstance(value, int) else torch.float64)
        value = value.detach().contiguous()
        code = CODES[value.dtype]
        raw = key.encode()
        blob += [struct.pack("<I", len(raw)), raw, struct.pack("<II", code, value.dim())]
        blob += [struct.pack("<q", s) for s in value.shape]
        blob.append(value.numpy().astype(NP[code]).tobytes())
    path = os.path.join(OUT, name + ".bin")
    with open(path, "wb") as f:
        f.write(b"".join(blob))
    written[path] = [(k, v.detach().clone() if torch.is_tensor(v) else v) for k, v in tensors]


def grads(out, inputs, seed):
    torch.manual_seed(seed)
    gy = torch.randn(out.shape)
    return gy, torch.autograd.grad(out, inputs, gy)


def leaf(*shape, seed, scale=1.0, shift=0.0):
    torch.manual_seed(seed)
    return (torch.randn(*shape) * scale + shift).requires_grad_()


def conv2d_cases():
    for n, c, h, w, o, k, s, p in [(2, 3, 7, 6, 4, 3, 1, 1), (2, 3, 7, 6, 4, 3, 2, 1),
                                   (2, 4, 5, 5, 3, 1, 1, 0), (2, 3, 8, 8, 5, 4, 2, 1),
                                   (1, 16, 9, 9, 13, 3, 1, 1)]:
        x, wt, b = leaf(n, c, h, w, seed=1), leaf(o, c, k, k, seed=2, scale=0.3), leaf(o, seed=3)
        y = F.conv2d(x, wt, b, stride=s, padding=p)
        gy, (gx, gw, gb) = grads(y, (x, wt, b), 4)
        write(f"conv2d_n{n}_c{c}_h{h}_w{w}_o{o}_k{k}_s{s}_p{p}",
              [("input", x), ("weight", wt), ("bias", b), ("output", y), ("grad_output", gy),
               ("grad_input", gx), ("grad_weight", gw), ("grad_bias", gb),
               ("param.stride", torch.tensor([s, s])), ("param.padding", torch.tensor([p, p]))])


def conv_transpose2d_cases():
    for n, c, h, w, o, k, s, p, op in [(2, 3, 4, 5, 4, 3, 2, 1, 1), (2, 3, 4, 4, 2, 4, 2, 1, 0),
                                       (1, 2, 5, 3, 3, 3, 1, 0, 0)]:
        x, wt, b = leaf(n, c, h, w, seed=5), leaf(c, o, k, k, seed=6, scale=0.3), leaf(o, seed=7)
        y = F.conv_transpose2d(x, wt, b, stride=s, padding=p, output_padding=op)
        gy, (gx, gw, gb) = grads(y, (x, wt, b), 8)
        write(f"conv_transpose2d_n{n}_c{c}_h{h}_w{w}_o{o}_k{k}_s{s}_p{p}_op{op}",
              [("input", x), ("weight", wt), ("bias", b), ("output", y), ("grad_output", gy),
               ("grad_input", gx), ("grad_weight", gw), ("grad_bias", gb),
               ("param.stride", torch.tensor([s, s])), ("param.padding", torch.tensor([p, p])),
               ("param.output_padding", torch.tensor([op, op]))])


def group_norm_cases():
    for n, c, h, w, g, eps in [(2, 6, 5, 4, 3, 1e-5), (3, 8, 4, 4, 8, 1e-5), (2, 4, 3, 3, 1, 1e-6)]:
        x = leaf(n, c, h, w, seed=9, scale=2.0, shift=0.5)
        wt, b = leaf(c, seed=10), leaf(c, seed=11)
        y = F.group_norm(x, g, wt, b, eps)
        gy, (gx, gw, gb) = grads(y, (x, wt, b), 12)
        write(f"group_norm_n{n}_c{c}_h{h}_w{w}_g{g}",
              [("input", x), ("weight", wt), ("bias", b), ("output", y), ("grad_output", gy),
               ("grad_input", gx), ("grad_weight", gw), ("grad_bias", gb),
               ("param.groups", g), ("param.eps", eps)])


def batch_norm_cases():
    for name, shape, training in [("batch_norm2d_train_n4_c3_h5_w5", (4, 3, 5, 5), True),
                                  ("batch_norm2d_eval_n4_c3_h5_w5", (4, 3, 5, 5), False),
                                  ("batch_norm1d_train_n6_c5", (6, 5), True)]:
        c = shape[1]
        x = leaf(*shape, seed=13, scale=1.5, shift=0.3)
        wt, b = leaf(c, seed=14), leaf(c, seed=15)
        torch.manual_seed(16)
        rm_in, rv_in = torch.randn(c) * 0.1, torch.rand(c) + 0.5
        rm, rv = rm_in.clone(), rv_in.clone()
        y = F.batch_norm(x, rm, rv, wt, b, training=training, momentum=0.1, eps=1e-5)
        gy, (gx, gw, gb) = grads(y, (x, wt, b), 17)
        write(name, [("input", x), ("weight", wt), ("bias", b), ("running_mean_in", rm_in),
                     ("running_var_in", rv_in), ("running_mean_out", rm), ("running_var_out", rv),
                     ("output", y), ("grad_output", gy), ("grad_input", gx), ("grad_weight", gw),
                     ("grad_bias", gb), ("param.training", int(training)),
                     ("param.momentum", 0.1), ("param.eps", 1e-5)])


def bilinear_cases():
    for h, w, oh, ow in [(5, 4, 10, 8), (5, 4, 7, 9), (8, 8, 3, 5)]:
        x = leaf(2, 3, h, w, seed=18)
        y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
        gy, (gx,) = grads(y, (x,), 19)
        write(f"bilinear_h{h}_w{w}_to_{oh}x{ow}",
              [("input", x), ("output", y), ("grad_output", gy), ("grad_input", gx),
               ("param.size", torch.tensor([oh, ow]))])


def softmax_cases():
    for fn_name, fn in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
        for shape, dim in [((3, 5, 4), 1), ((4, 7), -1)]:
            x = leaf(*shape, seed=20, scale=2.0)
            y = fn(x, dim)
            gy, (gx,) = grads(y, (x,), 21)
            tag = "x".join(map(str, shape))
            write(f"{fn_name}_{tag}_dim{dim}", [("input", x), ("output", y), ("grad_output", gy),
                                                ("grad_input", gx), ("param.dim", dim)])


def attention_cases():
    for name, qs, ks, vs in [("attention_b2_h2_lq5_lk6_d4_dv3", (2, 2, 5, 4), (2, 2, 6, 4), (2, 2, 6, 3)),
                             ("attention_b2_l9_d8", (2, 9, 8), (2, 9, 8), (2, 9, 8))]:
        q, k, v = leaf(*qs, seed=22), leaf(*ks, seed=23), leaf(*vs, seed=24)
        y = torch.softmax(q @ k.transpose(-2, -1) / qs[-1] ** 0.5, -1) @ v
        gy, (gq, gk, gv) = grads(y, (q, k, v), 25)
        write(name, [("q", q), ("k", k), ("v", v), ("output", y), ("grad_output", gy),
                     ("grad_q", gq), ("grad_k", gk), ("grad_v", gv)])


def cross_entropy_cases():
    torch.manual_seed(26)
    for name, shape, tshape, reduction, smoothing in [
            ("cross_entropy_6x5_mean", (6, 5), (6,), "mean", 0.0),
            ("cross_entropy_6x5_sum", (6, 5), (6,), "sum", 0.0),
            ("cross_entropy_2x4x3x3_mean", (2, 4, 3, 3), (2, 3, 3), "mean", 0.0),
            ("cross_entropy_6x5_mean_smooth01", (6, 5), (6,), "mean", 0.1)]:
        x = leaf(*shape, seed=27, scale=2.0)
        torch.manual_seed(28)
        t = torch.randint(0, shape[1], tshape)
        y = F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing)
        gy, (gx,) = grads(y, (x,), 29)
        write(name, [("input", x), ("target", t), ("output", y), ("grad_output", gy),
                     ("grad_input", gx), ("param.reduction", {"mean": 1, "sum": 2}[reduction]),
                     ("param.label_smoothing", smoothing)])


def kl_div_cases():
    for name, reduction, log_target in [("kl_div_batchmean", "batchmean", False),
                                        ("kl_div_sum", "sum", False), ("kl_div_mean", "mean", False),
                                        ("kl_div_batchmean_log_target", "batchmean", True)]:
        torch.manual_seed(30)
        inp = torch.log_softmax(torch.randn(4, 6), 1).requires_grad_()
        raw = torch.randn(4, 6)
        tgt = (torch.log_softmax(raw, 1) if log_target else torch.softmax(raw, 1)).requires_grad_()
        y = F.kl_div(inp, tgt, reduction=reduction, log_target=log_target)
        gy, (gi, gt) = grads(y, (inp, tgt), 31)
        write(name, [("input", inp), ("target", tgt), ("output", y), ("grad_output", gy),
                     ("grad_input", gi), ("grad_target", gt),
                     ("param.reduction", {"mean": 1, "sum": 2, "batchmean": 3}[reduction]),
                     ("param.log_target", int(log_target))])


def check():
    for path, tensors in written.items():
        with open(path, "rb") as f:
            data = f.read()
        assert data[:8] == b"DKGOLD01", path
        count, = struct.unpack_from("<I", data, 8)
        pos = 12
        assert count == len(tensors), path
        for key, value in tensors:
            n, = struct.unpack_from("<I", data, pos)
            pos += 4
            assert data[pos:pos + n].decode() == key, (path, key)
            pos += n
            code, ndim = struct.unpack_from("<II", data, pos)
            pos += 8
            shape = struct.unpack_from("<" + "q" * ndim, data, pos)
            pos += 8 * ndim
            count_el = int(np.prod(shape)) if ndim else 1
            arr = np.frombuffer(data, NP[code], count_el, pos)
            pos += arr.nbytes
            expect = value.detach().numpy() if torch.is_tensor(value) else np.array(value)
            assert np.array_equal(arr.reshape(shape), expect.astype(NP[code]).reshape(shape)), (path, key)
        assert pos == len(data), path
    print(f"checked {len(written)} files")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for family in [conv2d_cases, conv_transpose2d_cases, group_norm_cases, batch_norm_cases,
                   bilinear_cases, softmax_cases, attention_cases, cross_entropy_cases, kl_div_cases]:
        family()
    total = sum(os.path.getsize(p) for p in written)
    print(f"wrote {len(written)} files, {total} bytes, to {OUT}")
    if args.check:
        check()


if __name__ == "__main__":
    sys.exit(main())
