#pragma once
// Table-driven gradchecks: each case names its op and shapes, builds f64 leaves in the requested
// layout, and runs the whole-Jacobian gradcheck (and optionally the second-order one).
//
// Layouts: Contiguous leaves; Permuted leaves (stored with the last two dims swapped and
// transposed back inside f, so the op sees a non-contiguous input); Sliced leaves (stored with
// the last dim doubled and read with step 2); Expanded leaves (stored with a last dim of 1 and
// expanded inside f, so the op reads a stride-0 view and its gradient must be summed back).
// Broadcasting is also covered by cases whose shapes broadcast.

#include <gtest/gtest.h>

#include <string>

#include "autograd/gradcheck.h"

namespace diffkd::testing {

enum class Layout { Contiguous, Permuted, Sliced, Expanded };

struct GradCase {
  std::string name;  // shows the op and shapes, e.g. "add_a2x3_b1x3"
  std::vector<Shape> shapes;
  TensorFunction f;
  double low = -1.0, high = 1.0;  // leaves drawn uniformly here (keep away from kinks/poles)
  bool second_order = false;      // also run gradgradcheck
  GradcheckOptions options{};
  bool expandable = true;  // false where equal values along the last dim are a kink (max)
};

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous: return "contiguous";
    case Layout::Permuted: return "permuted";
    case Layout::Sliced: return "sliced";
    case Layout::Expanded: return "expanded";
  }
  return "?";
}

// Leaves for `shapes` in `layout`, and f adapted to read them as the op's inputs.
inline std::pair<TensorList, TensorFunction> make_inputs(const GradCase& c, Layout layout,
                                                         uint64_t seed) {
  Generator gen(seed);
  TensorList leaves;
  for (const Shape& s : c.shapes) {
    Shape stored = s;
    if (layout == Layout::Permuted && s.size() >= 2) std::swap(stored[s.size() - 1], stored[s.size() - 2]);
    if (layout == Layout::Sliced && !s.empty()) stored.back() *= 2;
    if (layout == Layout::Expanded && !s.empty()) stored.back() = 1;
    leaves.push_back(uniform(stored, c.low, c.high, gen, DType::F64).requires_grad_());
  }
  TensorFunction adapted = [f = c.f, shapes = c.shapes, layout](const TensorList& xs) {
    TensorList views;
    for (size_t i = 0; i < xs.size(); ++i) {
      const size_t rank = shapes[i].size();
      if (layout == Layout::Permuted && rank >= 2) views.push_back(transpose(xs[i], -1, -2));
      else if (layout == Layout::Sliced && rank >= 1) views.push_back(slice(xs[i], -1, 0, xs[i].size(-1), 2));
      else if (layout == Layout::Expanded && rank >= 1) views.push_back(expand(xs[i], shapes[i]));
      else views.push_back(xs[i]);
    }
    return f(views);
  };
  return {leaves, adapted};
}

inline std::string shape_tag(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return s.empty() ? "scalar" : out;
}

inline void run_gradcheck(const GradCase& c, Layout layout) {
  auto [leaves, f] = make_inputs(c, layout, 42);
  if (layout != Layout::Contiguous) {
    // The non-contiguous layouts must really hand the op a non-contiguous input.
    bool any_strided = false;
    for (size_t i = 0; i < leaves.size(); ++i) {
      const Tensor& x = leaves[i];
      Tensor v = x;
      if (layout == Layout::Permuted && x.dim() >= 2) v = transpose(x, -1, -2);
      if (layout == Layout::Sliced && x.dim() >= 1) v = slice(x, -1, 0, x.size(-1), 2);
      if (layout == Layout::Expanded && x.dim() >= 1) v = expand(x, c.shapes[i]);
      any_strided = any_strided || !v.is_contiguous();
    }
    ASSERT_TRUE(any_strided) << c.name << ": no input is non-contiguous in this layout";
  }
  const GradcheckResult r = gradcheck(f, leaves, c.options);
  EXPECT_TRUE(r.ok) << c.name << " (" << layout_name(layout) << "): " << r.message;
  if (c.second_order) {
    const GradcheckResult r2 = gradgradcheck(f, leaves, c.options);
    EXPECT_TRUE(r2.ok) << c.name << " second order (" << layout_name(layout) << "): " << r2.message;
  }
}

struct GradParam {
  GradCase c;
  Layout layout;
};

inline void PrintTo(const GradParam& p, std::ostream* os) {
  *os << p.c.name << " (" << layout_name(p.layout) << ")";
}

inline std::vector<GradParam> all_layouts(const std::vector<GradCase>& cases) {
  std::vector<GradParam> out;
  for (const auto& c : cases) {
    bool permutable = false, sliceable = false;
    for (const Shape& s : c.shapes) {
      permutable = permutable || (s.size() >= 2 && s[s.size() - 1] > 1 && s[s.size() - 2] > 1);
      sliceable = sliceable || (!s.empty() && s.back() > 1);
    }
    out.push_back({c, Layout::Contiguous});
    if (permutable) out.push_back({c, Layout::Permuted});
    if (sliceable) out.push_back({c, Layout::Sliced});
    if (sliceable && c.expandable) out.push_back({c, Layout::Expanded});
  }
  return out;
}

inline std::string param_name(const ::testing::TestParamInfo<GradParam>& info) {
  return info.param.c.name + "_" + layout_name(info.param.layout);
}

}  // namespace diffkd::testing

// Declares a parameterised gradcheck suite over `cases` in all three layouts.
#define DK_GRADCHECK_SUITE(Suite, cases)                                                    \
  class Suite : public ::testing::TestWithParam<::diffkd::testing::GradParam> {};          \
  TEST_P(Suite, MatchesFiniteDifferences) {                                                 \
    ::diffkd::testing::run_gradcheck(GetParam().c, GetParam().layout);                      \
  }                                                                                         \
  INSTANTIATE_TEST_SUITE_P(Ops, Suite,                                                      \
                           ::testing::ValuesIn(::diffkd::testing::all_layouts(cases)),      \
                           ::diffkd::testing::param_name)
