#pragma once
// Reverse-mode differentiation over the recorded graph.
//
// The engine is iterative: it counts, for every node reachable from the roots, how many edges
// lead into it, then runs nodes from a ready queue ordered by creation (latest first), so each
// node runs once with the sum of all gradients flowing into it. No recursion anywhere, so graph
// depth is limited only by memory.

#include "autograd/node.h"

namespace diffkd {

// Gradients of sum_i <outputs[i], grad_outputs[i]> with respect to `inputs`, returned instead of
// accumulated into .grad (nothing else's .grad changes). An undefined grad_output means ones for a
// one-element output. Inputs the outputs do not depend on get undefined gradients unless
// allow_unused is false, which throws. With create_graph the result is itself differentiable
// (WGAN-GP's gradient penalty); create_graph also keeps the graph, as retain_graph would.
TensorList grad(const TensorList& outputs, const TensorList& inputs,
                const TensorList& grad_outputs = {}, bool retain_graph = false,
                bool create_graph = false, bool allow_unused = false);

}  // namespace diffkd
