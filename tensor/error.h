#pragma once
// diffkd::Error: the one exception type of the library. Messages name the op, the shapes and what
// was expected, e.g. "conv2d: input [2,3,32,32] has 3 channels, weight [64,4,3,3] expects 4".
// apps/ catches it in main, prints one line and exits non-zero.

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace diffkd {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// "[2,3,32,32]"
std::string shape_str(const std::vector<int64_t>& shape);

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into an Error message.
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Error(os.str());
}

}  // namespace diffkd

// DK_CHECK(cond, "op: message ", value, ...) throws diffkd::Error when cond is false.
#define DK_CHECK(cond, ...)                  \
  do {                                       \
    if (!(cond)) ::diffkd::fail(__VA_ARGS__); \
  } while (0)
