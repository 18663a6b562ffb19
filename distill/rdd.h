#pragma once
// Relational Diffusion Distillation (Feng et al. 2024; METHODS.md 4): Progressive Distillation
// whose student is trained, instead of (or besides) PD's pixel loss, to make a frozen feature
// network see the same things in its one-step x0 as in the two-step target x~. Both images go
// through the feature network (a classifier trained on [-1, 1] images, NOT the evaluation one),
// which returns a map F [B, C, H, W] (before its last ReLU) and f = GAP(ReLU(F)) [B, C]:
//
//  (a) RCFD feature KL (weight 1):  L_cfd = KL(softmax(f_T / tau_cfd) || softmax(f_S)) / B,
//      the temperature (0.9) on the teacher side only.
//  (b) pixel-to-pixel relations (IS-P2P, weight 1): with F^ the per-pixel unit vectors,
//      s[b, d, i, j] = <F^_b[:, i], F^_d[:, j]> over ALL ordered sample pairs (b, d) of the batch;
//      L = KL(softmax_j(s_T / tau) || softmax_j(s_S / tau)) summed over rows (b, d, i) / (B B HW).
//  (c) memory-bank relations (M-P2P, weight 0.1): a queue of teacher pixel embeddings; each step
//      first enqueues K random teacher pixels, then compares teacher pixels F^_T and projected
//      student pixels S^ = normalise(head(F_S)) against fixed, evenly spaced contrast rows of the
//      queue: l = (pixel . rows^T) / tau_contrast, L = KL(softmax(l_T / tau_kd) || softmax(l_S / tau_kd))
//      summed / B * tau_kd^2 / HW. The head (conv1x1 - BN - ReLU - conv1x1, no biases) trains with
//      its own Adam.
// The official queue flattens the NCHW teacher map with a raw view(C, -1), so a queue "row" mixes
// samples, channels and pixels; "faithful" reproduces that, "clean" (the default) takes real pixel
// vectors (permute to channels x pixels first).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distill/progressive.h"
#include "nn/classifier.h"
#include "nn/layers.h"
#include "nn/optim.h"

namespace diffkd::distill {

Tensor rcfd_loss(const Tensor& teacher_map, const Tensor& student_map, double tau_cfd);
Tensor pixel_relation_loss(const Tensor& teacher_map, const Tensor& student_map, double tau);
// Per-pixel unit vectors over channels, F.normalize(F, dim=1).
Tensor pixel_unit_vectors(const Tensor& map);

class ProjectionHead : public nn::Module {
 public:
  ProjectionHead(int64_t channels, uint64_t seed);
  Tensor forward(const Tensor& map);  // [B, C, H, W] -> [B, C, H, W]
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm> bn;
};

class MemoryBank {
 public:
  // rows x channels, filled with unit rows drawn from `seed`; `contrast` evenly spaced rows are used.
  MemoryBank(int64_t rows, int64_t channels, int64_t contrast, bool faithful, uint64_t seed);
  // Writes the given columns of the teacher's unit-vector map (as the official view or clean) at
  // the pointer: rows ptr.. (or the last K rows, the pointer then back to 0).
  void enqueue(const Tensor& teacher_units, const std::vector<int64_t>& columns);
  // The fixed contrast rows round(linspace(0, rows - 1, contrast)).
  Tensor contrast_rows() const;
  Tensor queue;  // [rows, C], on the host (enqueue writes rows in place)
  int64_t pointer = 0;
  std::vector<int64_t> contrast_index;
  bool faithful = false;
};

Tensor memory_relation_loss(const Tensor& teacher_units, const Tensor& student_units, const Tensor& contrast_rows,
                            double tau_contrast, double tau_kd);

struct RddWeights {
  double tau_cfd = 0.9, tau_isp2p = 1.0, tau_contrast = 0.1, tau_kd = 1.0;
  double cfd = 1.0, isp2p = 1.0, mp2p = 0.1;
  double pd = 0.0;  // the optional PD pixel loss (official --logits), off in the released command
};

struct RddOptions {
  std::string feature_net;  // a classifier file (train-classifier), NOT the evaluation classifier
  RddWeights weights;
  int64_t queue_rows = 4096;  // 20,000 at CIFAR-10 scale
  int64_t contrast_rows = 512;  // 4,096 at CIFAR-10 scale
  int64_t enqueue = 128;      // K = min(pixels of the batch, 128)
  bool faithful_queue = false;  // the official raw-view flatten
  double head_lr = 1e-4;        // the projection head's own Adam (the official uses the student's lr)
  uint64_t seed = 0;
  Device device = cpu();  // the feature network's and the head's (the queue stays on the host)
};

// RDD as a stage objective of the PD loop (progressive.h): the student's x0 and the target x~
// through the frozen feature network, the three relational terms and optionally PD's loss.
// The head, its Adam and the queue start afresh each stage (each official RDD stage is its own run).
class RddObjective final : public StageObjective {
 public:
  explicit RddObjective(const RddOptions& options);
  std::string method() const override { return "rdd"; }
  nlohmann::json settings() const override;
  void begin_stage(int64_t stage) override;
  Tensor loss(const StageStep& s, std::vector<std::pair<std::string, double>>& parts) override;
  TensorList parameters() const override;  // the projection head's
  void after_update() override;
  void save(const std::string& folder) const override;
  void load(const std::string& folder) override;

 private:
  RddOptions o_;
  std::unique_ptr<nn::Classifier> features_;
  std::unique_ptr<ProjectionHead> head_;
  std::unique_ptr<nn::Adam> head_adam_;
  std::unique_ptr<MemoryBank> bank_;
  int64_t stage_ = 0;
};

}  // namespace diffkd::distill
