// safetensors reader and writer (format: https://github.com/huggingface/safetensors, README
// "Format"). The reader checks what the reference Rust implementation checks (header size limit,
// dtype, shape, offsets, exact coverage of the byte buffer) and reports each problem as one line
// that starts with the path, says what was expected and what was found. Tensors are read straight
// from the file into their storage, so loading does not hold a second copy of the checkpoint.

#include "nn/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "autograd/ops.h"
#include "nn/atomic_file.h"
#include "tensor/half_float.h"

namespace diffkd::safetensors {
namespace {

using json = nlohmann::json;

// The byte layout below is little-endian, as is every platform diffkd builds on.
static_assert(std::endian::native == std::endian::little, "safetensors: big-endian host");

// The reference implementation's limit: a larger header is corrupt or hostile, not a checkpoint.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// A dtype as stored in a file, and what it becomes in memory.
struct StoredType {
  const char* name;
  uint64_t bytes;
  DType loaded_as;
};

constexpr StoredType kStoredTypes[] = {
    {"F32", 4, DType::F32},  {"F64", 8, DType::F64},  {"I64", 8, DType::I64},
    {"F16", 2, DType::F32},  {"BF16", 2, DType::F32}, {"I32", 4, DType::I64},
    {"I16", 2, DType::I64},  {"I8", 1, DType::I64},   {"U8", 1, DType::I64},
    {"BOOL", 1, DType::I64},
};

const StoredType* find_stored_type(const std::string& name) {
  for (const StoredType& t : kStoredTypes)
    if (name == t.name) return &t;
  return nullptr;
}

std::string supported_type_names() {
  std::string names;
  for (const StoredType& t : kStoredTypes) names.append(names.empty() ? "" : ", ").append(t.name);
  return names;
}

const char* stored_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I64:
      return "I64";
  }
  throw_dtype_error("safetensors::save", dtype);
}

// A name as a JSON string: quoted, with any control characters escaped, so messages stay one line.
std::string quoted(const std::string& name) {
  return json(name).dump(-1, ' ', false, json::error_handler_t::replace);
}

// A JSON value for an error message, shortened if long.
std::string excerpt(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() <= 60 ? text : text.substr(0, 57) + "...";
}

// Bytes that `shape` of `item_bytes`-byte elements occupies; false on uint64 overflow.
bool bytes_of(const Shape& shape, uint64_t item_bytes, uint64_t& bytes) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) {
    bytes = 0;
    return true;
  }
  bytes = item_bytes;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Writing

struct PlannedTensor {
  const std::string* name;
  Tensor tensor;
  std::string stored;   // the file's dtype: the tensor's own, or a narrower one asked for
  uint64_t begin, end;  // in the byte buffer
};

uint64_t stored_size(const std::string& stored, DType dtype) {
  if (stored == "F16") return 2;
  if (stored == "U8") return 1;
  return itemsize(dtype);
}

// Sorts by name (deterministic files), checks the tensors and assigns consecutive offsets.
std::vector<PlannedTensor> plan_layout(const std::string& path, const NamedTensors& tensors,
                                       const StoredTypes& narrow) {
  std::vector<PlannedTensor> plan;
  for (const auto& [name, tensor] : tensors) {
    DK_CHECK(name != "__metadata__", path, ": \"__metadata__\" is reserved, not a tensor name");
    DK_CHECK(tensor.defined(), path, ": tensor ", quoted(name), " is undefined");
    std::string stored = stored_name(tensor.dtype());
    if (const auto it = narrow.find(name); it != narrow.end()) {
      const bool ok = (it->second == "F16" && is_floating(tensor.dtype())) ||
                      (it->second == "U8" && tensor.dtype() == DType::I64);
      DK_CHECK(ok, path, ": tensor ", quoted(name), " of ", dtype_name(tensor.dtype()), " cannot be stored as ",
               it->second, " (F16 takes a float tensor, U8 an integer one)");
      stored = it->second;
    }
    plan.push_back({&name, tensor, stored, 0, 0});
  }
  for (const auto& entry : narrow) {  // not a structured binding: clang 14 cannot capture one
    const std::string& name = entry.first;
    DK_CHECK(std::any_of(tensors.begin(), tensors.end(), [&](const auto& nt) { return nt.first == name; }), path,
             ": a storage type is given for ", quoted(name), ", which is not among the tensors");
  }
  std::sort(plan.begin(), plan.end(),
            [](const auto& a, const auto& b) { return *a.name < *b.name; });
  uint64_t offset = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    DK_CHECK(i == 0 || *plan[i].name != *plan[i - 1].name, path, ": tensor name ",
             quoted(*plan[i].name), " is given twice");
    const Tensor& t = plan[i].tensor;
    plan[i].begin = offset;
    offset += static_cast<uint64_t>(t.numel()) * stored_size(plan[i].stored, t.dtype());
    plan[i].end = offset;
  }
  return plan;
}

// The JSON header, padded with spaces so that 8 + its length is a multiple of 8.
std::string make_header(const std::string& path, const std::vector<PlannedTensor>& plan,
                        const Metadata& metadata) {
  json header = json::object();
  for (const PlannedTensor& p : plan) {
    header[*p.name] = {{"dtype", p.stored},
                       {"shape", p.tensor.shape()},
                       {"data_offsets", {p.begin, p.end}}};
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::type_error& e) {
    fail(path, ": tensor names and metadata must be valid UTF-8 (", e.what(), ")");
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');
  return text;
}

// ---------------------------------------------------------------------------------------------
// Reading

// An open regular file; reads exactly the bytes asked for or throws naming the path.
class InputFile {
 public:
  explicit InputFile(const std::string& path) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
    DK_CHECK(file_ != nullptr, path, ": cannot open for reading: ", std::strerror(errno));
    struct stat info {};
    DK_CHECK(::fstat(::fileno(file_), &info) == 0, path, ": cannot stat: ", std::strerror(errno));
    DK_CHECK(S_ISREG(info.st_mode), path, ": not a regular file");
    size_ = static_cast<uint64_t>(info.st_size);
  }
  ~InputFile() {
    if (file_ != nullptr) std::fclose(file_);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }
  void read(void* dst, uint64_t bytes, const std::string& what) {
    if (bytes == 0) return;
    DK_CHECK(std::fread(dst, 1, bytes, file_) == bytes, path_,
             ": file ended or failed while reading ", what, " (was it changed while loading?)");
  }

 private:
  std::string path_;
  std::FILE* file_;
  uint64_t size_ = 0;
};

// One tensor's header entry, validated.
struct Entry {
  std::string name;
  const StoredType* type;
  Shape shape;
  uint64_t begin, end;
};

std::string read_header_text(const std::string& path, InputFile& file) {
  DK_CHECK(file.size() >= 8, path, ": file is ", file.size(),
           " bytes, shorter than the 8-byte header length that starts a safetensors file");
  uint64_t length = 0;
  file.read(&length, 8, "the header length");
  DK_CHECK(length <= file.size() - 8, path, ": header length ", length, " is beyond the file size ",
           file.size());
  DK_CHECK(length <= kMaxHeaderBytes, path, ": header length ", length, " exceeds the limit of ",
           kMaxHeaderBytes, " bytes");
  std::string text(length, '\0');
  file.read(text.data(), length, "the header");
  return text;
}

// Parses the header; nlohmann keeps the last of duplicate keys, so a parser callback spots them.
json parse_header(const std::string& path, const std::string& text) {
  std::set<std::string> seen;
  std::string duplicate;
  const json::parser_callback_t spot_duplicates = [&](int depth, json::parse_event_t event,
                                                      json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(text, spot_duplicates);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number too big
    const std::string what = e.what();
    fail(path, ": header is not valid JSON: ", what.substr(what.find("] ") + 2));
  }
  DK_CHECK(header.is_object(), path, ": header must be a JSON object, found ", header.type_name());
  DK_CHECK(duplicate.empty(), path, ": header names ", quoted(duplicate), " twice");
  return header;
}

Metadata parse_metadata(const std::string& path, const json& value) {
  DK_CHECK(value.is_object(), path, ": __metadata__ must be an object of strings, found ",
           value.type_name());
  Metadata metadata;
  for (const auto& [key, item] : value.items()) {
    DK_CHECK(item.is_string(), path, ": __metadata__ must be an object of strings, but ",
             quoted(key), " is a ", item.type_name());
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

Shape parse_shape(const std::string& path, const std::string& name, const json& value) {
  const auto bad = [&] {
    fail(path, ": tensor ", quoted(name), " shape must be a list of non-negative integers, found ",
         excerpt(value));
  };
  if (!value.is_array()) bad();
  Shape shape;
  for (const json& d : value) {
    if (!d.is_number_unsigned() ||
        d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      bad();
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

// Checks the entry's fields and that its offsets lie in the buffer and match its size.
Entry parse_entry(const std::string& path, const std::string& name, const json& value,
                  uint64_t buffer_bytes) {
  const std::string tensor = "tensor " + quoted(name);
  DK_CHECK(value.is_object(), path, ": ", tensor, " must be a JSON object, found ",
           value.type_name());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    DK_CHECK(value.contains(field), path, ": ", tensor, " has no \"", field, "\"");
  const json& dtype = value["dtype"];
  DK_CHECK(dtype.is_string(), path, ": ", tensor, " dtype must be a string, found ",
           excerpt(dtype));
  Entry entry{name, find_stored_type(dtype.get<std::string>()),
              parse_shape(path, name, value["shape"]), 0, 0};
  DK_CHECK(entry.type != nullptr, path, ": ", tensor, " has unknown dtype ", excerpt(dtype),
           " (supported: ", supported_type_names(), ")");
  const json& offsets = value["data_offsets"];
  DK_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
               offsets[1].is_number_unsigned() &&
               offsets[0].get<uint64_t>() <= offsets[1].get<uint64_t>(),
           path, ": ", tensor,
           " data_offsets must be two integers [begin, end] with begin <= end, found ",
           excerpt(offsets));
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  DK_CHECK(entry.end <= buffer_bytes, path, ": ", tensor, " data_offsets ", excerpt(offsets),
           " end beyond the data buffer of ", buffer_bytes, " bytes");
  uint64_t needed = 0;
  const bool fits = bytes_of(entry.shape, entry.type->bytes, needed);
  DK_CHECK(fits && needed == entry.end - entry.begin, path, ": ", tensor, " has ",
           entry.end - entry.begin, " bytes of data but its shape ", shape_str(entry.shape), " of ",
           entry.type->name, " needs ", fits ? std::to_string(needed) : "more than 2^64");
  return entry;
}

// Sorts the entries by offset and checks that they tile [0, buffer_bytes) exactly.
void check_coverage(const std::string& path, std::vector<Entry>& entries, uint64_t buffer_bytes) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const Entry* last = nullptr;  // the entry that ends at `covered`
  for (const Entry& e : entries) {
    DK_CHECK(e.begin >= covered, path, ": tensors ", quoted(last->name), " at bytes [", last->begin,
             ", ", last->end, ") and ", quoted(e.name), " at bytes [", e.begin, ", ", e.end,
             ") overlap");
    DK_CHECK(e.begin == covered, path, ": bytes [", covered, ", ", e.begin,
             ") of the data buffer belong to no tensor (the buffer must be fully covered)");
    if (e.end > covered || last == nullptr) last = &e;
    covered = e.end;
  }
  DK_CHECK(covered == buffer_bytes, path, ": bytes [", covered, ", ", buffer_bytes,
           ") of the data buffer belong to no tensor (the buffer must be fully covered)");
}

// The bytes of a tensor narrowed to the stored type (F16 from floats, U8 from integers in 0..255).
std::vector<char> narrowed_bytes(const std::string& path, const std::string& name, const Tensor& t,
                                 const std::string& stored) {
  std::vector<char> out(static_cast<size_t>(t.numel()) * stored_size(stored, t.dtype()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (stored == "F16") {  // (an F64 value is rounded to F32 first)
      const float value = t.dtype() == DType::F64 ? static_cast<float>(t.data<double>()[i]) : t.data<float>()[i];
      const uint16_t h = float_to_half(value);
      std::memcpy(out.data() + 2 * i, &h, 2);
    } else {
      const int64_t v = t.data<int64_t>()[i];
      DK_CHECK(v >= 0 && v <= 255, path, ": tensor ", quoted(name), " holds ", v, ", which U8 cannot store");
      out[i] = static_cast<char>(static_cast<uint8_t>(v));
    }
  }
  return out;
}

// Converts the stored elements in `raw` into the loaded tensor's wider type.
template <typename Stored, typename Loaded, typename Convert>
void widen(const std::vector<char>& raw, Loaded* out, Convert convert) {
  for (size_t i = 0; i < raw.size() / sizeof(Stored); ++i) {
    Stored value;
    std::memcpy(&value, raw.data() + i * sizeof(Stored), sizeof(Stored));
    out[i] = convert(value);
  }
}

Tensor read_tensor(InputFile& file, const Entry& e) {
  Tensor t = Tensor::empty(e.shape, e.type->loaded_as);
  const std::string what = "tensor " + quoted(e.name);
  const uint64_t bytes = e.end - e.begin;
  const std::string stored = e.type->name;
  if (stored == stored_name(t.dtype())) {
    file.read(t.raw_data(), bytes, what);
    return t;
  }
  std::vector<char> raw(bytes);
  file.read(raw.data(), bytes, what);
  const auto same = [](auto v) { return static_cast<int64_t>(v); };
  if (stored == "F16") widen<uint16_t>(raw, t.data<float>(), half_to_float);
  if (stored == "BF16") widen<uint16_t>(raw, t.data<float>(), bfloat16_to_float);
  if (stored == "I32") widen<int32_t>(raw, t.data<int64_t>(), same);
  if (stored == "I16") widen<int16_t>(raw, t.data<int64_t>(), same);
  if (stored == "I8") widen<int8_t>(raw, t.data<int64_t>(), same);
  if (stored == "U8") widen<uint8_t>(raw, t.data<int64_t>(), same);
  if (stored == "BOOL")
    widen<uint8_t>(raw, t.data<int64_t>(), [](uint8_t v) { return int64_t(v != 0); });
  return t;
}

}  // namespace

const Tensor& Contents::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  std::string names;
  for (size_t i = 0; i < tensors.size() && i < 8; ++i)
    names.append(i ? ", " : "").append(tensors[i].first);
  if (tensors.size() > 8) names += ", ...";
  fail(path, ": no tensor named ", quoted(name), " (the file has ", tensors.size(), ": ", names,
       ")");
}

bool Contents::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const auto& nt) { return nt.first == name; });
}

void save(const std::string& path, const NamedTensors& tensors, const Metadata& metadata,
          const StoredTypes& narrow) {
  const std::vector<PlannedTensor> plan = plan_layout(path, tensors, narrow);
  const std::string header = make_header(path, plan, metadata);
  write_file_atomically(path, [&](const ByteSink& write) {
    const uint64_t length = header.size();
    write(&length, 8);
    write(header.data(), header.size());
    for (const PlannedTensor& p : plan) {
      // One contiguous host copy at a time (a GPU tensor comes to the host here), so a checkpoint
      // of views never doubles in memory.
      const Tensor host = p.tensor.device().type != DeviceType::CPU ? to_device(p.tensor.detach(), cpu())
                          : p.tensor.is_contiguous()                 ? p.tensor
                                                                     : p.tensor.clone_data();
      if (p.stored == stored_name(host.dtype())) {
        write(host.raw_data(), p.end - p.begin);
      } else {
        const std::vector<char> bytes = narrowed_bytes(path, *p.name, host, p.stored);
        write(bytes.data(), bytes.size());
      }
    }
  });
}

Contents load(const std::string& path) {
  InputFile file(path);
  const std::string text = read_header_text(path, file);
  const json header = parse_header(path, text);
  const uint64_t buffer_bytes = file.size() - 8 - text.size();
  Contents contents;
  contents.path = path;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__")
      contents.metadata = parse_metadata(path, value);
    else
      entries.push_back(parse_entry(path, name, value, buffer_bytes));
  }
  check_coverage(path, entries, buffer_bytes);
  // Entries now tile the buffer in file order, so the data is read front to back.
  for (const Entry& e : entries) contents.tensors.emplace_back(e.name, read_tensor(file, e));
  return contents;
}

Metadata load_metadata(const std::string& path) {
  InputFile file(path);
  const json header = parse_header(path, read_header_text(path, file));
  const auto it = header.find("__metadata__");
  return it == header.end() ? Metadata{} : parse_metadata(path, *it);
}

}  // namespace diffkd::safetensors
