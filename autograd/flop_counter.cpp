// FlopCounter (see flop_counter.h): a thread-local stack of live counters.

#include "autograd/flop_counter.h"

namespace diffkd {

namespace {
thread_local FlopCounter* current = nullptr;
}

FlopCounter::FlopCounter() : outer_(current) { current = this; }
FlopCounter::~FlopCounter() { current = outer_; }

void FlopCounter::add(int64_t flops) {
  if (current) current->flops_ += flops;
}

}  // namespace diffkd
