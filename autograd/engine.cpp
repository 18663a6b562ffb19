#include "autograd/engine.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "tensor/creation.h"

namespace diffkd {

namespace {

struct LaterFirst {
  bool operator()(const Node* a, const Node* b) const { return a->sequence_nr() < b->sequence_nr(); }
};

// Runs backward from roots. If `captured` is non-empty, gradients arriving at those nodes are
// stored in `captured_grads` and no leaf .grad is touched; only nodes that lead to a captured
// node run. Otherwise every AccumulateGrad reached adds into its leaf.
void run_backward(const TensorList& roots, const TensorList& root_grads, bool retain_graph,
                  bool create_graph, const std::vector<Node*>& captured,
                  std::unordered_map<Node*, Tensor>* captured_grads) {
  GradModeGuard mode(create_graph);
  // As in PyTorch, retain_graph defaults to create_graph: a differentiable gradient is usually
  // differentiated again through the same graph (WGAN-GP's penalty then the critic loss).
  retain_graph = retain_graph || create_graph;

  // 1. Count incoming edges of every reachable node (iterative DFS).
  std::unordered_map<Node*, int> dependencies;
  std::vector<Node*> order;  // discovery order, used to find nodes that lead to captures
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  std::unordered_map<Node*, Tensor> buffers;
  for (size_t i = 0; i < roots.size(); ++i) {
    std::shared_ptr<Node> root = gradient_edge(roots[i]);
    DK_CHECK(root != nullptr, "backward: output ", i, " of shape ", shape_str(roots[i].shape()),
             " does not require grad (no input of it requires grad, or it was computed under ",
             "NoGradGuard)");
    Tensor g = root_grads[i];
    Tensor& buf = buffers[root.get()];
    buf = buf.defined() ? add(buf, g) : g;
    if (seen.insert(root.get()).second) stack.push_back(root.get());
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (const auto& next : n->next_edges) {
      if (!next) continue;
      ++dependencies[next.get()];
      if (seen.insert(next.get()).second) stack.push_back(next.get());
    }
  }

  // 2. With captures, run only nodes that lead to a captured node through their inputs; a
  //    captured node itself only receives its gradient (it is not run unless it leads to
  //    another capture).
  std::unordered_set<Node*> leads;
  const bool capturing = !captured.empty();
  if (capturing) {
    std::unordered_set<Node*> targets(captured.begin(), captured.end());
    // DFS order is not topological in general: sweep children-first until nothing changes.
    bool changed = true;
    while (changed) {
      changed = false;
      for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Node* n = *it;
        if (leads.count(n)) continue;
        for (const auto& next : n->next_edges)
          if (next && (targets.count(next.get()) || leads.count(next.get()))) {
            leads.insert(n);
            changed = true;
            break;
          }
      }
    }
  }

  // 3. Run nodes whose every incoming gradient has arrived, latest-created first.
  std::priority_queue<Node*, std::vector<Node*>, LaterFirst> ready;
  for (const auto& [node, buf] : buffers)
    if (dependencies[node] == 0) ready.push(node);
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    Tensor g = std::move(buffers[n]);
    buffers.erase(n);
    TensorList grads;
    if (capturing && captured_grads && std::find(captured.begin(), captured.end(), n) != captured.end())
      (*captured_grads)[n] = g;
    const bool run = g.defined() && (!capturing || leads.count(n));
    if (run) {
      grads = n->apply(g);
      if (!retain_graph) n->release();
    }
    for (size_t i = 0; i < n->next_edges.size(); ++i) {
      Node* next = n->next_edges[i].get();
      if (!next) continue;
      if (i < grads.size() && grads[i].defined()) {
        Tensor& buf = buffers[next];
        buf = buf.defined() ? add(buf, grads[i]) : grads[i];
      }
      if (--dependencies[next] == 0) {
        buffers.try_emplace(next);  // may stay undefined: then the node passes nothing on
        ready.push(next);
      }
    }
  }
}

Tensor default_root_grad(const Tensor& out, const Tensor& given, const char* who) {
  if (given.defined()) {
    DK_CHECK(given.shape() == out.shape(), who, ": gradient of shape ", shape_str(given.shape()),
             " for an output of shape ", shape_str(out.shape()));
    DK_CHECK(given.dtype() == out.dtype() && given.device() == out.device(), who,
             ": gradient is ", dtype_name(given.dtype()), " on ", given.device().str(),
             " for an output that is ", dtype_name(out.dtype()), " on ", out.device().str());
    return given;
  }
  DK_CHECK(out.numel() == 1, who, ": output of shape ", shape_str(out.shape()),
           " is not a scalar; pass its gradient explicitly");
  return ones(out.shape(), out.dtype(), out.device());
}

}  // namespace

// --- Tensor's autograd methods ------------------------------------------------------------------

bool Tensor::requires_grad() const { return autograd_ && autograd_->requires_grad; }

Tensor& Tensor::requires_grad_(bool value) {
  DK_CHECK(!autograd_ || !autograd_->grad_fn, "requires_grad_: only leaf tensors can change ",
           "requires_grad (this one was computed by ", autograd_ ? autograd_->grad_fn->name() : "",
           ")");
  DK_CHECK(!value || is_floating(dtype_), "requires_grad_: ", dtype_name(dtype_),
           " tensors cannot require gradients");
  if (!autograd_) autograd_ = std::make_shared<AutogradMeta>();
  autograd_->requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const { return autograd_ ? autograd_->grad : Tensor(); }

void Tensor::zero_grad() {
  if (autograd_) autograd_->grad = Tensor();
}

bool Tensor::is_leaf() const { return !autograd_ || !autograd_->grad_fn; }

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return autograd_ ? autograd_->grad_fn : none;
}

Tensor Tensor::detach() const {
  Tensor t = *this;
  t.autograd_.reset();
  return t;
}

void Tensor::backward() const { backward(Tensor()); }

void Tensor::backward(const Tensor& g, bool retain_graph, bool create_graph) const {
  run_backward({*this}, {default_root_grad(*this, g, "backward")}, retain_graph, create_graph, {},
               nullptr);
}

TensorList grad(const TensorList& outputs, const TensorList& inputs,
                const TensorList& grad_outputs, bool retain_graph, bool create_graph,
                bool allow_unused) {
  DK_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), "grad: ",
           grad_outputs.size(), " grad_outputs for ", outputs.size(), " outputs");
  TensorList root_grads;
  for (size_t i = 0; i < outputs.size(); ++i)
    root_grads.push_back(
        default_root_grad(outputs[i], grad_outputs.empty() ? Tensor() : grad_outputs[i], "grad"));
  std::vector<Node*> targets;
  std::vector<std::shared_ptr<Node>> keep_alive;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::shared_ptr<Node> edge = gradient_edge(inputs[i]);
    DK_CHECK(edge != nullptr, "grad: input ", i, " of shape ", shape_str(inputs[i].shape()),
             " does not require grad");
    targets.push_back(edge.get());
    keep_alive.push_back(std::move(edge));
  }
  std::unordered_map<Node*, Tensor> captured;
  run_backward(outputs, root_grads, retain_graph, create_graph, targets, &captured);
  TensorList result;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto it = captured.find(targets[i]);
    Tensor g = it == captured.end() ? Tensor() : it->second;
    DK_CHECK(g.defined() || allow_unused, "grad: input ", i, " of shape ",
             shape_str(inputs[i].shape()), " was not used to compute the outputs");
    result.push_back(g);
  }
  return result;
}

}  // namespace diffkd
