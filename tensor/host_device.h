#pragma once
// DK_HOST_DEVICE marks per-element math that both the CPU backend and the CUDA backend run, so a
// CPU test checks the arithmetic a GPU kernel will do.

#if defined(__CUDACC__)
#define DK_HOST_DEVICE __host__ __device__
#else
#define DK_HOST_DEVICE
#endif
