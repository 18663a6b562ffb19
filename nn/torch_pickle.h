#pragma once
// The safe pickle VM behind nn/torch_checkpoint.h: it runs the data.pkl of a torch.save archive
// (the opcodes torch.save writes, each documented in CPython's Lib/pickletools.py, and the tensor
// rebuild functions of torch/_utils.py) and builds plain values (dicts, lists, numbers, strings)
// and references to tensor views of the archive's storages, without copying any tensor data.
// Nothing in the pickle is ever called: globals are names, looked up in the policy of classify()
// (torch_pickle.cpp; its kinds of globals are listed in nn/torch_checkpoint.h). It is a file of
// its own so that the part that decides what a hostile file may do can be read and reviewed alone;
// flattening the result and copying tensors out of their storages is nn/torch_checkpoint.cpp's.
//
// Example:
//   torch_pickle::Heap heap;
//   const torch_pickle::Value root = torch_pickle::unpickle(archive, *pkl, "archive/", heap);
//   if (root.kind == torch_pickle::Kind::Dict) ...  // heap.seqs[root.ref]: key, value, key, ...

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "nn/zip_archive.h"
#include "tensor/tensor.h"

namespace diffkd::torch_pickle {

// ---------------------------------------------------------------------------------------------
// Element types, as torch names them (storage classes, dtypes) and as they load

enum class Elem : uint8_t { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };

struct ElementType {
  Elem elem;
  const char* storage;  // torch.<storage> class
  const char* dtype;    // torch.<dtype> (and an alias, or "")
  const char* alias;
  uint64_t bytes;
  DType loaded_as;
};

// ---------------------------------------------------------------------------------------------
// Pickle values

enum class Kind : uint8_t {
  None, Bool, Int, BigInt, Float, Str, Bytes, List, Tuple, Dict, Set, Global, Storage, Tensor, Opaque
};

// A value on the VM's stack. Heavy parts live in the Heap's arenas, referred to by index, so that
// copies are cheap and a dict that holds itself is no reference cycle.
struct Value {
  Kind kind = Kind::None;
  int64_t number = 0;  // Bool, Int
  double real = 0;     // Float
  size_t ref = 0;      // Str / Bytes / Opaque: texts; List / Tuple / Dict / Set: seqs; Global,
                       // Storage, Tensor: their arena
};

// What a global is to us (see classify()).
enum class Role : uint8_t {
  Dict,                // collections.OrderedDict / defaultdict: called, makes a dict
  RebuildTensor,       // torch._utils._rebuild_tensor (storage, offset, size, stride)
  RebuildTensorV2,     // ... + requires_grad, backward_hooks[, metadata]
  RebuildTensorV3,     // ... + requires_grad, backward_hooks, dtype[, metadata]
  RebuildParameter,    // (tensor, requires_grad, backward_hooks[, state])
  RebuildFromType,     // torch._tensor._rebuild_from_type_v2 (func, type, args, state)
  StorageClass,        // torch.FloatStorage, ...: names a storage's type in a persistent id
  DTypeObject,         // torch.float32, ...
  Opaque,              // any other allowed name: calling or instantiating it gives an opaque value
};

struct Global {
  std::string module, name;
  Role role;
  const ElementType* type = nullptr;  // StorageClass / DTypeObject: null if not one we load
  bool untyped = false;                // torch.UntypedStorage
  std::string dotted() const;          // for messages
};

struct StorageRef {
  const zip::Entry* entry;
  const ElementType* type;  // null for an untyped (byte) storage
  uint64_t bytes;
};

struct TensorRef {
  size_t storage;
  const ElementType* type;
  int64_t offset;  // in elements
  Shape shape, strides;
};

struct Heap {
  std::vector<std::string> texts;
  std::vector<std::vector<Value>> seqs;  // a Dict holds key, value, key, value, ...
  std::vector<Global> globals;
  std::vector<StorageRef> storages;
  std::vector<TensorRef> tensors;
};

// The value for a message: "a list", "an int", "the global torch.Size", "an opaque <what>".
std::string describe(const Heap& heap, const Value& v);

// ---------------------------------------------------------------------------------------------
// The pickle VM

// Reads the archive's entry `pkl` (CRC checked), runs it and returns the value STOP leaves on top
// of the stack; everything it refers to lives in `heap`. A persistent id ("storage", torch.<T>
// Storage, key, location, numel) becomes a StorageRef to the entry prefix + "data/" + key, which
// must exist and hold exactly numel elements (`prefix` is the pickle's folder, "<archive>/"), and
// a tensor rebuild becomes a TensorRef checked to lie inside its storage. Every problem (bad or
// truncated pickle, a refused global, a missing storage, ...) is a one-line diffkd::Error that
// starts with the path (for the pickle's own problems, with "<path>: <pkl name>" and the byte).
Value unpickle(const zip::Archive& archive, const zip::Entry& pkl, const std::string& prefix, Heap& heap);

}  // namespace diffkd::torch_pickle
