#include "autograd/node.h"

#include <atomic>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace diffkd {

namespace {
std::atomic<uint64_t> next_sequence_nr{0};
thread_local bool grad_mode_enabled = true;
}  // namespace

bool GradMode::is_enabled() { return grad_mode_enabled; }
void GradMode::set_enabled(bool enabled) { grad_mode_enabled = enabled; }

Node::Node(std::string name) : name_(std::move(name)), sequence_nr_(next_sequence_nr++) {}

// Destroying a node releases its edges and captured tensors, which may destroy further nodes.
// Rather than recursing, nested deletions are queued and run by the outermost call.
void delete_node_iteratively(Node* node) {
  thread_local std::vector<Node*> pending;
  thread_local bool deleting = false;
  pending.push_back(node);
  if (deleting) return;
  deleting = true;
  while (!pending.empty()) {
    Node* n = pending.back();
    pending.pop_back();
    delete n;
  }
  deleting = false;
}

FunctionNode::FunctionNode(std::string name, BackwardFn fn, Tensor saved_output, Shape output_shape)
    : Node(std::move(name)),
      fn_(std::move(fn)),
      saved_output_(std::move(saved_output)),
      saves_output_(saved_output_.defined()),
      output_shape_(std::move(output_shape)) {}

TensorList FunctionNode::apply(const Tensor& grad) {
  DK_CHECK(!released_, name(), ": backward through a graph that was already freed; pass ",
           "retain_graph=true to the first backward to run it twice");
  DK_CHECK(grad.shape() == output_shape_, name(), ": gradient of shape ", shape_str(grad.shape()),
           " for an output of shape ", shape_str(output_shape_));
  Tensor out;
  if (saves_output_) {  // the output again, as a tensor whose history is this node
    out = saved_output_;
    auto meta = std::make_shared<AutogradMeta>();
    meta->requires_grad = true;
    meta->grad_fn = shared_from_this();
    out.set_autograd_meta(std::move(meta));
  }
  std::vector<bool> needs(next_edges.size());
  for (size_t i = 0; i < needs.size(); ++i) needs[i] = next_edges[i] != nullptr;
  TensorList grads = fn_(GradContext{grad, out, needs});
  DK_CHECK(grads.size() == next_edges.size(), name(), ": backward returned ", grads.size(),
           " gradients for ", next_edges.size(), " inputs");
  return grads;
}

void FunctionNode::release() {
  fn_ = nullptr;
  saved_output_ = Tensor();
  released_ = true;
}

AccumulateGrad::AccumulateGrad(std::weak_ptr<AutogradMeta> leaf, Shape shape, DType dtype)
    : Node("AccumulateGrad"), leaf_(std::move(leaf)), shape_(std::move(shape)), dtype_(dtype) {}

TensorList AccumulateGrad::apply(const Tensor& grad) {
  auto meta = leaf_.lock();
  if (!meta) return {};  // the leaf is gone; nobody can read its gradient
  DK_CHECK(grad.shape() == shape_ && grad.dtype() == dtype_, "AccumulateGrad: gradient ",
           dtype_name(grad.dtype()), " ", shape_str(grad.shape()), " for a leaf ",
           dtype_name(dtype_), " ", shape_str(shape_));
  if (!meta->grad.defined()) {
    // Detach unless building a higher-order graph; copy so later in-place updates of .grad
    // (optimisers) never write into a tensor the graph still uses.
    // A gradient whose storage nothing else shares is taken as it is (the common case).
    const bool sole_owner = grad.storage().use_count() == 1 && grad.is_contiguous();
    meta->grad = GradMode::is_enabled() ? grad
                 : sole_owner           ? grad.detach()
                                        : grad.detach().clone_data();
  } else {
    meta->grad = add(meta->grad, grad);  // a new tensor: never in place
  }
  return {};
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  const auto& meta = t.autograd_meta();
  if (meta->grad_fn) return meta->grad_fn;
  std::shared_ptr<Node> acc = meta->grad_accumulator.lock();
  if (!acc) {
    acc = make_node<AccumulateGrad>(meta, t.shape(), t.dtype());
    meta->grad_accumulator = acc;
  }
  return acc;
}

Tensor record(const char* name, const TensorList& inputs, Tensor out, BackwardFn backward,
              bool save_output) {
  if (!GradMode::is_enabled()) return out;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return out;
  auto node = make_node<FunctionNode>(name, std::move(backward),
                                      save_output ? out.detach() : Tensor(), out.shape());
  node->next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next_edges.push_back(gradient_edge(t));
  auto meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
  out.set_autograd_meta(std::move(meta));
  return out;
}

}  // namespace diffkd
