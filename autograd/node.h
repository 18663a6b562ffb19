#pragma once
// The define-by-run graph. Every differentiable op produces one output tensor whose grad_fn is a
// Node; the Node holds one edge per input (to the input's own grad_fn, or to the grad
// accumulator of a leaf, or nothing when the input needs no gradient) and a backward closure
// that maps the output's gradient to the inputs' gradients. The closure captures what it needs
// (usually the inputs); the op's output is handed to it by the engine instead, so that saving
// it creates no reference cycle.
//
// Nodes are destroyed iteratively (see make_node): a chain of 100,000 ops would otherwise
// overflow the stack through nested shared_ptr destructors.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace diffkd {

using TensorList = std::vector<Tensor>;

// What a backward closure receives.
struct GradContext {
  const Tensor& grad;               // gradient w.r.t. the op's output
  const Tensor& out;                // the op's output (defined only if the op asked to save it)
  const std::vector<bool>& needs;   // needs[i]: input i wants a gradient
  bool needs_grad(size_t i) const { return needs[i]; }
};

using BackwardFn = std::function<TensorList(const GradContext&)>;

class Node : public std::enable_shared_from_this<Node> {
 public:
  explicit Node(std::string name);
  virtual ~Node() = default;

  const std::string& name() const { return name_; }
  uint64_t sequence_nr() const { return sequence_nr_; }
  // Gradients for next_edges, in order; undefined entries mean "no gradient".
  virtual TensorList apply(const Tensor& grad) = 0;
  // Frees saved state after backward unless retain_graph.
  virtual void release() {}

  std::vector<std::shared_ptr<Node>> next_edges;  // nullptr where no gradient flows

 private:
  std::string name_;
  uint64_t sequence_nr_;  // creation order; backward runs later nodes first
};

// An op's backward.
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn, Tensor saved_output, Shape output_shape);
  TensorList apply(const Tensor& grad) override;
  void release() override;

 private:
  BackwardFn fn_;
  Tensor saved_output_;  // detached; re-attached to this node when handed to fn_
  bool saves_output_;
  Shape output_shape_;
  bool released_ = false;
};

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                              // leaves: accumulated gradient
  std::shared_ptr<Node> grad_fn;            // non-leaves: the node that made this tensor
  std::weak_ptr<Node> grad_accumulator;     // leaves: shared by every use of the leaf
};

// Leaf sink: adds the incoming gradient into the leaf's .grad.
class AccumulateGrad final : public Node {
 public:
  AccumulateGrad(std::weak_ptr<AutogradMeta> leaf, Shape shape, DType dtype);
  TensorList apply(const Tensor& grad) override;
  const std::weak_ptr<AutogradMeta>& leaf() const { return leaf_; }

 private:
  std::weak_ptr<AutogradMeta> leaf_;
  Shape shape_;
  DType dtype_;
};

// Creates a node owned by a shared_ptr whose deleter defers nested deletions to a loop.
template <typename T, typename... Args>
std::shared_ptr<T> make_node(Args&&... args);

void delete_node_iteratively(Node* node);

template <typename T, typename... Args>
std::shared_ptr<T> make_node(Args&&... args) {
  return std::shared_ptr<T>(new T(std::forward<Args>(args)...),
                            [](T* p) { delete_node_iteratively(p); });
}

// The edge through which a gradient reaches t: its grad_fn, its leaf accumulator, or nullptr.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Records `out` as the result of a differentiable op on `inputs`. If grad mode is on and any
// input requires a gradient, out gets a FunctionNode running `backward`; otherwise out is
// returned unchanged. With save_output, the closure receives out in GradContext::out.
Tensor record(const char* name, const TensorList& inputs, Tensor out, BackwardFn backward,
              bool save_output = false);

}  // namespace diffkd
