/* edgepart CPU kernels that TVM tiers call for the operators edgepart.compile.offload takes out of
 * the graph: fp32 NCHW conv2d and matmul with their bias and activation epilogues. Single-threaded
 * (tiers run one thread); shapes are fixed per call site and passed in the parameter structs. */
#ifndef EDGEPART_KERNELS_H_
#define EDGEPART_KERNELS_H_
#include <stdint.h>

enum { EP_ACT_NONE = 0, EP_ACT_RELU = 1, EP_ACT_SILU = 2 };

/* conv2d, NCHW input, OIHW weights: batch N, C in / O out channels, H x W in, OH x OW out,
 * KH x KW kernel, strides SH/SW, pads top/left/bottom/right, dilations DH/DW, G groups. */
typedef struct {
  int N, C, H, W, O, KH, KW, SH, SW, PT, PL, PB, PR, DH, DW, G, OH, OW, act;
} ep_conv_t;

/* `batch` products y[b] (M x N) = a[b] (M x K) @ w[b] (K x N), row-major; a_stride and w_stride
 * are the floats between consecutive a[b] and w[b] (0: the same matrix for every b). */
typedef struct {
  int64_t batch, M, N, K, a_stride, w_stride;
  int act;
} ep_matmul_t;

/* bias: O floats (conv) or N floats (matmul), or NULL. ep_conv2d_nchw returns 0, or -1 when its
 * scratch buffer cannot be allocated (y is then incomplete). */
int ep_conv2d_nchw(const float* x, const float* w, const float* bias, float* y, const ep_conv_t* p);
/* 3x3, stride 1, dilation 1, one group, act none or ReLU, u the weights Winograd-transformed
 * (winograd.c): 36 x O x C floats. Returns 0, or -1 when its scratch cannot be allocated. */
int ep_conv2d_winograd(const float* x, const float* u, const float* bias, float* y, const ep_conv_t* p);
void ep_matmul(const float* a, const float* w, const float* bias, float* y, const ep_matmul_t* p);

/* For the kernels' own sources (kernels.c, winograd.c), not the wrappers. Portable x86-64 builds get
 * AVX2 and AVX-512 clones of the loop kernels, picked at load time (ifunc); OpenBLAS dispatches by
 * itself (DYNAMIC_ARCH). ep_scratch: a per-thread buffer of at least `floats` floats, 64-byte
 * aligned, kept between calls (NULL when it cannot be allocated). */
#if defined(__x86_64__) && !defined(__AVX2__) && !defined(EP_NO_CLONES)
#define EP_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define EP_CLONES
#endif
#include <stddef.h>
float* ep_scratch(size_t floats);

#endif
