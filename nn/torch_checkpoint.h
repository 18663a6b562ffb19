#pragma once
// PyTorch checkpoints (`torch.save`, the zip format of torch >= 1.6: `.pt`, `.pth`, `.bin`), read
// by our own code so that foreign teachers load without Python. Nothing in the file is ever run:
// the pickle is interpreted by a small VM that only builds data (dicts, lists, numbers, strings)
// and tensors, and knows by name the few torch functions that rebuild tensors.
//
//   ZIP archive, entries stored uncompressed:
//     <archive>/data.pkl        pickle (protocol 2 by default) of the saved object
//     <archive>/data/<key>      raw little-endian bytes of each storage
//     <archive>/version, maybe <archive>/byteorder ("little")
//   A tensor in data.pkl is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...),
//   its storage a persistent id ("storage", torch.FloatStorage, "<key>", "cpu", numel).
//
// What load() gives: every tensor reachable through dicts, lists and tuples, under its path joined
// by dots, in the pickle's order: {"net_model": state_dict, "ema_model": ..., "step": 5, "x_T": t}
// gives net_model.<name>, ema_model.<name> and x_T; a list [a, b] under "w" gives w.0 and w.1; an
// optimizer state_dict gives optim.state.<int>.exp_avg etc. Dict keys are str or int; an entry
// under any other key (None, tuple, ...) is skipped. Numbers, strings, None and opaque objects
// are skipped, and so is everything inside an opaque object; a checkpoint without tensors loads as
// an empty list. The top level must be a dict (or list / tuple), two paths flattening to one name
// are an error.
//
// Globals (classes and functions the pickle names), by kind:
//   * the tensor whitelist: collections.OrderedDict (and defaultdict), torch._utils
//     _rebuild_tensor / _rebuild_tensor_v2 / _rebuild_tensor_v3 / _rebuild_parameter /
//     _rebuild_parameter_with_state, torch._tensor._rebuild_from_type_v2, the torch.*Storage
//     classes, the torch dtypes (torch.float32, ...);
//   * refused, with a one-line error naming the global: anything that can run code or touch the
//     system (os, posix, subprocess, sys, builtins.eval/exec/getattr/__import__, importlib, pickle,
//     marshal, ctypes, socket, shutil, runpy, functools, operator, types, ...), torch functions
//     we do not know (quantized, sparse, nested, meta or numpy-backed tensors, torch.storage.
//     _load_from_bytes, i.e. a nested legacy pickle) and pickled torch.nn modules (torch.save of a
//     whole model: save model.state_dict() instead). This list makes hostile files fail loudly;
//     safety itself does not depend on it, since no global is ever called;
//   * anything else (argparse.Namespace, numpy scalars and arrays, user classes, sets, ...) is an
//     opaque value: calling or instantiating it gives another opaque value, and it is skipped.
//
// Dtypes: F32 and F64 load as they are, F16 and BF16 widen to F32, int64 loads as I64 and
// int32 / int16 / int8 / uint8 / bool widen to I64 (as safetensors::load does). Views sharing a
// storage (any non-negative strides, offsets) are copied into fresh contiguous tensors, one
// storage in memory at a time. The CRC-32 of every entry read (data.pkl, each storage a tensor
// uses) is checked. Limits against hostile files: the copied tensors may take at most 8 x the file
// size + 256 MiB (a stride-0 view of one element cannot ask for terabytes), and flattening stops
// at 200 levels of nesting, 16M visited values or 64 MiB of names. The legacy (torch < 1.6)
// non-zip format is refused with a hint to re-save it.
//
// Example:
//   const safetensors::Contents ckpt = torch_checkpoint::load("ckpt.pt");
//   const Tensor& w = ckpt.at("ema_model.head.weight");

#include <string>

#include "nn/safetensors.h"

namespace diffkd::torch_checkpoint {

// Reads and validates a checkpoint; every problem (not a zip, truncated, compressed entry, bad
// or unsupported pickle, a refused global, missing storage, a view past its storage, unsupported
// dtype, CRC mismatch) is a one-line diffkd::Error starting with the path. `metadata` is empty.
safetensors::Contents load(const std::string& path);

// True if the file starts with the zip signature "PK\x03\x04" and has an entry named data.pkl or
// ending in "/data.pkl" (by its central directory, or, when that cannot be read, by its first
// entry, so that a truncated checkpoint still goes to load() for a precise error). Never throws.
bool looks_like_torch_checkpoint(const std::string& path);

}  // namespace diffkd::torch_checkpoint
