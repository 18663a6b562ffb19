// Gradchecks of reductions (autograd/ops/reduce.cpp), views (view.cpp), joins and padding
// (join.cpp) and indexing (index.cpp).

#include "tests/autograd/gradcheck_harness.h"

namespace diffkd::testing {
namespace {

using L = const TensorList&;

std::vector<GradCase> reduce_cases() {
  return {
      {"sum_all_3x4", {{3, 4}}, [](L x) { return sum(x[0]); }, -1, 1, true},
      {"sum_dim1_3x4", {{3, 4}}, [](L x) { return sum(x[0], {1}); }, -1, 1, true},
      {"sum_dims02_keep_2x3x4", {{2, 3, 4}}, [](L x) { return sum(x[0], {0, 2}, true); }, -1, 1, true},
      {"mean_dim0_3x4", {{3, 4}}, [](L x) { return mean(x[0], {0}); }, -1, 1, true},
      {"mean_all_2x3x4", {{2, 3, 4}}, [](L x) { return mean(x[0]); }, -1, 1, true},
      // max: random inputs have no ties, so the finite difference is well defined
      {"max_dim1_3x5", {{3, 5}}, [](L x) { return max(x[0], {1}); }, -1, 1, true},
      {"max_dims12_keep_2x3x4", {{2, 3, 4}}, [](L x) { return max(x[0], {1, 2}, true); }},
      {"var_dim1_3x5", {{3, 5}}, [](L x) { return var(x[0], {1}); }, -1, 1, true},
      {"var_biased_all_2x3x4", {{2, 3, 4}}, [](L x) { return var(x[0], {}, false); }, -1, 1, true},
      {"sum_to_2x3x4_to_3x1", {{2, 3, 4}}, [](L x) { return sum_to(x[0], {3, 1}); }},
  };
}

std::vector<GradCase> view_cases() {
  return {
      {"reshape_3x4_to_2x6", {{3, 4}}, [](L x) { return reshape(x[0], {2, 6}) * 2.0; }},
      {"reshape_2x3x4_to_m1x4", {{2, 3, 4}}, [](L x) { return square(reshape(x[0], {-1, 4})); }, -1, 1, true},
      {"flatten_2x3x4_from1", {{2, 3, 4}}, [](L x) { return flatten(x[0], 1) * 3.0; }},
      {"unsqueeze_squeeze_3x4", {{3, 4}}, [](L x) { return squeeze(unsqueeze(x[0], 1), 1) * x[0]; }},
      {"permute_2x3x4_201", {{2, 3, 4}}, [](L x) { return square(permute(x[0], {2, 0, 1})); }, -1, 1, true},
      {"transpose_3x4", {{3, 4}}, [](L x) { return transpose(x[0], 0, 1) * 2.0; }},
      {"narrow_4x5_dim1_1_3", {{4, 5}}, [](L x) { return square(narrow(x[0], 1, 1, 3)); }, -1, 1, true},
      {"slice_step2_6x5_dim0", {{6, 5}}, [](L x) { return square(slice(x[0], 0, 1, 6, 2)); }, -1, 1, true},
      {"expand_3x1_to_3x4", {{3, 1}}, [](L x) { return square(expand(x[0], {3, 4})); }, -1, 1, true},
      {"expand_4_to_2x3x4", {{4}}, [](L x) { return expand(x[0], {2, 3, 4}) * 2.0; }},
      {"contiguous_3x4", {{3, 4}}, [](L x) { return contiguous(x[0]) * 2.0; }},
  };
}

std::vector<GradCase> join_index_cases() {
  return {
      {"concat_dim1_2x3_2x2", {{2, 3}, {2, 2}}, [](L x) { return square(concat({x[0], x[1]}, 1)); }, -1, 1, true},
      {"concat_dim0_2x3_1x3", {{2, 3}, {1, 3}}, [](L x) { return concat({x[0], x[1]}, 0) * 2.0; }},
      {"stack_dim1_3x4_3x4", {{3, 4}, {3, 4}}, [](L x) { return square(stack({x[0], x[1]}, 1)); }},
      {"pad_2x3x4_1_2_0_1", {{2, 3, 4}}, [](L x) { return square(pad(x[0], {1, 2, 0, 1}, 0.5)); }, -1, 1, true},
      {"index_select_rows_5x3", {{5, 3}}, [](L x) {
         return square(index_select(x[0], 0, from_vector({4, 0, 2, 0}, {4}, DType::I64)));
       }, -1, 1, true},
      {"index_select_dim1_2x5x3", {{2, 5, 3}}, [](L x) {
         return index_select(x[0], 1, from_vector({1, 3, 3}, {3}, DType::I64)) * 2.0;
       }},
  };
}

}  // namespace

DK_GRADCHECK_SUITE(ReduceGradcheck, reduce_cases());
DK_GRADCHECK_SUITE(ViewGradcheck, view_cases());
DK_GRADCHECK_SUITE(JoinIndexGradcheck, join_index_cases());

}  // namespace diffkd::testing
