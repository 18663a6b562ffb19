// PyTorch zip checkpoints, read without Python: the archive is read by nn/zip_archive.h and its
// data.pkl run by the safe pickle VM of nn/torch_pickle.h; this file finds the pickle, flattens
// the value it builds into dotted names and copies each tensor out of its storage (widening F16,
// BF16 and the small integer types as they load). The file is untrusted input: every size is
// checked before anything is allocated for it, and every problem is one line that starts with
// the path.

#include "nn/torch_checkpoint.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <unordered_set>
#include <utility>
#include <vector>

#include "nn/torch_pickle.h"
#include "nn/zip_archive.h"
#include "tensor/half_float.h"

namespace diffkd::torch_checkpoint {
namespace {

using torch_pickle::Elem;
using torch_pickle::Heap;
using torch_pickle::Kind;
using torch_pickle::TensorRef;
using torch_pickle::Value;
using torch_pickle::describe;
using zip::Archive;
using zip::Bytes;
using zip::Entry;
using zip::File;
using zip::kLocalHeader;
using zip::quoted;
using zip::u16;
using zip::u32;

// Limits against hostile files (real checkpoints are far inside them; the pickle's are in
// torch_pickle.cpp).
constexpr int kMaxDepth = 200;              // nesting of dicts / lists when flattening
constexpr uint64_t kMaxVisits = 16'000'000;   // values visited when flattening (shared sub-lists)
constexpr uint64_t kMaxNameBytes = 64u << 20;  // bytes of all names built when flattening
constexpr size_t kMaxNameLength = 16384;

// ---------------------------------------------------------------------------------------------
// Flattening and copying the tensors out

struct Found {
  std::string name;
  size_t tensor;
};

class Flattener {
 public:
  Flattener(const std::string& path, const Heap& heap) : path_(path), heap_(heap) {}

  std::vector<Found> run(const Value& root) {
    if (root.kind != Kind::Dict && root.kind != Kind::List && root.kind != Kind::Tuple)
      fail(path_, ": the checkpoint holds ", describe(heap_, root), ", not a dict of tensors",
           root.kind == Kind::Tensor ? " (save {\"name\": tensor} instead)" : "");
    visit(root, "", 0);
    std::unordered_set<std::string> names;
    for (const Found& f : found_)
      DK_CHECK(names.insert(f.name).second, path_, ": two tensors flatten to the name ", quoted(f.name));
    return std::move(found_);
  }

 private:
  void visit(const Value& v, const std::string& name, int depth) {
    if (v.kind == Kind::Tensor) {
      found_.push_back({name, v.ref});
      return;
    }
    if (v.kind != Kind::Dict && v.kind != Kind::List && v.kind != Kind::Tuple) return;
    DK_CHECK(depth < kMaxDepth, path_, ": dicts and lists nest more than ", kMaxDepth,
             " deep (or one holds itself) at ", quoted(name));
    const std::vector<Value>& items = heap_.seqs[v.ref];
    visits_ += 1 + items.size();
    DK_CHECK(visits_ <= kMaxVisits, path_, ": flattening the checkpoint visits more than ", kMaxVisits,
             " values (do its dicts and lists share sub-lists many times over?)");
    const bool dict = v.kind == Kind::Dict;
    for (size_t i = 0; i < items.size(); i += dict ? 2 : 1) {
      const Value& child = dict ? items[i + 1] : items[i];
      if (child.kind != Kind::Tensor && child.kind != Kind::Dict && child.kind != Kind::List &&
          child.kind != Kind::Tuple)
        continue;
      std::string key;
      if (!dict) key = std::to_string(i);
      else if (items[i].kind == Kind::Str) key = heap_.texts[items[i].ref];
      else if (items[i].kind == Kind::Int) key = std::to_string(items[i].number);
      else continue;  // a key of another type: the entry is skipped
      std::string child_name = name.empty() && depth == 0 ? key : name + "." + key;
      name_bytes_ += child_name.size();
      DK_CHECK(child_name.size() <= kMaxNameLength, path_, ": a flattened name is longer than ", kMaxNameLength,
               " bytes: ", quoted(child_name));
      DK_CHECK(name_bytes_ <= kMaxNameBytes, path_, ": flattening the checkpoint makes more than ", kMaxNameBytes,
               " bytes of names (do its dicts and lists share sub-lists many times over?)");
      visit(child, child_name, depth + 1);
    }
  }

  const std::string& path_;
  const Heap& heap_;
  std::vector<Found> found_;
  uint64_t visits_ = 0, name_bytes_ = 0;
};

// Copies element (i0, ..., ik) at storage index offset + sum i_d * stride_d to out[row-major i],
// converting each with `convert`.
template <typename Stored, typename Out, typename Convert>
void gather(const unsigned char* base, const TensorRef& t, Out* out, Convert convert) {
  const int64_t n = numel_of(t.shape);
  const size_t dims = t.shape.size();
  std::vector<int64_t> index(dims, 0);
  int64_t at = t.offset;
  for (int64_t i = 0; i < n; ++i) {
    Stored v;
    std::memcpy(&v, base + static_cast<size_t>(at) * sizeof(Stored), sizeof(Stored));
    out[i] = convert(v);
    for (size_t d = dims; d-- > 0;) {
      if (++index[d] < t.shape[d]) {
        at += t.strides[d];
        break;
      }
      at -= (t.shape[d] - 1) * t.strides[d];
      index[d] = 0;
    }
  }
}

// Whether the view's elements are its storage's, in order, from its offset.
bool contiguous_view(const TensorRef& t) {
  int64_t expected = 1;
  for (size_t d = t.shape.size(); d-- > 0;) {
    if (t.shape[d] != 1 && t.strides[d] != expected) return false;
    expected *= t.shape[d];
  }
  return true;
}

Tensor materialise(const TensorRef& t, const Bytes& storage) {
  Tensor out = Tensor::empty(t.shape, t.type->loaded_as);
  if (out.numel() == 0) return out;
  const unsigned char* base = storage.data();
  if (t.type->bytes == itemsize(out.dtype()) && contiguous_view(t)) {  // F32, F64, I64 as stored
    std::memcpy(out.raw_data(), base + static_cast<size_t>(t.offset) * t.type->bytes,
                static_cast<size_t>(out.numel()) * t.type->bytes);
    return out;
  }
  const auto same = [](auto v) { return v; };
  const auto widen = [](auto v) { return static_cast<int64_t>(v); };
  switch (t.type->elem) {
    case Elem::F32: gather<float>(base, t, out.data<float>(), same); break;
    case Elem::F64: gather<double>(base, t, out.data<double>(), same); break;
    case Elem::F16: gather<uint16_t>(base, t, out.data<float>(), half_to_float); break;
    case Elem::BF16: gather<uint16_t>(base, t, out.data<float>(), bfloat16_to_float); break;
    case Elem::I64: gather<int64_t>(base, t, out.data<int64_t>(), same); break;
    case Elem::I32: gather<int32_t>(base, t, out.data<int64_t>(), widen); break;
    case Elem::I16: gather<int16_t>(base, t, out.data<int64_t>(), widen); break;
    case Elem::I8: gather<int8_t>(base, t, out.data<int64_t>(), widen); break;
    case Elem::U8: gather<uint8_t>(base, t, out.data<int64_t>(), widen); break;
    case Elem::Bool: gather<uint8_t>(base, t, out.data<int64_t>(), [](uint8_t v) { return int64_t(v != 0); }); break;
  }
  return out;
}

bool is_pickle_name(const std::string& name) {
  return name == "data.pkl" || (name.size() > 9 && name.compare(name.size() - 9, 9, "/data.pkl") == 0);
}

// The archive's data.pkl: "<dir>/data.pkl" (or "data.pkl"), exactly one.
const Entry* find_pickle(const Archive& archive, std::string& prefix) {
  const Entry* found = nullptr;
  for (const Entry& e : archive.entries()) {
    if (!is_pickle_name(e.name)) continue;
    DK_CHECK(found == nullptr, archive.path(), ": the archive holds two pickles, ", quoted(found->name), " and ",
             quoted(e.name));
    found = &e;
    prefix = e.name.substr(0, e.name.size() - 8);
  }
  DK_CHECK(found != nullptr, archive.path(), ": a zip archive without a data.pkl entry, not a torch.save checkpoint");
  return found;
}

}  // namespace

safetensors::Contents load(const std::string& path) {
  const Archive archive(path);
  std::string prefix;
  const Entry* pkl = find_pickle(archive, prefix);
  if (const Entry* order = archive.find(prefix + "byteorder")) {
    const Bytes text = archive.read(*order);
    DK_CHECK(std::string(text.begin(), text.end()) == "little", path, ": byteorder ",
             quoted(std::string(text.begin(), text.end())), " is not supported (only little-endian)");
  }
  Heap heap;
  const Value root = torch_pickle::unpickle(archive, *pkl, prefix, heap);
  const std::vector<Found> found = Flattener(path, heap).run(root);

  // The output's size is bounded, so that a stride-0 view cannot ask for unbounded memory.
  const uint64_t budget = 8 * archive.file().size() + (256u << 20);
  uint64_t total = 0;
  for (const Found& f : found) {
    const TensorRef& t = heap.tensors[f.tensor];
    uint64_t bytes = 0;
    const bool overflow = __builtin_mul_overflow(static_cast<uint64_t>(numel_of(t.shape)),
                                                 uint64_t(itemsize(t.type->loaded_as)), &bytes) ||
                          __builtin_add_overflow(total, 64 + bytes, &total);
    DK_CHECK(!overflow && total <= budget, path, ": the tensors would take more than ", budget,
             " bytes once copied out of their storages (stride-0 or overlapping views?)");
  }
  // One storage in memory at a time: each is read once (CRC checked), its tensors copied out.
  safetensors::Contents contents;
  contents.path = path;
  contents.tensors.resize(found.size());
  std::vector<bool> done(found.size(), false);
  for (size_t i = 0; i < found.size(); ++i) {
    if (done[i]) continue;
    const Entry* entry = heap.storages[heap.tensors[found[i].tensor].storage].entry;
    const Bytes storage = archive.read(*entry);
    for (size_t j = i; j < found.size(); ++j) {
      const TensorRef& t = heap.tensors[found[j].tensor];
      if (done[j] || heap.storages[t.storage].entry != entry) continue;
      contents.tensors[j] = {found[j].name, materialise(t, storage)};
      done[j] = true;
    }
  }
  return contents;
}

bool looks_like_torch_checkpoint(const std::string& path) {
  try {
    const File file(path);
    if (file.size() < 30) return false;
    const Bytes head = file.read(0, 30, "the first zip header");
    if (u32(head.data()) != kLocalHeader) return false;
    try {
      const Archive archive(path);
      return std::any_of(archive.entries().begin(), archive.entries().end(),
                         [&](const Entry& e) { return is_pickle_name(e.name); });
    } catch (const Error&) {  // an unreadable directory: judge by the first entry's name
      const uint16_t n = u16(head.data() + 26);
      if (!file.holds(30, n)) return false;
      const Bytes name = file.read(30, n, "the first entry's name");
      return is_pickle_name(std::string(name.begin(), name.end()));
    }
  } catch (const Error&) {
    return false;
  }
}

}  // namespace diffkd::torch_checkpoint
