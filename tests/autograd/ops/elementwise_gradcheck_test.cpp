// Gradchecks of the elementwise ops (autograd/ops/binary.cpp, unary.cpp, activations.cpp):
// binary ops on equal and broadcast shapes, unary math and activations, each contiguous,
// permuted and sliced.

#include "tests/autograd/gradcheck_harness.h"

namespace diffkd::testing {
namespace {

using L = const TensorList&;

std::vector<GradCase> binary_cases() {
  std::vector<GradCase> cases;
  struct Op {
    const char* name;
    Tensor (*fn)(const Tensor&, const Tensor&);
    double low, high;
  };
  const Op ops[] = {{"add", add, -1, 1},         {"sub", sub, -1, 1},
                    {"mul", mul, -1, 1},         {"div", div, 0.5, 2},
                    {"pow", pow, 0.5, 2},        {"maximum", maximum, -1, 1},
                    {"minimum", minimum, -1, 1}};
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{3, 4}, {1, 4}}, {{3, 1}, {1, 4}}, {{2, 3, 4}, {4}}, {{2, 3}, {}}};
  for (const Op& op : ops)
    for (const auto& [a, b] : shapes) {
      auto fn = op.fn;
      cases.push_back({std::string(op.name) + "_a" + shape_tag(a) + "_b" + shape_tag(b), {a, b},
                       [fn](L x) { return fn(x[0], x[1]); }, op.low, op.high,
                       /*second_order=*/true});
    }
  cases.push_back({"where_a3x4_b1x4", {{3, 4}, {1, 4}}, [](L x) {
                     return where(gt(x[0], zeros_like(x[0])), x[0], x[1] * 2.0);
                   }});
  return cases;
}

std::vector<GradCase> unary_cases() {
  std::vector<GradCase> cases;
  struct Op {
    const char* name;
    TensorFunction fn;
    double low, high;
  };
  const std::vector<Op> ops = {
      {"neg", [](L x) { return neg(x[0]); }, -1, 1},
      {"affine", [](L x) { return x[0] * 3.0 - 1.0; }, -1, 1},
      {"scalar_div", [](L x) { return 2.0 / x[0]; }, 0.5, 2},
      {"exp", [](L x) { return exp(x[0]); }, -1, 1},
      {"log", [](L x) { return log(x[0]); }, 0.5, 2},
      {"sqrt", [](L x) { return sqrt(x[0]); }, 0.5, 2},
      {"rsqrt", [](L x) { return rsqrt(x[0]); }, 0.5, 2},
      {"abs", [](L x) { return abs(x[0]); }, 0.1, 1},   // away from the kink at 0
      {"abs_negative", [](L x) { return abs(x[0]); }, -1, -0.1},
      {"square", [](L x) { return square(x[0]); }, -1, 1},
      {"pow_scalar", [](L x) { return pow(x[0], 2.5); }, 0.5, 2},
      {"clamp", [](L x) { return clamp(x[0], -0.5, 0.5); }, -1, 1},
      {"relu", [](L x) { return relu(x[0]); }, -1, 1},
      {"leaky_relu", [](L x) { return leaky_relu(x[0], 0.2); }, -1, 1},
      {"silu", [](L x) { return silu(x[0]); }, -2, 2},
      {"sigmoid", [](L x) { return sigmoid(x[0]); }, -2, 2},
      {"tanh", [](L x) { return tanh(x[0]); }, -2, 2},
      {"softplus", [](L x) { return softplus(x[0]); }, -2, 2},
  };
  for (const Op& op : ops)
    for (const Shape& s : {Shape{3, 4}, Shape{2, 3, 5}})
      cases.push_back({std::string(op.name) + "_" + shape_tag(s), {s}, op.fn, op.low, op.high,
                       /*second_order=*/true});
  return cases;
}

}  // namespace

DK_GRADCHECK_SUITE(BinaryOpGradcheck, binary_cases());
DK_GRADCHECK_SUITE(UnaryOpGradcheck, unary_cases());

}  // namespace diffkd::testing
