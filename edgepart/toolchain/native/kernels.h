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
  int packed;  /* Winograd only: its transformed weights packed into panels (ep_gemm_packed) */
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
 * (winograd.c): 36 x O x C floats, or with p->packed 36 packed O x C matrices (ep_panel layout below).
 * Returns 0, or -1 when its scratch cannot be allocated. */
int ep_conv2d_winograd(const float* x, const float* u, const float* bias, float* y, const ep_conv_t* p);
void ep_matmul(const float* a, const float* w, const float* bias, float* y, const ep_matmul_t* p);

/* Weights packed for ep_gemm_packed (gemm.c): an M x K matrix as ceil(M / EP_PANEL_ROWS) panels, panel
 * p holding rows p*EP_PANEL_ROWS.. as K columns of EP_PANEL_ROWS adjacent floats (rows past M zero):
 * packed[(p * K + k) * EP_PANEL_ROWS + i] = w[p * EP_PANEL_ROWS + i][k]. edgepart.toolchain.packing
 * writes it at compile time. */
#define EP_PANEL_ROWS 8

/* c (M x N, row stride ldc) = act(a (packed M x K) . b (K x N, row stride ldb) + bias[m] + add[m][n]);
 * bias (M floats) and add (M x N, row stride ldadd) may be NULL; act none or ReLU. */
typedef struct {
  int M, N, K;
  int64_t ldb, ldc, ldadd;
  const float* bias;
  const float* add;
  int act;
} ep_gemm_t;
/* 0, -1 when its scratch cannot be allocated, -2 on a CPU without AVX-512F (c is then incomplete).
 * ep_conv2d_packed and a packed ep_conv2d_winograd return the same codes. */
int ep_gemm_packed(const float* a, const float* b, float* c, const ep_gemm_t* p);
/* conv2d of one group with weights packed as an O x C*KH*KW matrix, and an optional residual `add`
 * (N x O x OH x OW) added before the activation (none, ReLU or SiLU). */
int ep_conv2d_packed(const float* x, const float* w, const float* bias, const float* add, float* y,
                     const ep_conv_t* p);

/* For the kernels' own sources (kernels.c, winograd.c), not the wrappers. Portable x86-64 builds get
 * AVX2 and AVX-512 clones of the loop kernels, picked at load time (ifunc); OpenBLAS dispatches by
 * itself (DYNAMIC_ARCH). ep_scratch: per-thread buffers (slots: a kernel's work area, and the
 * product's packed columns, which a kernel using the work area calls) of at least `floats` floats,
 * 64-byte aligned, kept between calls (NULL when one cannot be allocated). */
#if defined(__x86_64__) && !defined(__AVX2__) && !defined(EP_NO_CLONES)
#define EP_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define EP_CLONES
#endif
#include <stddef.h>
enum { EP_SCRATCH_WORK = 0, EP_SCRATCH_PACK = 1, EP_SCRATCH_SLOTS = 2 };
float* ep_scratch(int slot, size_t floats);

#endif
