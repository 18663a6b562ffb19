// RDD's relational losses, memory bank and projection head (see rdd.h).

#include "distill/rdd.h"

#include <cmath>
#include <cstring>

#include "tensor/creation.h"

namespace diffkd::distill {

Tensor pixel_unit_vectors(const Tensor& map) { return normalize(map, 1); }

Tensor rcfd_loss(const Tensor& teacher_map, const Tensor& student_map, double tau_cfd) {
  const Tensor f_t = mean(relu(teacher_map), {2, 3}), f_s = mean(relu(student_map), {2, 3});
  return kl_div(log_softmax(f_s, 1), softmax(f_t / tau_cfd, 1), Reduction::Sum) / static_cast<double>(f_s.size(0));
}

namespace {

// [B, C, H, W] -> [B, HW, C]: one row per pixel (pixel index h W + w).
Tensor pixels(const Tensor& map) {
  return permute(reshape(map, {map.size(0), map.size(1), map.size(2) * map.size(3)}), {0, 2, 1});
}

// s[b, d, i, j] = <u_b[:, i], u_d[:, j]> as [B, B, HW, HW].
Tensor pair_similarities(const Tensor& units) {
  const int64_t b = units.size(0), hw = units.size(2) * units.size(3);
  const Tensor all = reshape(pixels(units), {b * hw, units.size(1)});  // rows (b, i)
  return permute(reshape(matmul(all, transpose(all, 0, 1)), {b, hw, b, hw}), {0, 2, 1, 3});
}

}  // namespace

Tensor pixel_relation_loss(const Tensor& teacher_map, const Tensor& student_map, double tau) {
  const int64_t b = teacher_map.size(0), hw = teacher_map.size(2) * teacher_map.size(3);
  const Tensor s_t = pair_similarities(pixel_unit_vectors(teacher_map));
  const Tensor s_s = pair_similarities(pixel_unit_vectors(student_map));
  return kl_div(log_softmax(s_s / tau, -1), softmax(s_t / tau, -1), Reduction::Sum) / static_cast<double>(b * b * hw);
}

Tensor memory_relation_loss(const Tensor& teacher_units, const Tensor& student_units, const Tensor& contrast_rows,
                            double tau_contrast, double tau_kd) {
  const int64_t b = teacher_units.size(0), hw = teacher_units.size(2) * teacher_units.size(3);
  const Tensor rows_t = transpose(contrast_rows, 0, 1);
  const Tensor l_t = matmul(pixels(teacher_units), rows_t) / tau_contrast;  // [B, HW, M]
  const Tensor l_s = matmul(pixels(student_units), rows_t) / tau_contrast;
  return kl_div(log_softmax(l_s / tau_kd, -1), softmax(l_t / tau_kd, -1), Reduction::Sum) / static_cast<double>(b) *
         (tau_kd * tau_kd) / static_cast<double>(hw);
}

ProjectionHead::ProjectionHead(int64_t channels, uint64_t seed) {
  Generator gen(seed);
  conv1 = register_module("0", std::make_shared<nn::Conv2d>(channels, channels, 1, gen, 1, 0, false));
  bn = register_module("1", std::make_shared<nn::BatchNorm>(channels));
  conv2 = register_module("3", std::make_shared<nn::Conv2d>(channels, channels, 1, gen, 1, 0, false));
}

Tensor ProjectionHead::forward(const Tensor& map) { return conv2->forward(relu(bn->forward(conv1->forward(map)))); }

MemoryBank::MemoryBank(int64_t rows, int64_t channels, int64_t contrast, bool faithful_view, uint64_t seed)
    : faithful(faithful_view) {
  DK_CHECK(rows >= 2 && contrast >= 1 && contrast <= rows, "RDD memory bank: ", contrast, " contrast rows of ", rows);
  Generator gen(seed);
  queue = normalize(randn({rows, channels}, gen), 1);
  for (int64_t k = 0; k < contrast; ++k)  // np.round(np.linspace(0, rows - 1, contrast)): halves to even
    contrast_index.push_back(contrast == 1 ? 0
                                           : static_cast<int64_t>(std::nearbyint(static_cast<double>(k) * (rows - 1) /
                                                                                  (contrast - 1))));
}

void MemoryBank::enqueue(const Tensor& teacher_units, const std::vector<int64_t>& columns) {
  NoGradGuard no_grad;
  const int64_t c = teacher_units.size(1), k = static_cast<int64_t>(columns.size()), rows = queue.size(0);
  DK_CHECK(c == queue.size(1) && k <= rows, "RDD memory bank: enqueue of ", k, " columns of ", c,
           " channels into a queue of ", rows, "x", queue.size(1));
  // [C, B*H*W]: the official raw view of the NCHW buffer, or the channel vectors of real pixels.
  const Tensor matrix = faithful ? reshape(contiguous(teacher_units), {c, -1})
                                 : reshape(permute(teacher_units, {1, 0, 2, 3}), {c, -1});
  std::vector<double> idx(columns.begin(), columns.end());
  const Tensor picked = transpose(index_select(matrix, 1, from_vector(idx, {k}, DType::I64)), 0, 1);  // [K, C]
  const Tensor new_rows = contiguous(to_dtype(normalize(picked, 1), queue.dtype()));
  int64_t start = pointer;
  if (pointer + k >= rows) {  // the official rule: the last K rows, and back to the start
    start = rows - k;
    pointer = 0;
  } else {
    pointer += k;
  }
  queue = contiguous(queue);
  std::memcpy(static_cast<char*>(queue.raw_data()) + start * c * itemsize(queue.dtype()), new_rows.raw_data(),
              static_cast<size_t>(k * c) * itemsize(queue.dtype()));
}

Tensor MemoryBank::contrast_rows() const {
  std::vector<double> idx(contrast_index.begin(), contrast_index.end());
  return index_select(queue, 0, from_vector(idx, {static_cast<int64_t>(idx.size())}, DType::I64));
}

}  // namespace diffkd::distill
