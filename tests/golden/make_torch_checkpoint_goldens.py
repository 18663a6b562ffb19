#!/usr/bin/python3
"""Writes the torch.save checkpoints that tests/nn/torch_checkpoint_test.cpp reads with our own
reader (nn/torch_checkpoint.h), each next to the values it must load to.

Run with Debian's PyTorch 1.13 (only /usr/bin/python3 has torch):

    /usr/bin/python3 tests/golden/make_torch_checkpoint_goldens.py           # (re)write the files
    /usr/bin/python3 tests/golden/make_torch_checkpoint_goldens.py --check   # ... and verify them

Files in tests/golden/data/ (bit-for-bit reproducible: fixed seeds, and torch.save writes no
timestamps; the zip's archive name is the file's stem):

  torch_ckpt_<case>.pt           written by torch.save (zip format, pickle protocol 2, or 4 for
                                 the "protocol4" case)
  torch_ckpt_<case>.safetensors  what the reader must return: every tensor reachable through
                                 dicts (str or int keys), lists and tuples, named by its path joined
                                 with dots, as a contiguous copy widened like safetensors::load
                                 (F16/BF16 -> F32, int32/16/8, uint8, bool -> I64). __metadata__:
                                 "names" (JSON list: the names in the reader's order, the pickle's),
                                 "torch_dtypes" (JSON {name: original torch dtype}), "description".

Cases: state_dict (Linear + Conv2d + GroupNorm), ddpm_style (pytorch-ddpm's checkpoint dict
with net_model / ema_model / step / x_T / optim = Adam state after one step), views_dtypes (views
of one shared storage, every dtype, 0-d / empty / stride-0 tensors, a Parameter, lists, tuples,
int keys), opaque (argparse.Namespace holding a tensor, numpy scalar and array, set, bytes, a
big int, a tuple key: all skipped), protocol4 (pickle protocol 4: FRAME, MEMOIZE, STACK_GLOBAL).

Two files have no .safetensors, since the reader must refuse them:

  torch_ckpt_legacy.pt     torch < 1.6's non-zip format (_use_new_zipfile_serialization=False)
  torch_ckpt_os_system.pt  a zip laid out like torch.save's whose data.pkl (written opcode by
                           opcode here, never by pickling an object, and never unpickled) is
                           {"weight": <tensor>, "payload": os.system("echo ...")}.

--check re-reads every file: torch.load of each .pt (except os_system, which is only
disassembled with pickletools.genops) flattened again must equal its .safetensors bit for bit;
every zip entry is stored uncompressed; the sizes (< 20 KB each, < 100 KB in all) and no stale
torch_ckpt_* files.
"""
import argparse
import glob
import io
import json
import os
import pickletools
import re
import struct
import sys
import zipfile

import numpy as np
import torch
import torch.nn as nn

from safetensors_io import GoldenFiles, seed_of

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PREFIX = "torch_ckpt_"
MAX_FILE_BYTES, MAX_TOTAL_BYTES = 20_000, 100_000

goldens = GoldenFiles(OUT)
written_pt = []  # paths of the .pt files, in writing order
saved = {}  # case -> the object given to torch.save


def gen(case):
    return torch.Generator().manual_seed(seed_of(PREFIX + case))


def expected_value(t):
    """A tensor as the reader returns it: contiguous, F32/F64 kept, F16/BF16 widened to F32,
    every integer and bool type widened to I64."""
    t = t.detach().contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.to(torch.float32)
    if t.dtype in (torch.float32, torch.float64):
        return t.clone()
    return t.to(torch.int64)


def flatten(obj, name="", out=None):
    """[(name, tensor)] in the order the reader visits them (see nn/torch_checkpoint.h)."""
    out = [] if out is None else out
    if isinstance(obj, torch.Tensor):
        out.append((name, obj))
        return out
    if isinstance(obj, dict):
        items = [(k, v) for k, v in obj.items()
                 if isinstance(k, str) or (isinstance(k, int) and not isinstance(k, bool))]
    elif type(obj) in (list, tuple):
        items = list(enumerate(obj))
    else:
        return out  # numbers, strings, None, opaque objects (and whatever they hold)
    for key, value in items:
        flatten(value, f"{name}.{key}" if name else str(key), out)
    return out


def write_case(case, obj, description, protocol=2):
    path = os.path.join(OUT, f"{PREFIX}{case}.pt")
    torch.save(obj, path, pickle_protocol=protocol)
    written_pt.append(path)
    saved[case] = obj
    pairs = flatten(obj)
    assert len({n for n, _ in pairs}) == len(pairs), case
    metadata = {"names": json.dumps([n for n, _ in pairs]),
                "torch_dtypes": json.dumps({n: str(t.dtype) for n, t in pairs}),
                "description": description}
    goldens.write(f"{PREFIX}{case}.safetensors", {n: expected_value(t) for n, t in pairs}, metadata)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)


def tiny_model(case):
    torch.manual_seed(seed_of(PREFIX + case + ".model"))
    model = Tiny()
    with torch.no_grad():  # GroupNorm starts at weight 1, bias 0: make every value distinct
        model.norm.weight.copy_(torch.randn(4, generator=gen(case + ".norm")))
        model.norm.bias.copy_(torch.randn(4, generator=gen(case + ".norm_bias")))
    return model


def case_state_dict():
    write_case("state_dict", tiny_model("state_dict").state_dict(),
               "state_dict of Linear(4,3) fc, Conv2d(2,4,3) conv, GroupNorm(2,4) norm, float32")


def case_ddpm_style():
    net = tiny_model("ddpm_style")
    ema = tiny_model("ddpm_style.ema")
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = sum((p ** 2).sum() for p in net.parameters())
    loss.backward()
    optim.step()
    obj = {"net_model": net.state_dict(), "ema_model": ema.state_dict(), "step": 7,
           "x_T": torch.randn(2, 2, 4, 4, generator=gen("ddpm_style.x_T")),
           "optim": optim.state_dict()}
    write_case("ddpm_style", obj,
               "pytorch-ddpm checkpoint dict: net_model, ema_model (state_dicts), step 7 (skipped), "
               "x_T, optim (Adam after one step: state.<i>.{step,exp_avg,exp_avg_sq} are tensors, "
               "param_groups holds none)")


def case_views_dtypes():
    g = gen("views_dtypes")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.5 - 3.0
    halves = torch.tensor([[1.0, -2.5], [65504.0, 2.0 ** -20], [-0.0, 0.1]], dtype=torch.float16)
    obj = {
        "base": base,
        "transpose": base.t(),               # strides (1, 6)
        "slice": base[1:3, 2:5],             # offset 8, strides (6, 1)
        "strided": base[:, ::2],             # strides (6, 2)
        "row": base[2],                      # offset 12
        "expanded": torch.randn(3, generator=g).expand(2, 3),  # stride 0
        "f64": torch.randn(2, 3, generator=g, dtype=torch.float64),
        "f16": halves,
        "f16_transpose": halves.t(),
        "bf16": torch.randn(5, generator=g).to(torch.bfloat16),
        "i64": torch.tensor([0, -1, -(2 ** 40), 2 ** 62, 7], dtype=torch.int64),
        "i32": torch.tensor([[-(2 ** 31), 2 ** 31 - 1], [5, -6]], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767, 3], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, -1], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8).reshape(3, 1),
        "bool": torch.tensor([True, False, True, True]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "param": nn.Parameter(torch.randn(2, generator=g)),
        "list": [torch.randn(2, generator=g), torch.arange(3)],
        "nested": {"tuple": (torch.randn(1, 2, generator=g), {"deep": base[3, 1:4]})},
        "ints": {3: torch.ones(2), -1: torch.zeros(1)},
    }
    write_case("views_dtypes", obj,
               "views sharing one float32 storage (transpose, slice, strided, row), stride-0, "
               "f64/f16/bf16/i64/i32/i16/i8/u8/bool, 0-d, empty, a Parameter, list / tuple / int keys")


def case_opaque():
    g = gen("opaque")
    ns = argparse.Namespace(lr=2e-4, name="run", hidden=torch.ones(2))
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 3, generator=g))
        model.bias.copy_(torch.randn(2, generator=g))
    obj = {"args": ns, "model": model.state_dict(), "np_scalar": np.float64(0.5),
           "np_array": np.arange(3), "set": {1, 2}, "none": None, "text": "hello", "real": 1.5,
           "raw": b"xy", "big": 2 ** 70, "by_tuple": {(1, 2): torch.ones(1)}, "by_bool": {True: torch.ones(1)},
           "w": torch.randn(2, 2, generator=g)}
    write_case("opaque", obj,
               "tensors next to opaque values (argparse.Namespace holding a tensor, numpy scalar and "
               "array, set, None, str, float, bytes, 2**70, a tuple key, a bool key): only model.* and w load")


def case_protocol4():
    obj = {"model": tiny_model("protocol4").state_dict(),
           "extra": [torch.randn(2, generator=gen("protocol4")), {"half": torch.ones(2, dtype=torch.float16)}]}
    write_case("protocol4", obj, "state_dict and a list saved with pickle_protocol=4", protocol=4)


def case_legacy():
    path = os.path.join(OUT, f"{PREFIX}legacy.pt")
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer, _use_new_zipfile_serialization=False)
    # Its storage key is the storage's address (str(storage._cdata)): replace it, where the
    # pickles name it (BINUNICODE), by a fixed one of the same length, so that the file is fixed.
    data = buffer.getvalue()
    keys = set(re.findall(rb"X(.{4})([0-9]{8,20})", data, re.DOTALL))
    keys = {k for length, k in keys if struct.unpack("<I", length)[0] == len(k)}
    assert len(keys) == 1, keys
    key = keys.pop()
    with open(path, "wb") as f:
        f.write(data.replace(b"X" + struct.pack("<I", len(key)) + key,
                             b"X" + struct.pack("<I", len(key)) + b"1" * len(key)))
    written_pt.append(path)


def os_system_pickle():
    """{"weight": _rebuild_tensor_v2(storage 0, ...), "payload": os.system("echo ...")}, opcode
    by opcode (pickle protocol 2), never produced by pickling an object."""
    def unicode(s):
        b = s.encode()
        return b"X" + struct.pack("<I", len(b)) + b
    storage_pid = (b"(" + unicode("storage") + b"ctorch\nFloatStorage\n" + unicode("0") +
                   unicode("cpu") + b"K\x04" + b"t" + b"Q")
    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n" + b"(" + storage_pid + b"K\x00" +
              b"K\x02K\x02\x86" + b"K\x02K\x01\x86" + b"\x89" +
              b"ccollections\nOrderedDict\n)R" + b"t" + b"R")
    payload = b"cos\nsystem\n" + unicode("echo diffkd-test-payload-must-never-run") + b"\x85R"
    return (b"\x80\x02}(" + unicode("weight") + tensor + unicode("payload") + payload + b"u.")


def case_os_system():
    path = os.path.join(OUT, f"{PREFIX}os_system.pt")
    stem = f"{PREFIX}os_system"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in [(f"{stem}/data.pkl", os_system_pickle()),
                           (f"{stem}/data/0", np.arange(4, dtype="<f4").tobytes()),
                           (f"{stem}/version", b"3\n")]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)
    written_pt.append(path)


def check():
    _, total = goldens.check_round_trips(MAX_FILE_BYTES)
    for path in written_pt:
        size = os.path.getsize(path)
        assert size < MAX_FILE_BYTES, (path, size)
        total += size
        with open(path, "rb") as f:
            head = f.read(16)
        print(f"  {os.path.basename(path)}: {size} bytes")
        if path.endswith("legacy.pt"):
            assert head.startswith(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"), head
            assert torch.equal(torch.load(path)["w"], torch.ones(2)), path  # still a valid file
            continue
        with zipfile.ZipFile(path) as z:
            assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist()), path
            assert z.testzip() is None, path
            if path.endswith("os_system.pt"):  # disassembled only, never unpickled
                ops = [(op.name, arg) for op, arg, _ in
                       pickletools.genops(io.BytesIO(z.read(f"{PREFIX}os_system/data.pkl")))]
                assert ("GLOBAL", "os system") in ops, ops
                continue
    for case, obj in saved.items():
        loaded = torch.load(os.path.join(OUT, f"{PREFIX}{case}.pt"))
        got = flatten(loaded)
        expected, metadata = goldens.written[os.path.join(OUT, f"{PREFIX}{case}.safetensors")]
        assert [n for n, _ in got] == json.loads(metadata["names"]), case
        assert [n for n, _ in got] == [n for n, _ in flatten(obj)], case
        for name, tensor in got:
            want = expected[name]
            have = expected_value(tensor).numpy()
            assert have.dtype == want.dtype and have.shape == want.shape, (case, name)
            assert have.tobytes() == want.tobytes(), (case, name)
    stale = sorted(set(glob.glob(os.path.join(OUT, PREFIX + "*"))) -
                   set(goldens.written) - set(written_pt))
    assert not stale, f"stale files: {stale}"
    assert total < MAX_TOTAL_BYTES, total
    print(f"checked {len(written_pt)} checkpoints and {len(goldens.written)} expected files, "
          f"{total} bytes in total")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="after writing, re-read and verify every file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for make in [case_state_dict, case_ddpm_style, case_views_dtypes, case_opaque, case_protocol4,
                 case_legacy, case_os_system]:
        make()
    print(f"wrote {len(written_pt)} checkpoints and {len(goldens.written)} expected files to {OUT}")
    if args.check:
        check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
