#pragma once
// IEEE binary16 and bfloat16 <-> float32, bit exact, for the checkpoint readers and writers
// (safetensors' F16/BF16, torch's HalfStorage/BFloat16Storage): on the host, no F16 dtype needed.

#include <bit>
#include <cmath>
#include <cstdint>

namespace diffkd {

inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign != 0 ? -magnitude : magnitude;
  }
  const uint32_t bits = exponent == 31 ? sign | 0x7f800000u | (mantissa << 13)  // inf, NaN
                                       : sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  return std::bit_cast<float>(bits);
}

inline float bfloat16_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

// IEEE binary16 nearest to f (ties to even), as PyTorch's .half(): overflow gives infinity,
// tiny values go subnormal, NaN stays NaN.
inline uint16_t float_to_half(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u)  // inf or NaN (NaN keeps a quiet mantissa bit)
    return sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0u);
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504
  const int exponent = static_cast<int>(magnitude >> 23) - 127;
  if (exponent < -25) return sign;  // below half the smallest subnormal: +-0
  // Shift the 24-bit significand so that its kept part is the half's 10 (or fewer) bits.
  const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  const int shift = exponent < -14 ? 13 + (-14 - exponent) : 13;
  uint32_t kept = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (kept & 1u))) ++kept;  // may carry into the exponent: fine
  if (exponent < -14) return sign | static_cast<uint16_t>(kept);  // subnormal (or the smallest normal)
  return sign | static_cast<uint16_t>((static_cast<uint32_t>(exponent + 15) << 10) + (kept - 0x400u));
}

}  // namespace diffkd
