// Optional OpenBLAS GEMM, loaded at run time with dlopen when DIFFKD_GEMM=openblas.
//
// The default is Eigen: built with -march=native it uses AVX-512 where the CPU has it, and on
// this project's machines it measured faster than Debian's OpenBLAS 0.3.21 (bench/RESULTS.md),
// which runs AVX2 (Haswell) kernels there: the environment pins OPENBLAS_CORETYPE=Haswell, and
// without that pin 0.3.21 does not recognise recent AMD cores as AVX-512 machines either.
// OpenBLAS honours OPENBLAS_CORETYPE only if it is set before the library initialises, which a
// normally linked library cannot arrange; loading it ourselves can. When DIFFKD_GEMM=openblas and
// the user has not chosen a core, we set OPENBLAS_CORETYPE=SkylakeX on CPUs with AVX-512
// (F, BW, DQ, VL) before loading. Loading happens once, from cpu_backend()'s first call, before
// any thread is started.

#include "tensor/cpu/blas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

namespace diffkd::cpu_impl {

namespace {

// cblas enums (cblas.h): row-major = 101, no-trans = 111, trans = 112. Debian's OpenBLAS uses
// 32-bit integers.
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
using DgemmFn = void (*)(int, int, int, int, int, int, double, const double*, int, const double*,
                         int, double, double*, int);

struct OpenBlas {
  SgemmFn sgemm = nullptr;
  DgemmFn dgemm = nullptr;
  std::string description = "eigen";
};

bool cpu_has_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

OpenBlas load() {
  OpenBlas lib;
#ifdef DIFFKD_OPENBLAS
  const char* choice = std::getenv("DIFFKD_GEMM");
  if (choice == nullptr || std::strcmp(choice, "openblas") != 0) return lib;
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr && cpu_has_avx512())
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
  void* handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return lib;
  lib.sgemm = reinterpret_cast<SgemmFn>(dlsym(handle, "cblas_sgemm"));
  lib.dgemm = reinterpret_cast<DgemmFn>(dlsym(handle, "cblas_dgemm"));
  if (lib.sgemm == nullptr || lib.dgemm == nullptr) {
    lib.sgemm = nullptr;
    lib.dgemm = nullptr;
    return lib;
  }
  using NameFn = char* (*)();
  auto config = reinterpret_cast<NameFn>(dlsym(handle, "openblas_get_config"));
  auto core = reinterpret_cast<NameFn>(dlsym(handle, "openblas_get_corename"));
  lib.description = std::string("openblas") + (config ? std::string(" (") + config() + ")" : "") +
                    (core ? std::string(" core ") + core() : "");
#endif
  return lib;
}

const OpenBlas& openblas() {
  static const OpenBlas lib = load();
  return lib;
}

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

}  // namespace

std::string gemm_library() { return openblas().description; }

bool gemm_openblas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const OpenBlas& lib = openblas();
  if (lib.sgemm == nullptr) return false;
  lib.sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m),
            static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
            static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
  return true;
}

bool gemm_openblas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                   const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                   double* c, int64_t ldc) {
  const OpenBlas& lib = openblas();
  if (lib.dgemm == nullptr) return false;
  lib.dgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m),
            static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
            static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
  return true;
}

}  // namespace diffkd::cpu_impl
