/* A packed single-precision matrix product with the convolution epilogue fused into its stores:
 *   c[m][n] = act(sum_k a[m][k] b[k][n] + bias[m] + add[m][n])
 * for the products whose left operand is a constant weight matrix (a convolution's O x C*KH*KW
 * weights, Winograd's transformed weights). The weights are packed at compile time into panels of
 * EP_PANEL_ROWS rows (ep_panel_layout, kernels.h), so a panel's column k is EP_PANEL_ROWS adjacent
 * floats; the activations b are packed at run time, a chunk of columns at a time, into
 * strips of 48, 32 or 16 columns (and the last 1-15 columns), so the micro-kernels read both
 * contiguously.
 *
 * Why not OpenBLAS for these: on this project's AVX-512 host (Zen 4, one thread) OpenBLAS 0.3.21's
 * sgemm ran ResNet-50's 1x1 convolutions at 80-100 GFLOPS where onnxruntime's MLAS runs 107-134;
 * its Cooperlake kernels cannot know that the left operand never changes, nor fuse the bias,
 * residual and ReLU into the stores. The micro-kernel keeps 8 x 48 accumulators (24 of the 32
 * vector registers) and does 24 fused multiply-adds per three vector loads and eight broadcasts.
 *
 * AVX-512F only: edgepart packs weights only for targets that promise it (edgepart.toolchain.packing),
 * and elsewhere OpenBLAS's kernels serve. Without it ep_gemm_packed returns -2 (kernels.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define EP_AVX512 __attribute__((target("avx512f,fma")))

enum { MR = EP_PANEL_ROWS, LANES = 16, MAX_VECTORS = 3, NR = LANES * MAX_VECTORS };

/* Columns packed per chunk: the chunk of b (K x chunk floats) stays in the 1 MB L2 cache while every
 * weight panel passes over it. */
static int chunk_columns(int K) {
  int cols = (int)((256 * 1024 / sizeof(float)) / (size_t)(K > 0 ? K : 1));
  cols = cols / NR * NR;
  return cols < NR ? NR : cols;
}

/* b columns [j0, j0 + width) -> one strip: K rows of `width` adjacent floats. */
static void pack_strip(const float* b, int64_t ldb, int K, int j0, int width, float* out) {
  for (int k = 0; k < K; ++k) memcpy(out + (size_t)k * width, b + (size_t)k * ldb + j0, sizeof(float) * width);
}

static inline float scalar_act(float v, int act) {
  return act == EP_ACT_RELU ? (v > 0.f ? v : 0.f) : v;
}

/* The AVX-512 tile: MR rows x `vectors` x 16 columns, accumulated in registers, then bias, the
 * residual and ReLU applied on the way out. */
static inline __attribute__((always_inline)) EP_AVX512 void tile_avx512(
    const int vectors, int K, const float* restrict a, const float* restrict strip, int rows, float* c,
    int64_t ldc, const float* bias, const float* add, int64_t ldadd, int act) {
  __m512 acc[MR][MAX_VECTORS];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < vectors; ++v) acc[i][v] = _mm512_setzero_ps();
  const int width = vectors * LANES;
  for (int k = 0; k < K; ++k) {
    __m512 bv[MAX_VECTORS];
#pragma GCC unroll 3
    for (int v = 0; v < vectors; ++v) bv[v] = _mm512_load_ps(strip + (size_t)k * width + v * LANES);
    const float* ak = a + (size_t)k * MR;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(ak[i]);
#pragma GCC unroll 3
      for (int v = 0; v < vectors; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= rows) break;
    const __m512 b = _mm512_set1_ps(bias ? bias[i] : 0.f);
    float* row = c + (size_t)i * ldc;
    const float* extra = add ? add + (size_t)i * ldadd : NULL;
#pragma GCC unroll 3
    for (int v = 0; v < vectors; ++v) {
      __m512 x = _mm512_add_ps(acc[i][v], b);
      if (extra) x = _mm512_add_ps(x, _mm512_loadu_ps(extra + v * LANES));
      if (act == EP_ACT_RELU) x = _mm512_max_ps(x, zero);
      _mm512_storeu_ps(row + v * LANES, x);
    }
  }
}

/* The last columns of a product whose width is not a multiple of 16 (49 = 48 + 1): one panel's
 * 8 rows as a 256-bit vector, times each of the `cols` columns (< 16) broadcast, so no lane computes
 * a column that does not exist. Up to four independent accumulator sets hide the FMA latency when
 * there are few columns. */
static inline __attribute__((always_inline)) EP_AVX512 void columns_avx512(
    const int cols, int K, const float* restrict a, const float* restrict strip, int rows, float* c, int64_t ldc,
    const float* bias, const float* add, int64_t ldadd, int act) {
  enum { SETS_MAX = 4 };
  const int sets = cols >= 4 ? 1 : cols >= 2 ? 2 : 4;
  __m256 acc[SETS_MAX][LANES - 1];
#pragma GCC unroll 4
  for (int s = 0; s < sets; ++s)
#pragma GCC unroll 15
    for (int j = 0; j < cols; ++j) acc[s][j] = _mm256_setzero_ps();
  int k = 0;
  for (; k + sets <= K; k += sets) {
#pragma GCC unroll 4
    for (int s = 0; s < sets; ++s) {
      const __m256 av = _mm256_loadu_ps(a + (size_t)(k + s) * MR);
      const float* bk = strip + (size_t)(k + s) * cols;
#pragma GCC unroll 15
      for (int j = 0; j < cols; ++j) acc[s][j] = _mm256_fmadd_ps(av, _mm256_set1_ps(bk[j]), acc[s][j]);
    }
  }
  for (; k < K; ++k) {
    const __m256 av = _mm256_loadu_ps(a + (size_t)k * MR);
#pragma GCC unroll 15
    for (int j = 0; j < cols; ++j) acc[0][j] = _mm256_fmadd_ps(av, _mm256_set1_ps(strip[(size_t)k * cols + j]), acc[0][j]);
  }
  float out[LANES - 1][MR];
#pragma GCC unroll 15
  for (int j = 0; j < cols; ++j) {
#pragma GCC unroll 4
    for (int s = 1; s < sets; ++s) acc[0][j] = _mm256_add_ps(acc[0][j], acc[s][j]);
    _mm256_storeu_ps(out[j], acc[0][j]);
  }
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      float v = out[j][i] + (bias ? bias[i] : 0.f) + (add ? add[(size_t)i * ldadd + j] : 0.f);
      c[(size_t)i * ldc + j] = scalar_act(v, act);
    }
}

#define EP_COLUMNS_CASE(n) \
  case n: columns_avx512(n, K, a, strip, rows, c, ldc, bias, add, ldadd, act); break;

/* One tile: `width` 16, 32 or 48 (vector strips) or 1-15 (columns). */
EP_AVX512 static void tile_dispatch(int width, int K, const float* a, const float* strip, int rows, float* c,
                                    int64_t ldc, const float* bias, const float* add, int64_t ldadd, int act) {
  switch (width) {
    case 48: tile_avx512(3, K, a, strip, rows, c, ldc, bias, add, ldadd, act); break;
    case 32: tile_avx512(2, K, a, strip, rows, c, ldc, bias, add, ldadd, act); break;
    case 16: tile_avx512(1, K, a, strip, rows, c, ldc, bias, add, ldadd, act); break;
    EP_COLUMNS_CASE(1) EP_COLUMNS_CASE(2) EP_COLUMNS_CASE(3) EP_COLUMNS_CASE(4) EP_COLUMNS_CASE(5)
    EP_COLUMNS_CASE(6) EP_COLUMNS_CASE(7) EP_COLUMNS_CASE(8) EP_COLUMNS_CASE(9) EP_COLUMNS_CASE(10)
    EP_COLUMNS_CASE(11) EP_COLUMNS_CASE(12) EP_COLUMNS_CASE(13) EP_COLUMNS_CASE(14) EP_COLUMNS_CASE(15)
    default: break;
  }
}

/* The width of the strip that starts `remaining` columns before the end of a chunk: 48 while 48 or
 * more remain, then 32 or 16, then the last 1-15 columns exactly (49 = 48 + 1, 196 = 4 x 48 + 4). */
static int strip_width(int remaining) {
  if (remaining >= NR) return NR;
  if (remaining >= LANES) return remaining / LANES * LANES;
  return remaining;
}

int ep_gemm_packed(const float* a, const float* b, float* c, const ep_gemm_t* p) {
  if (!__builtin_cpu_supports("avx512f")) return -2;
  const int M = p->M, N = p->N, K = p->K, panels = (M + MR - 1) / MR;
  const int chunk = chunk_columns(K);
  float* strips = ep_scratch(EP_SCRATCH_PACK, (size_t)K * (size_t)(chunk < N ? chunk : N));
  if (!strips) return -1;
  for (int j0 = 0; j0 < N; j0 += chunk) {
    const int cols = N - j0 < chunk ? N - j0 : chunk;
    for (int j = 0, width; j < cols; j += width) {  /* the chunk's strips, one after another */
      width = strip_width(cols - j);
      pack_strip(b, p->ldb, K, j0 + j, width, strips + (size_t)K * j);
    }
    for (int panel = 0; panel < panels; ++panel) {
      const int m0 = panel * MR, rows = M - m0 < MR ? M - m0 : MR;
      const float* bias = p->bias ? p->bias + m0 : NULL;
      const float* add = p->add ? p->add + (size_t)m0 * p->ldadd + j0 : NULL;
      for (int j = 0, width; j < cols; j += width) {
        width = strip_width(cols - j);
        tile_dispatch(width, K, a + (size_t)panel * K * MR, strips + (size_t)K * j, rows,
                      c + (size_t)m0 * p->ldc + j0 + j, p->ldc, bias, add ? add + j : NULL, p->ldadd, p->act);
      }
    }
  }
  return 0;
}
#else
int ep_gemm_packed(const float* a, const float* b, float* c, const ep_gemm_t* p) {
  (void)a, (void)b, (void)c, (void)p;
  return -2;
}
#endif
