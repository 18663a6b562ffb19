#pragma once
// Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11): a
// counter-based generator. Each 128-bit counter, under a 64-bit key, maps to four independent
// 32-bit words, so element i of any draw is a pure function of (seed, offset, i): the numbers do
// not depend on batch size, thread count or device. The per-element math is __host__ __device__
// so that the CUDA backend computes the very same values.

#include <cmath>
#include <cstdint>

#include "tensor/host_device.h"

namespace diffkd::philox {

struct Block {
  uint32_t v[4];
};

// One Philox4x32 round: two 32x32->64 multiplies, the high halves mixed with the other words.
DK_HOST_DEVICE inline Block round(Block c, uint32_t k0, uint32_t k1) {
  constexpr uint64_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  const uint64_t p0 = kM0 * c.v[0];
  const uint64_t p1 = kM1 * c.v[2];
  return Block{{static_cast<uint32_t>(p1 >> 32) ^ c.v[1] ^ k0, static_cast<uint32_t>(p1),
                static_cast<uint32_t>(p0 >> 32) ^ c.v[3] ^ k1, static_cast<uint32_t>(p0)}};
}

// Ten rounds, the key bumped by the Weyl constants between rounds.
DK_HOST_DEVICE inline Block philox4x32_10(Block counter, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    counter = round(counter, k0, k1);
    k0 += kW0;
    k1 += kW1;
  }
  return counter;
}

// The four words of counter block `block` under `seed`.
DK_HOST_DEVICE inline Block draw_block(uint64_t seed, uint64_t block) {
  Block c{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}};
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// A uniform in the open interval (0, 1): (x + 0.5) / 2^32, never 0 so log() is safe.
DK_HOST_DEVICE inline double to_unit(uint32_t x) { return (static_cast<double>(x) + 0.5) * 0x1p-32; }

// Element i of a uniform draw starting at counter block `offset`.
DK_HOST_DEVICE inline double uniform_at(uint64_t seed, uint64_t offset, uint64_t i) {
  Block b = draw_block(seed, offset + i / 4);
  return to_unit(b.v[i % 4]);
}

// Element i of a standard-normal draw: Box-Muller on the lane pair (0,1) or (2,3) of its block,
// cos for even lanes, sin for odd ones.
DK_HOST_DEVICE inline double normal_at(uint64_t seed, uint64_t offset, uint64_t i) {
  Block b = draw_block(seed, offset + i / 4);
  const unsigned lane = static_cast<unsigned>(i % 4);
  const unsigned pair = lane & ~1u;
  const double radius = std::sqrt(-2.0 * std::log(to_unit(b.v[pair])));
  const double angle = 6.283185307179586476925286766559 * to_unit(b.v[pair + 1]);
  return radius * ((lane & 1u) ? std::sin(angle) : std::cos(angle));
}

// The four elements 4j .. 4j+3 of a draw at once, from one Philox block: the same values as
// uniform_at / normal_at, computed with a quarter of the work (kernels fill whole blocks).
DK_HOST_DEVICE inline void uniform_block(uint64_t seed, uint64_t offset, uint64_t j, double out[4]) {
  const Block b = draw_block(seed, offset + j);
  for (int lane = 0; lane < 4; ++lane) out[lane] = to_unit(b.v[lane]);
}

DK_HOST_DEVICE inline void normal_block(uint64_t seed, uint64_t offset, uint64_t j, double out[4]) {
  const Block b = draw_block(seed, offset + j);
  for (int pair = 0; pair < 4; pair += 2) {
    const double radius = std::sqrt(-2.0 * std::log(to_unit(b.v[pair])));
    const double angle = 6.283185307179586476925286766559 * to_unit(b.v[pair + 1]);
    out[pair] = radius * std::cos(angle);
    out[pair + 1] = radius * std::sin(angle);
  }
}

// Counter blocks a draw of n elements consumes.
DK_HOST_DEVICE inline uint64_t blocks_for(uint64_t n) { return (n + 3) / 4; }

}  // namespace diffkd::philox
