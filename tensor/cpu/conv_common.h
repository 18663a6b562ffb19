#pragma once
// Pieces shared by the CPU convolution kernels (conv.cpp: generic im2col + GEMM, and
// conv_packed.cpp: the f32 AVX-512 paths): geometry, image grouping, im2col, scratch buffers.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/backend.h"
#include "tensor/cpu/cpu_backend.h"

namespace diffkd::cpu_impl::conv {

// Images per GEMM group aim at about this many columns (see grouping()).
constexpr int64_t kGroupColumns = 256;

struct ConvGeometry {
  int64_t n, c, h, w;  // input
  int64_t o, kh, kw;   // weight
  int64_t oh, ow;      // output
  Conv2dParams p;
  int64_t col_rows() const { return c * kh * kw; }
  int64_t plane() const { return oh * ow; }
};

inline ConvGeometry geometry(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3),
          y.size(2), y.size(3), p};
}

// Images per group and the number of groups.
struct Grouping {
  int64_t size, count;
};
inline Grouping grouping(const ConvGeometry& g) {
  // A multiple of the thread count of groups, each of about kGroupColumns columns, so that the
  // threads get equal shares.
  const int64_t threads = omp_get_max_threads();
  const int64_t wanted = std::max<int64_t>(1, g.n * g.plane() / kGroupColumns);
  const int64_t count = std::min(g.n, (wanted + threads - 1) / threads * threads);
  const int64_t size = (g.n + count - 1) / count;
  return {size, (g.n + size - 1) / size};
}

// im2col of one image into the columns [0, OH*OW) of a matrix with leading dim ld.
template <typename T>
void im2col(const T* x, const ConvGeometry& g, T* col, int64_t ld) {
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ih = oh * g.p.stride_h - g.p.pad_h + i;
          T* out = row + oh * g.ow;
          if (ih < 0 || ih >= g.h) {
            std::fill(out, out + g.ow, T(0));
            continue;
          }
          const T* in = x + (c * g.h + ih) * g.w;
          if (g.p.stride_w == 1) {
            // Valid ow: 0 <= ow - pw + j < W.
            const int64_t lo = std::clamp<int64_t>(g.p.pad_w - j, 0, g.ow);
            const int64_t hi = std::clamp<int64_t>(g.w + g.p.pad_w - j, lo, g.ow);
            std::fill(out, out + lo, T(0));
            std::copy(in + lo - g.p.pad_w + j, in + hi - g.p.pad_w + j, out + lo);
            std::fill(out + hi, out + g.ow, T(0));
          } else {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
              const int64_t iw = ow * g.p.stride_w - g.p.pad_w + j;
              out[ow] = (iw >= 0 && iw < g.w) ? in[iw] : T(0);
            }
          }
        }
      }
}

// [G, rows, plane] images -> a [rows, G*plane] matrix, and back.
template <typename T>
void gather_group(const T* src, int64_t images, int64_t rows, int64_t plane, T* dst) {
  for (int64_t img = 0; img < images; ++img)
    for (int64_t r = 0; r < rows; ++r)
      std::copy(src + (img * rows + r) * plane, src + (img * rows + r + 1) * plane,
                dst + r * images * plane + img * plane);
}
inline Tensor contiguous_or_copy(const Tensor& t) {
  return !t.defined() || t.is_contiguous() ? t : t.clone_data();
}

// A reusable, 64-byte aligned float buffer (thread_local in the kernels, so steady-state calls
// allocate nothing and touch no fresh pages).
struct Scratch {
  std::vector<float> buffer;
  // 64-byte aligned storage of n floats.
  float* get(size_t n) {
    // Grows only: shrinking and growing back would zero the regrown part each time.
    if (buffer.size() < n + 16) buffer.resize(n + 16);
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buffer.data()) + 63) & ~uintptr_t{63});
  }
};

// n floats from the host allocator for one call, uninitialised, 64-byte aligned. For the
// batch-sized copies (a padded input, a transposed output gradient): freed, they go back to the
// allocator's cache and serve the next tensors, where a thread_local buffer would stay held at
// its largest size (114 MB for the padded input of ddpm-cifar10's widest conv at batch 64).
class CallScratch {
 public:
  explicit CallScratch(size_t n)
      : bytes_(std::max<size_t>(n, 1) * sizeof(float)),
        data_(static_cast<float*>(cpu_backend().allocator().allocate(bytes_))) {}
  ~CallScratch() { cpu_backend().allocator().deallocate(data_, bytes_); }
  CallScratch(const CallScratch&) = delete;
  CallScratch& operator=(const CallScratch&) = delete;
  float* data() const { return data_; }

 private:
  size_t bytes_;
  float* data_;
};

// The f32 AVX-512 paths (conv_packed.cpp), used when packed_gemm is available.
void conv2d_forward_shifted(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                            const ConvGeometry& g);
void conv2d_forward_packed(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                           const ConvGeometry& g);
void conv2d_backward_weight_shifted(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                    const ConvGeometry& g);
void conv2d_backward_weight_packed(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                   const ConvGeometry& g, const Grouping& grp);

}  // namespace diffkd::cpu_impl::conv
