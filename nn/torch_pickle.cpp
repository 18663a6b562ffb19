// The safe pickle VM of nn/torch_pickle.h: the opcodes torch.save writes (each is documented in
// CPython's Lib/pickletools.py), the tensor rebuild functions of torch/_utils.py and the policy
// of which globals a checkpoint may name. The pickle is untrusted input: every read is
// bounds-checked, every count and size is checked before anything is allocated for it, and every
// problem is one line that starts with the path. Nothing in the pickle is ever called: globals
// are names, looked up in the policy of classify().

#include "nn/torch_pickle.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <unordered_map>
#include <utility>

namespace diffkd::torch_pickle {
namespace {

using zip::Archive;
using zip::Bytes;
using zip::Entry;
using zip::quoted;
using zip::u16;
using zip::u32;
using zip::u64;

// Limits against hostile files (real checkpoints are far inside them; the flattener's are in
// torch_checkpoint.cpp).
constexpr size_t kMaxDims = 64;  // of a tensor

// A string from the file for a message, with only control bytes escaped (names from the file:
// kept UTF-8; zip::quoted() also quotes and escapes non-ASCII).
std::string printable(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      out += ch;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The element types torch names (Elem and ElementType are in the header)

constexpr ElementType kElementTypes[] = {
    {Elem::F32, "FloatStorage", "float32", "float", 4, DType::F32},
    {Elem::F64, "DoubleStorage", "float64", "double", 8, DType::F64},
    {Elem::F16, "HalfStorage", "float16", "half", 2, DType::F32},
    {Elem::BF16, "BFloat16Storage", "bfloat16", "", 2, DType::F32},
    {Elem::I64, "LongStorage", "int64", "long", 8, DType::I64},
    {Elem::I32, "IntStorage", "int32", "int", 4, DType::I64},
    {Elem::I16, "ShortStorage", "int16", "short", 2, DType::I64},
    {Elem::I8, "CharStorage", "int8", "", 1, DType::I64},
    {Elem::U8, "ByteStorage", "uint8", "", 1, DType::I64},
    {Elem::Bool, "BoolStorage", "bool", "", 1, DType::I64},
};

// torch dtypes we know but do not load (a tensor of one is an error; the name alone is not).
constexpr const char* kOtherDtypes[] = {
    "complex32", "complex64", "complex128", "cfloat", "cdouble", "chalf", "uint16", "uint32", "uint64",
    "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "float8_e4m3fn", "float8_e5m2",
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits8", "bits16",
    "bits1x8", "bits2x4", "bits4x2", "int1", "int2", "int3", "int4", "int5", "int6", "int7",
    "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7"};

std::string supported_storages() {
  std::string names;
  for (const ElementType& t : kElementTypes) names.append(names.empty() ? "" : ", ").append(t.storage);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Pickle values

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "int (over 64 bits)";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Set: return "set";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
    case Kind::Opaque: return "opaque object";
  }
  return "?";
}

}  // namespace

std::string Global::dotted() const { return printable(module + "." + name); }

std::string describe(const Heap& heap, const Value& v) {
  if (v.kind == Kind::Global) return "the global " + heap.globals[v.ref].dotted();
  if (v.kind == Kind::Opaque) return "an opaque " + heap.texts[v.ref];
  const std::string kind = kind_name(v.kind);
  return (std::strchr("aeiou", kind[0]) != nullptr ? "an " : "a ") + kind;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Which globals a checkpoint may name

bool in_module(const std::string& module, const char* root) {
  const size_t n = std::strlen(root);
  return module.compare(0, n, root) == 0 && (module.size() == n || module[n] == '.');
}

// Modules whose names in a pickle mean it was made to run code or touch the system (it would,
// in Python's pickle): such a file is refused, though this reader would not run anything.
constexpr const char* kRefusedModules[] = {
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "importlib", "imp", "runpy",
    "shutil", "socket", "pickle", "_pickle", "cPickle", "marshal", "ctypes", "_ctypes", "code",
    "codeop", "pty", "webbrowser", "types", "operator", "_operator", "functools", "_functools",
    "multiprocessing", "threading", "_thread", "thread", "signal", "asyncio", "pdb", "bdb",
    "timeit", "commands", "popen2", "platform", "io", "_io", "tempfile", "glob", "urllib",
    "urllib2", "http", "httplib", "ftplib", "smtplib", "telnetlib", "requests", "zipimport",
    "inspect", "gc", "pydoc", "profile", "cProfile", "trace", "site", "sysconfig", "distutils",
    "setuptools", "pip", "shelve", "dbm", "sqlite3", "mmap", "fcntl", "resource", "select",
    "zipfile", "tarfile", "linecache", "tkinter", "dill", "cloudpickle", "joblib"};

// Builtins that only build data; every other builtins name (eval, exec, getattr, __import__,
// open, compile, ...) is refused.
constexpr const char* kDataBuiltins[] = {"set", "frozenset", "bytearray", "bytes", "complex", "slice",
                                         "range", "object", "int", "float", "str", "list", "tuple",
                                         "dict", "bool"};

template <size_t N>
bool listed(const char* const (&names)[N], const std::string& name) {
  return std::any_of(std::begin(names), std::end(names), [&](const char* n) { return name == n; });
}

// The role of module.name, or a one-line refusal.
Global classify(const std::string& where, const std::string& module, const std::string& name) {
  Global g{module, name, Role::Opaque};
  const std::string dotted = g.dotted();
  const auto role_is = [&](Role r) { g.role = r; return g; };
  if (module == "collections" && (name == "OrderedDict" || name == "defaultdict")) return role_is(Role::Dict);
  if (module == "torch._utils") {
    if (name == "_rebuild_tensor") return role_is(Role::RebuildTensor);
    if (name == "_rebuild_tensor_v2") return role_is(Role::RebuildTensorV2);
    if (name == "_rebuild_tensor_v3") return role_is(Role::RebuildTensorV3);
    if (name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state")
      return role_is(Role::RebuildParameter);
  }
  if ((module == "torch._tensor" || module == "torch._utils") && name == "_rebuild_from_type_v2")
    return role_is(Role::RebuildFromType);
  if (module == "torch") {
    if (name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0) {
      for (const ElementType& t : kElementTypes)
        if (name == t.storage) g.type = &t;
      g.untyped = name == "UntypedStorage";
      return role_is(Role::StorageClass);
    }
    for (const ElementType& t : kElementTypes)
      if (name == t.dtype || name == t.alias) g.type = &t;
    if (g.type != nullptr || listed(kOtherDtypes, name)) return role_is(Role::DTypeObject);
    if (name == "device" || name == "Size" || name == "Tensor") return g;
  }
  if (module == "torch.nn.parameter" && (name == "Parameter" || name == "Buffer")) return g;
  if (in_module(module, "torch.nn"))
    fail(where, " names ", dotted, ": the file pickles a whole torch.nn module (torch.save(model)); "
         "load it in Python and save model.state_dict() instead");
  if (in_module(module, "torch"))
    fail(where, " names ", dotted, ", which this reader does not know: it reads dense tensors, not quantized, "
         "sparse, nested, meta or numpy-backed ones, nested pickles or other torch objects");
  const bool builtin = module == "builtins" || module == "__builtin__";
  if ((builtin && !listed(kDataBuiltins, name)) ||
      std::any_of(std::begin(kRefusedModules), std::end(kRefusedModules),
                  [&](const char* m) { return in_module(module, m); }))
    fail(where, " names the global ", quoted(dotted), ", which can run code: refusing the file "
         "(nothing in it was run)");
  return g;  // opaque data (argparse.Namespace, numpy scalars, user classes, ...)
}

// ---------------------------------------------------------------------------------------------
// The pickle VM

bool valid_utf8(const unsigned char* s, size_t n) {
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t more = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xe0) == 0xc0) { more = 1; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { more = 2; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { more = 3; cp = c & 0x07; min = 0x10000; }
    else return false;
    if (n - i - 1 < more) return false;
    for (size_t k = 1; k <= more; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff) return false;  // (surrogates pass, as Python's surrogatepass)
    i += more + 1;
  }
  return true;
}

const char* opcode_name(unsigned char op) {
  switch (op) {
    case 0x80: return "PROTO"; case 0x95: return "FRAME"; case '.': return "STOP"; case '(': return "MARK";
    case '0': return "POP"; case '1': return "POP_MARK"; case '2': return "DUP";
    case '}': return "EMPTY_DICT"; case ']': return "EMPTY_LIST"; case ')': return "EMPTY_TUPLE";
    case 0x8f: return "EMPTY_SET"; case 't': return "TUPLE"; case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3"; case 'd': return "DICT"; case 'l': return "LIST";
    case 'a': return "APPEND"; case 'e': return "APPENDS"; case 's': return "SETITEM";
    case 'u': return "SETITEMS"; case 0x90: return "ADDITEMS"; case 0x91: return "FROZENSET";
    case 'p': return "PUT"; case 'q': return "BINPUT"; case 'r': return "LONG_BINPUT";
    case 0x94: return "MEMOIZE"; case 'g': return "GET"; case 'h': return "BINGET";
    case 'j': return "LONG_BINGET"; case 'J': return "BININT"; case 'K': return "BININT1";
    case 'M': return "BININT2"; case 0x8a: return "LONG1"; case 0x8b: return "LONG4"; case 'I': return "INT";
    case 'G': return "BINFLOAT"; case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE";
    case 'N': return "NONE"; case 'X': return "BINUNICODE"; case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8"; case 'B': return "BINBYTES"; case 'C': return "SHORT_BINBYTES";
    case 0x8e: return "BINBYTES8"; case 0x96: return "BYTEARRAY8"; case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING"; case 'c': return "GLOBAL"; case 0x93: return "STACK_GLOBAL";
    case 'R': return "REDUCE"; case 'b': return "BUILD"; case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX"; case 'Q': return "BINPERSID";
    default: return nullptr;
  }
}

class Unpickler {
 public:
  Unpickler(const Archive& archive, const Entry& pkl, const std::string& prefix, Heap& heap)
      : archive_(archive), prefix_(prefix), where_(archive.path() + ": " + pkl.name), data_(archive.read(pkl)),
        heap_(heap) {}

  Value run() {
    while (true) {
      op_at_ = pos_;
      op_ = take(1)[0];
      if (op_ == '.') break;
      step();
    }
    if (stack_.empty()) bad("STOP with an empty stack");
    return stack_.back();
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    const char* name = opcode_name(op_);
    fail(where_, " byte ", op_at_, name != nullptr ? std::string(" (") + name + ")" : std::string(), ": ", what);
  }

  // --- reading the pickle's bytes --------------------------------------------------------------
  const unsigned char* take(uint64_t n) {
    if (n > data_.size() - pos_) {
      if (pos_ == op_at_) fail(where_, ": the pickle ends at byte ", pos_, " without a STOP (truncated?)");
      bad("the pickle ends inside this opcode, which needs " + std::to_string(n) + " more bytes (" +
          std::to_string(data_.size() - pos_) + " left)");
    }
    const unsigned char* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::string line() {
    const auto* begin = data_.data() + pos_;
    const auto* nl = static_cast<const unsigned char*>(std::memchr(begin, '\n', data_.size() - pos_));
    if (nl == nullptr) bad("no newline ends this opcode's argument (truncated?)");
    pos_ += static_cast<size_t>(nl - begin) + 1;
    return std::string(reinterpret_cast<const char*>(begin), static_cast<size_t>(nl - begin));
  }
  int64_t decimal(const std::string& text) {
    int64_t v = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (error != std::errc() || end != text.data() + text.size() || text.empty())
      bad("expected a decimal integer, found " + quoted(text));
    return v;
  }
  std::string text(uint64_t n, bool utf8) {
    const unsigned char* p = take(n);
    if (utf8 && !valid_utf8(p, n)) bad("the string is not valid UTF-8");
    return std::string(reinterpret_cast<const char*>(p), n);
  }

  // --- the stack ---------------------------------------------------------------------------------
  // After MARK only the values above it can be popped, as in Python's Unpickler.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Value pop() {
    if (stack_.size() <= floor()) bad("needs a value, but the stack is empty (stack underflow)");
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value& top() {
    if (stack_.size() <= floor()) bad("needs a value, but the stack is empty (stack underflow)");
    return stack_.back();
  }
  std::vector<Value> pop_mark() {
    if (marks_.empty()) bad("no MARK on the stack");
    std::vector<Value> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  void push(const Value& v) { stack_.push_back(v); }

  // --- making values -------------------------------------------------------------------------------
  Value number(Kind kind, int64_t n) { return Value{kind, n, 0, 0}; }
  Value string_value(Kind kind, std::string s) {
    heap_.texts.push_back(std::move(s));
    return Value{kind, 0, 0, heap_.texts.size() - 1};
  }
  Value sequence(Kind kind, std::vector<Value> items = {}) {
    heap_.seqs.push_back(std::move(items));
    return Value{kind, 0, 0, heap_.seqs.size() - 1};
  }
  Value opaque(const std::string& what) { return string_value(Kind::Opaque, what); }
  Value global(const std::string& module, const std::string& name) {
    if (module.empty() || name.empty() || module.size() > 1000 || name.size() > 1000 ||
        !valid_utf8(reinterpret_cast<const unsigned char*>(module.data()), module.size()) ||
        !valid_utf8(reinterpret_cast<const unsigned char*>(name.data()), name.size()))
      bad("malformed global name " + quoted(module + "." + name));
    heap_.globals.push_back(classify(where_ + " byte " + std::to_string(op_at_), module, name));
    return Value{Kind::Global, 0, 0, heap_.globals.size() - 1};
  }
  // LONG1 / LONG4: n bytes of two's complement, little-endian.
  Value long_value(uint64_t n) {
    const unsigned char* p = take(n);
    if (n > 8) return number(Kind::BigInt, 0);
    uint64_t v = 0;
    for (uint64_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);
    return number(Kind::Int, std::bit_cast<int64_t>(v));
  }

  // --- opcodes ---------------------------------------------------------------------------------------
  void step() {
    if (constants() || containers() || memo() || objects()) return;
    char c[24] = "";
    if (op_ >= 0x20 && op_ < 0x7f) std::snprintf(c, sizeof c, " ('%c')", op_);
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", op_);
    bad(std::string("unknown or unsupported pickle opcode ") + hex + c);
  }

  bool constants() {
    switch (op_) {
      case 0x80: {
        const unsigned version = take(1)[0];
        if (version > 5) bad("pickle protocol " + std::to_string(version) + " is not supported (0 to 5)");
        return true;
      }
      case 0x95: take(8); return true;  // FRAME: a length hint
      case 'N': push(Value{}); return true;
      case 0x88: push(number(Kind::Bool, 1)); return true;
      case 0x89: push(number(Kind::Bool, 0)); return true;
      case 'J': { int32_t v; std::memcpy(&v, take(4), 4); push(number(Kind::Int, v)); return true; }
      case 'K': push(number(Kind::Int, take(1)[0])); return true;
      case 'M': push(number(Kind::Int, u16(take(2)))); return true;
      case 0x8a: push(long_value(take(1)[0])); return true;
      case 0x8b: {
        int32_t n;
        std::memcpy(&n, take(4), 4);
        if (n < 0) bad("negative byte count");
        push(long_value(static_cast<uint64_t>(n)));
        return true;
      }
      case 'I': {
        const std::string s = line();
        push(s == "00" ? number(Kind::Bool, 0) : s == "01" ? number(Kind::Bool, 1) : number(Kind::Int, decimal(s)));
        return true;
      }
      case 'G': {
        uint64_t bits = 0;
        const unsigned char* p = take(8);
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian
        push(Value{Kind::Float, 0, std::bit_cast<double>(bits), 0});
        return true;
      }
      case 'X': push(string_value(Kind::Str, text(u32(take(4)), true))); return true;
      case 0x8c: push(string_value(Kind::Str, text(take(1)[0], true))); return true;
      case 0x8d: push(string_value(Kind::Str, text(u64(take(8)), true))); return true;
      case 'T': {
        int32_t n;
        std::memcpy(&n, take(4), 4);
        if (n < 0) bad("negative string length");
        push(string_value(Kind::Str, text(static_cast<uint64_t>(n), true)));
        return true;
      }
      case 'U': push(string_value(Kind::Str, text(take(1)[0], true))); return true;
      case 'B': push(string_value(Kind::Bytes, text(u32(take(4)), false))); return true;
      case 'C': push(string_value(Kind::Bytes, text(take(1)[0], false))); return true;
      case 0x8e: case 0x96: push(string_value(Kind::Bytes, text(u64(take(8)), false))); return true;
      default: return false;
    }
  }

  bool containers() {
    switch (op_) {
      case '(': marks_.push_back(stack_.size()); return true;
      case '0':
        if (stack_.size() > floor()) stack_.pop_back();
        else pop_mark();
        return true;
      case '1': pop_mark(); return true;
      case '2': push(top()); return true;
      case '}': push(sequence(Kind::Dict)); return true;
      case ']': push(sequence(Kind::List)); return true;
      case ')': push(sequence(Kind::Tuple)); return true;
      case 0x8f: push(sequence(Kind::Set)); return true;
      case 't': push(sequence(Kind::Tuple, pop_mark())); return true;
      case 'l': push(sequence(Kind::List, pop_mark())); return true;
      case 0x91: push(sequence(Kind::Set, pop_mark())); return true;
      case 0x85: case 0x86: case 0x87: {
        std::vector<Value> items(op_ - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(sequence(Kind::Tuple, std::move(items)));
        return true;
      }
      case 'd': {
        std::vector<Value> items = pop_mark();
        if (items.size() % 2 != 0) bad("odd number of values for a dict's keys and values");
        push(sequence(Kind::Dict, std::move(items)));
        return true;
      }
      case 'a': { const Value v = pop(); add(top(), {v}, Kind::List); return true; }
      case 'e': { std::vector<Value> items = pop_mark(); add(top(), std::move(items), Kind::List); return true; }
      case 0x90: { std::vector<Value> items = pop_mark(); add(top(), std::move(items), Kind::Set); return true; }
      case 's': { const Value v = pop(), k = pop(); add(top(), {k, v}, Kind::Dict); return true; }
      case 'u': {
        std::vector<Value> items = pop_mark();
        if (items.size() % 2 != 0) bad("odd number of values for a dict's keys and values");
        add(top(), std::move(items), Kind::Dict);
        return true;
      }
      default: return false;
    }
  }

  // APPEND(S) / ADDITEMS / SETITEM(S): into a container of that kind; an opaque object (a user
  // list or dict subclass) keeps its items to itself.
  void add(const Value& target, std::vector<Value> items, Kind kind) {
    if (target.kind == Kind::Opaque) return;
    if (target.kind != kind) bad(std::string("cannot add items to ") + describe(heap_, target));
    auto& seq = heap_.seqs[target.ref];
    seq.insert(seq.end(), items.begin(), items.end());
  }

  bool memo() {
    switch (op_) {
      case 'p': memo_[static_cast<uint64_t>(decimal(line()))] = top(); return true;
      case 'q': memo_[take(1)[0]] = top(); return true;
      case 'r': memo_[u32(take(4))] = top(); return true;
      case 0x94: memo_[memo_.size()] = top(); return true;
      case 'g': case 'h': case 'j': {
        const uint64_t key = op_ == 'g' ? static_cast<uint64_t>(decimal(line())) : op_ == 'h' ? take(1)[0] : u32(take(4));
        const auto it = memo_.find(key);
        if (it == memo_.end()) bad("memo key " + std::to_string(key) + " was never stored");
        push(it->second);
        return true;
      }
      default: return false;
    }
  }

  bool objects() {
    switch (op_) {
      case 'c': {
        const std::string module = line(), name = line();
        push(global(module, name));
        return true;
      }
      case 0x93: {
        const Value name = pop(), module = pop();
        if (module.kind != Kind::Str || name.kind != Kind::Str) bad("module and name must be strings");
        push(global(heap_.texts[module.ref], heap_.texts[name.ref]));
        return true;
      }
      case 'R': {
        const Value args = pop(), callable = pop();
        push(reduce(callable, args, 0));
        return true;
      }
      case 'b': pop(); top(); return true;  // BUILD: an object's state, which we do not need
      case 0x81: case 0x92: {
        if (op_ == 0x92) pop();  // kwargs
        const Value args = pop(), cls = pop();
        if (args.kind != Kind::Tuple) bad("the arguments must be a tuple, found " + describe(heap_, args));
        if (cls.kind != Kind::Global || heap_.globals[cls.ref].role != Role::Opaque)
          bad("cannot instantiate " + describe(heap_, cls));
        push(opaque(heap_.globals[cls.ref].dotted() + " instance"));
        return true;
      }
      case 'Q': {
        const Value pid = pop();
        push(persistent_load(pid));
        return true;
      }
      default: return false;
    }
  }

  // --- calls -------------------------------------------------------------------------------------------
  Value reduce(const Value& callable, const Value& args_value, int depth) {
    if (args_value.kind != Kind::Tuple) bad("the arguments must be a tuple, found " + describe(heap_, args_value));
    if (callable.kind == Kind::Opaque) return opaque("result of calling " + heap_.texts[callable.ref]);
    if (callable.kind != Kind::Global) bad("cannot call " + describe(heap_, callable));
    const Global g = heap_.globals[callable.ref];
    const std::vector<Value> args = heap_.seqs[args_value.ref];  // a copy: the arena may grow
    const auto want = [&](size_t lo, size_t hi) {
      if (args.size() < lo || args.size() > hi)
        bad(g.dotted() + " takes " + std::to_string(lo) + (lo == hi ? "" : " to " + std::to_string(hi)) +
            " arguments, got " + std::to_string(args.size()));
    };
    switch (g.role) {
      case Role::Dict:
        want(0, g.name == "defaultdict" ? 1 : 0);
        return sequence(Kind::Dict);
      case Role::RebuildTensor: want(4, 4); return rebuild_tensor(g, args, nullptr);
      case Role::RebuildTensorV2: want(6, 7); return rebuild_tensor(g, args, nullptr);
      case Role::RebuildTensorV3: {
        want(7, 8);
        const Value& dtype = args[6];
        if (dtype.kind != Kind::Global || heap_.globals[dtype.ref].role != Role::DTypeObject)
          bad("the dtype argument of " + g.dotted() + " is " + describe(heap_, dtype) + ", not a torch dtype");
        const Global& d = heap_.globals[dtype.ref];
        if (d.type == nullptr) bad("tensors of dtype " + d.dotted() + " are not supported");
        return rebuild_tensor(g, args, d.type);
      }
      case Role::RebuildParameter:
        want(3, 4);
        if (args[0].kind != Kind::Tensor) bad(g.dotted() + " needs a tensor, got " + describe(heap_, args[0]));
        return args[0];
      case Role::RebuildFromType: {
        want(4, 4);
        if (depth > 0 || args[0].kind != Kind::Global || args[2].kind != Kind::Tuple)
          bad(g.dotted() + " needs a tensor function and its arguments");
        const Value t = reduce(args[0], args[2], depth + 1);
        if (t.kind != Kind::Tensor) bad(g.dotted() + " did not make a tensor");
        return t;
      }
      case Role::StorageClass:
      case Role::DTypeObject: bad("cannot call " + g.dotted());
      case Role::Opaque: break;
    }
    return opaque("result of calling " + g.dotted());
  }

  // torch.save's persistent id: ("storage", storage class, key, location, numel).
  Value persistent_load(const Value& pid) {
    const std::vector<Value>* f = pid.kind == Kind::Tuple ? &heap_.seqs[pid.ref] : nullptr;
    if (f == nullptr || f->size() != 5 || (*f)[0].kind != Kind::Str || heap_.texts[(*f)[0].ref] != "storage" ||
        (*f)[1].kind != Kind::Global || (*f)[2].kind != Kind::Str || (*f)[4].kind != Kind::Int)
      bad("persistent id " + describe(heap_, pid) +
          " is not (\"storage\", storage type, key, location, size)");
    const Global& type = heap_.globals[(*f)[1].ref];
    if (type.role != Role::StorageClass) bad("persistent id names " + type.dotted() + ", not a storage type");
    if (type.type == nullptr && !type.untyped)
      bad("storage type " + type.dotted() + " is not supported (supported: " + supported_storages() + ")");
    const std::string& key = heap_.texts[(*f)[2].ref];
    const std::string entry_name = prefix_ + "data/" + key;
    const Entry* entry = archive_.find(entry_name);
    if (entry == nullptr) bad("storage " + quoted(key) + " is missing: the archive has no entry " + quoted(entry_name));
    const int64_t numel = (*f)[4].number;
    const uint64_t item = type.type != nullptr ? type.type->bytes : 1;
    uint64_t bytes = 0;
    if (numel < 0 || __builtin_mul_overflow(static_cast<uint64_t>(numel), item, &bytes) || bytes != entry->size)
      bad("storage " + quoted(key) + " of " + std::to_string(numel) + " " + type.name + " elements does not match its entry's " +
          std::to_string(entry->size) + " bytes");
    heap_.storages.push_back({entry, type.type, bytes});
    return Value{Kind::Storage, 0, 0, heap_.storages.size() - 1};
  }

  Shape int_tuple(const Value& v, const std::string& fn, const char* what) {
    if (v.kind != Kind::Tuple && v.kind != Kind::List) bad("the " + std::string(what) + " of " + fn + " is " + describe(heap_, v) + ", not a tuple");
    const std::vector<Value>& items = heap_.seqs[v.ref];
    if (items.size() > kMaxDims) bad(fn + ": more than " + std::to_string(kMaxDims) + " dimensions");
    Shape out;
    for (const Value& x : items) {
      if (x.kind != Kind::Int || x.number < 0) bad("the " + std::string(what) + " of " + fn + " must hold non-negative ints");
      out.push_back(x.number);
    }
    return out;
  }

  // _rebuild_tensor[_v2/_v3](storage, storage_offset, size, stride, ...): a strided view of the
  // storage, checked to lie inside it.
  Value rebuild_tensor(const Global& g, const std::vector<Value>& args, const ElementType* dtype) {
    const std::string fn = g.dotted();
    if (args[0].kind != Kind::Storage) bad("the storage of " + fn + " is " + describe(heap_, args[0]) + ", not a storage");
    const StorageRef& storage = heap_.storages[args[0].ref];
    TensorRef t{args[0].ref, dtype != nullptr ? dtype : storage.type, 0, int_tuple(args[2], fn, "size"),
                int_tuple(args[3], fn, "stride")};
    if (t.type == nullptr) bad(fn + " on an untyped storage needs a dtype");
    if (args[1].kind != Kind::Int || args[1].number < 0) bad("the storage offset of " + fn + " must be a non-negative int");
    t.offset = args[1].number;
    if (t.shape.size() != t.strides.size())
      bad(fn + ": size " + shape_str(t.shape) + " and stride " + shape_str(t.strides) + " differ in length");
    const uint64_t capacity = storage.bytes / t.type->bytes;
    uint64_t numel = 1, last = static_cast<uint64_t>(t.offset);  // element count; index of the last element
    bool overflow = false;
    for (size_t d = 0; d < t.shape.size(); ++d) {
      uint64_t step = 0;
      overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(t.shape[d]), &numel);
      if (t.shape[d] > 0) {
        overflow |= __builtin_mul_overflow(static_cast<uint64_t>(t.shape[d] - 1), static_cast<uint64_t>(t.strides[d]), &step);
        overflow |= __builtin_add_overflow(last, step, &last);
      }
    }
    if (overflow || numel > uint64_t(std::numeric_limits<int64_t>::max()))
      bad(fn + ": size " + shape_str(t.shape) + " with stride " + shape_str(t.strides) + " overflows");
    if (numel > 0 && last >= capacity)
      bad(fn + ": a view of size " + shape_str(t.shape) + ", stride " + shape_str(t.strides) + ", offset " +
          std::to_string(t.offset) + " reaches element " + std::to_string(last) + " of a storage of " +
          std::to_string(capacity) + " " + t.type->dtype + " elements");
    heap_.tensors.push_back(std::move(t));
    return Value{Kind::Tensor, 0, 0, heap_.tensors.size() - 1};
  }

  const Archive& archive_;
  std::string prefix_;  // of the archive's entries, "<archive>/"
  std::string where_;   // "<path>: <archive>/data.pkl"
  Bytes data_;
  Heap& heap_;
  size_t pos_ = 0, op_at_ = 0;
  unsigned char op_ = 0;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;
};

}  // namespace

Value unpickle(const Archive& archive, const Entry& pkl, const std::string& prefix, Heap& heap) {
  return Unpickler(archive, pkl, prefix, heap).run();
}

}  // namespace diffkd::torch_pickle
