"""The safetensors writer and reader, and small helpers, shared by the make_*_goldens.py scripts.

One copy for all the scripts, so that every golden file has the same layout and --check re-reads
them all with the same reader. Written by hand (struct + json + numpy, not the safetensors package) so that every byte of a
golden is fixed here:

  u64 LE header length N, then N bytes of JSON header
  {name: {"dtype": "F32"|"F64"|"I64", "shape": [...], "data_offsets": [begin, end]},
   "__metadata__": {str: str}}, keys sorted, separators (",", ":"), padded with spaces so that N is
  a multiple of 8; then the raw little-endian data of the tensors in sorted-name order, contiguous,
  no gaps. 0-d tensors have shape [].

The reader is independent of the writer (it parses the bytes and checks the layout), so --check
catches a writer that drifts from the layout above. numpy only: torch is imported on use, since
make_metric_goldens.py runs without it.
"""
import hashlib
import json
import os
import struct

import numpy as np

# numpy dtype (without byte order) -> safetensors code, and code -> little-endian numpy dtype
CODE_OF_DTYPE = {"f4": "F32", "f8": "F64", "i8": "I64"}
DTYPE_OF_CODE = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}


def as_array(value):
    """A C-ordered numpy array of a torch tensor, numpy array or Python number / list."""
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().numpy()
    return np.array(value, order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)


def write_safetensors(path, tensors, metadata):
    """Writes {name: tensor} (see as_array) with metadata {str: str}; returns {name: numpy array}
    holding exactly the data written, for comparison with what a reader gets back."""
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    header, blobs, offset, arrays = {}, [], 0, {}
    for name in sorted(tensors):
        array = as_array(tensors[name])
        code = CODE_OF_DTYPE[array.dtype.str[1:]]
        array = array.astype(DTYPE_OF_CODE[code])
        raw = array.tobytes(order="C")
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
        arrays[name] = array
    header["__metadata__"] = metadata
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return arrays


def read_safetensors(path):
    """Returns ({name: numpy array}, metadata), asserting the layout: header length a multiple
    of 8, metadata {str: str}, tensors contiguous in sorted-name order, no gap or trailing bytes."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    assert n % 8 == 0 and 8 + n <= len(data), (path, n)
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None)
    assert isinstance(metadata, dict), path
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    body, tensors, expect = data[8 + n:], {}, 0
    for name in sorted(header):
        info = header[name]
        dtype = DTYPE_OF_CODE[info["dtype"]]
        begin, end = info["data_offsets"]
        numel = int(np.prod(info["shape"], dtype=np.int64))
        assert begin == expect and end - begin == numel * dtype.itemsize, (path, name, begin, end)
        tensors[name] = np.frombuffer(body, dtype, numel, begin).reshape(tuple(info["shape"]))
        expect = end
    assert expect == len(body), (path, "gap or trailing bytes", expect, len(body))
    return tensors, metadata


class GoldenFiles:
    """The files a script writes to one directory, remembered (data and metadata) so that --check
    can compare each re-read file with what was meant to be in it."""

    def __init__(self, directory, dtypes=None):
        self.directory = directory
        self.dtypes = dtypes  # if given, the only numpy dtypes a tensor may have before writing
        self.written = {}  # path -> ({name: numpy array}, metadata), in writing order

    def write(self, filename, tensors, metadata):
        if self.dtypes is not None:
            for name, value in tensors.items():
                dtype = as_array(value).dtype
                assert dtype in self.dtypes, (name, dtype)
        path = os.path.join(self.directory, filename)
        self.written[path] = (write_safetensors(path, tensors, metadata), metadata)
        return path

    def total_bytes(self):
        return sum(os.path.getsize(path) for path in self.written)

    def check_round_trip(self, path, max_bytes=None):
        """Re-reads a written file and asserts it holds exactly what was written (names, dtypes,
        shapes, bits, metadata), all finite, and under max_bytes if given; prints its size and
        hash; returns (tensors, size in bytes)."""
        expected, metadata = self.written[path]
        got, got_metadata = read_safetensors(path)
        assert got_metadata == metadata, path
        assert sorted(got) == sorted(expected), path
        for name, want in expected.items():
            array = got[name]
            assert array.dtype == want.dtype and array.shape == want.shape, (path, name)
            assert array.tobytes() == want.tobytes(), (path, name)
            assert np.all(np.isfinite(array)), (path, name)
        size = os.path.getsize(path)
        assert max_bytes is None or size < max_bytes, (path, size)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        print(f"  {os.path.basename(path)}: {size} bytes, {len(got)} tensors, sha256 {digest}")
        return got, size

    def check_round_trips(self, max_bytes=None):
        """check_round_trip of every written file, in writing order; returns ({file name:
        tensors}, total size in bytes)."""
        loaded, total = {}, 0
        for path in self.written:
            loaded[os.path.basename(path)], size = self.check_round_trip(path, max_bytes)
            total += size
        return loaded, total


def seed_of(name):
    """A 32-bit seed derived from a name, so each case's random inputs are fixed by its name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def t64(a, grad=False):
    """A float64 torch tensor of a (array-like), optionally requiring grad."""
    import torch
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)
