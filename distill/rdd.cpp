// RDD's relational losses, memory bank and projection head (see rdd.h).

#include "distill/rdd.h"

#include <cmath>
#include <cstring>

#include "diffusion/gaussian.h"
#include "dist/batch_collectives.h"
#include "distill/common.h"
#include "eval/classifier_eval.h"
#include "nn/checkpoint.h"
#include "tensor/creation.h"
#include "tensor/philox.h"

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
  const Tensor new_rows = contiguous(to_device(to_dtype(normalize(picked, 1), queue.dtype()), cpu()));
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

RddObjective::RddObjective(const RddOptions& options) : o_(options) {
  DK_CHECK(o_.enqueue >= 1 && o_.enqueue <= o_.queue_rows && o_.contrast_rows <= o_.queue_rows,
           "rdd: --enqueue (", o_.enqueue, ") and --contrast-rows (", o_.contrast_rows,
           ") must be between 1 and --queue-rows (", o_.queue_rows, ")");
  features_ = eval::load_classifier(o_.feature_net).net;
  features_->to(o_.device);
  features_->eval();                     // BatchNorm on its running statistics
  features_->set_requires_grad(false);  // frozen: gradients pass through it to the student only
}

nlohmann::json RddObjective::settings() const {
  const RddWeights& w = o_.weights;
  return {{"feature_net", o_.feature_net}, {"tau_cfd", w.tau_cfd}, {"tau_isp2p", w.tau_isp2p},
          {"tau_contrast", w.tau_contrast}, {"tau_kd", w.tau_kd}, {"cfd", w.cfd}, {"isp2p", w.isp2p},
          {"mp2p", w.mp2p}, {"pd", w.pd}, {"queue_rows", o_.queue_rows}, {"contrast_rows", o_.contrast_rows},
          {"enqueue", o_.enqueue}, {"queue", o_.faithful_queue ? "faithful" : "clean"}, {"head_lr", o_.head_lr},
          {"seed", o_.seed}};
}

void RddObjective::begin_stage(int64_t stage) {
  stage_ = stage;
  const int64_t channels = features_->config().width2;
  head_ = std::make_unique<ProjectionHead>(channels, o_.seed * 1000 + 17 + stage);
  head_->to(o_.device);  // before its Adam takes the tensors
  head_->train();
  AdamHyper hyper;
  hyper.lr = o_.head_lr;
  head_adam_ = std::make_unique<nn::Adam>(head_->named_parameters(), hyper);
  bank_ = std::make_unique<MemoryBank>(o_.queue_rows, channels, o_.contrast_rows, o_.faithful_queue,
                                       o_.seed * 1000 + 29 + stage);
}

Tensor RddObjective::loss(const StageStep& s, std::vector<std::pair<std::string, double>>& parts) {
  const RddWeights& w = o_.weights;
  const Tensor x_student = diffusion::denoise(s.student_out, s.prediction, s.z_t, s.c).x0;
  // A padded run's images (--pad-to, e.g. 28 -> 32) reach the feature network by their centre,
  // the size it was trained on (nn::Classifier::run).
  // The relations couple the images of the whole batch: in a data-parallel run every rank gathers
  // the global batch's maps and computes the relational terms alike (dist/batch_collectives.h).
  const Tensor f_student = dist::gather_batch(features_->run(x_student).feature_map, s.shard, s.comm);
  Tensor f_teacher;
  {
    NoGradGuard no_grad;
    f_teacher = dist::gather_batch(features_->run(s.target.x_tilde).feature_map, s.shard, s.comm);
  }
  // Enqueue K random teacher pixels (keyed by the step) before the loss, as the official code.
  const Tensor teacher_units = pixel_unit_vectors(f_teacher);
  const int64_t columns = f_teacher.numel() / f_teacher.size(1), k = std::min(o_.enqueue, columns);
  bank_->enqueue(teacher_units,
                 keyed_permutation(columns, k, o_.seed ^ streams::kRddEnqueue, static_cast<uint64_t>(s.step)));

  const Tensor cfd = rcfd_loss(f_teacher, f_student, w.tau_cfd);
  const Tensor isp2p = pixel_relation_loss(f_teacher, f_student, w.tau_isp2p);
  const Tensor mp2p = memory_relation_loss(teacher_units, pixel_unit_vectors(head_->forward(f_student)),
                                           to_device(bank_->contrast_rows(), o_.device), w.tau_contrast, w.tau_kd);
  Tensor total = w.cfd * cfd + w.isp2p * isp2p + w.mp2p * mp2p;
  const double share = s.shard.weight();  // of the relational terms, alike on every rank
  parts = {{"cfd", cfd.item() * share}, {"isp2p", isp2p.item() * share}, {"mp2p", mp2p.item() * share}};
  if (w.pd > 0) {  // on this rank's rows
    const Tensor pd = progressive_loss("snr-trunc", s.student_out, s.prediction, s.z_t, s.c, s.target);
    total = total + w.pd * pd;
    parts.emplace_back("pd", pd.item() * share);
  }
  return dist::rank_share(total, s.shard);
}

TensorList RddObjective::parameters() const { return head_->parameters(); }

void RddObjective::after_update() {
  head_adam_->step();
  head_adam_->zero_grad();
}

void RddObjective::save(const std::string& folder) const {
  nn::save_model(folder + "/rdd-head.safetensors", *head_, "{}",
                 {{"pointer", std::to_string(bank_->pointer)}, {"stage", std::to_string(stage_)}});
  nn::save_training_state(folder + "/rdd-head-state.safetensors", *head_adam_, nullptr);
  safetensors::save(folder + "/rdd-queue.safetensors", {{"queue", bank_->queue}});
}

void RddObjective::load(const std::string& folder) {
  const nn::Metadata meta = nn::load_model(folder + "/rdd-head.safetensors", *head_);
  nn::load_training_state(folder + "/rdd-head-state.safetensors", *head_adam_, nullptr);
  bank_->queue = safetensors::load(folder + "/rdd-queue.safetensors").at("queue");
  bank_->pointer = nn::metadata_int(meta, "pointer", folder + "/rdd-head.safetensors");
}

}  // namespace diffkd::distill
