#pragma once
// Element types. f32 is the working type; f64 exists for finite-difference gradchecks.
// i64 holds indices (class targets, gather/index_select indices, max-pool argmax).

#include <cstddef>
#include <cstdint>
#include <string>

namespace diffkd {

enum class DType : uint8_t { F32, F64, I64 };

inline size_t itemsize(DType t) { return t == DType::F32 ? 4 : 8; }
inline bool is_floating(DType t) { return t != DType::I64; }
std::string dtype_name(DType t);
[[noreturn]] void throw_dtype_error(const char* op, DType t);

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };

}  // namespace diffkd

namespace diffkd {

template <typename T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with T the C++ type of a floating dtype; kernels write
//   dispatch_float(t.dtype(), "op", [&](auto tag) { using T = typename decltype(tag)::type; ... });
template <typename F>
decltype(auto) dispatch_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::F32: return f(TypeTag<float>{});
    case DType::F64: return f(TypeTag<double>{});
    default: break;
  }
  throw_dtype_error(op, dtype);
}

// Same, including int64.
template <typename F>
decltype(auto) dispatch_all(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::F32: return f(TypeTag<float>{});
    case DType::F64: return f(TypeTag<double>{});
    case DType::I64: return f(TypeTag<int64_t>{});
  }
  throw_dtype_error(op, dtype);
}

}  // namespace diffkd
