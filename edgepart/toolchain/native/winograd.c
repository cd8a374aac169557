/* Winograd F(4x4, 3x3) convolution (Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016): a 3x3, stride-1 convolution computed per 4x4 output tile from a 6x6 input tile
 * with 36 multiplications per (input, output) channel pair instead of 144. The input tiles are
 * transformed (B^T d B), each of the 36 transformed positions is one matrix product over the
 * channels (cblas_sgemm: K x T = (K x C) . (C x T), T tiles), and the products are transformed
 * back (A^T m A) with the bias and activation. The weights come already transformed (G g G^T,
 * 36 x K x C), at compile time: edgepart.toolchain.winograd; with `packed` set each of the 36
 * matrices is also packed into panels and the products run on gemm.c instead of OpenBLAS.
 *
 * Layouts: x NCHW, y NKHW (K output channels), u [36][K][C]; any pads and batch; activation none or
 * ReLU. */
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "kernels.h"


enum { TILE = 4, PATCH = 6, POSITIONS = 36 };
/* AVX-512 transforms: tiles per vector, and zeros kept past a transformed row for their permutes */
enum { BLOCK = 16, ROW_SLACK = 4 * BLOCK + 8 };

/* One row of B^T applied to six values (rows of the 6x6 input transform). */
#define BT0(d0, d1, d2, d3, d4, d5) (4.f * (d0) - 5.f * (d2) + (d4))
#define BT1(d0, d1, d2, d3, d4, d5) (-4.f * (d1) - 4.f * (d2) + (d3) + (d4))
#define BT2(d0, d1, d2, d3, d4, d5) (4.f * (d1) - 4.f * (d2) - (d3) + (d4))
#define BT3(d0, d1, d2, d3, d4, d5) (-2.f * (d1) - (d2) + 2.f * (d3) + (d4))
#define BT4(d0, d1, d2, d3, d4, d5) (2.f * (d1) - (d2) - 2.f * (d3) + (d4))
#define BT5(d0, d1, d2, d3, d4, d5) (4.f * (d1) - 5.f * (d3) + (d5))

/* The six input rows of tile row `th` of one channel's plane, zero-padded into `rows` (WP wide), and
 * transformed down the columns (B^T d, contiguous and vectorised over the width) into
 * s[i * WS + w], i the transformed row. */
EP_CLONES static void column_transform(const float* plane, float* rows, float* s, int WS, const ep_conv_t* p, int th,
                                       int WP) {
  const int H = p->H, W = p->W;
  for (int r = 0; r < PATCH; ++r) {
    float* row = rows + r * WP;
    const int ih = th * TILE - p->PT + r;
    memset(row, 0, sizeof(float) * WP);
    /* PL + W <= WP: the tiles cover OW = W + PL + PR - 2 columns, WP = 4 TW + 2 >= OW + 2 */
    if (ih >= 0 && ih < H) memcpy(row + p->PL, plane + (size_t)ih * W, sizeof(float) * W);
  }
  const float *d0 = rows, *d1 = rows + WP, *d2 = rows + 2 * WP, *d3 = rows + 3 * WP, *d4 = rows + 4 * WP,
              *d5 = rows + 5 * WP;
  for (int w = 0; w < WP; ++w) {
    s[w] = BT0(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
    s[WS + w] = BT1(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
    s[2 * WS + w] = BT2(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
    s[3 * WS + w] = BT3(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
    s[4 * WS + w] = BT4(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
    s[5 * WS + w] = BT5(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
  }
}

/* v[xi][c][t] for one image: per channel and tile row, the six input rows (zero-padded into
 * `rows`, WP wide) are transformed down the columns first, contiguous and vectorised over the
 * width, then across each tile's six columns. */
EP_CLONES static void input_transform(const float* x, float* v, float* rows, const ep_conv_t* p, int TH, int TW) {
  const int C = p->C, H = p->H, W = p->W, WP = TILE * TW + 2, T = TH * TW;
  float* s = rows + PATCH * WP;  /* six column-transformed rows */
  for (int c = 0; c < C; ++c) {
    const float* plane = x + (size_t)c * H * W;
    for (int th = 0; th < TH; ++th) {
      column_transform(plane, rows, s, WP, p, th, WP);
      for (int i = 0; i < PATCH; ++i) {
        const float* si = s + i * WP;
        float* out = v + ((size_t)(i * PATCH) * C + c) * T + (size_t)th * TW;
        const size_t step = (size_t)C * T;  /* from position (i, j) to (i, j + 1) */
        for (int tw = 0; tw < TW; ++tw) {
          const float* e = si + TILE * tw;
          out[tw] = BT0(e[0], e[1], e[2], e[3], e[4], e[5]);
          out[step + tw] = BT1(e[0], e[1], e[2], e[3], e[4], e[5]);
          out[2 * step + tw] = BT2(e[0], e[1], e[2], e[3], e[4], e[5]);
          out[3 * step + tw] = BT3(e[0], e[1], e[2], e[3], e[4], e[5]);
          out[4 * step + tw] = BT4(e[0], e[1], e[2], e[3], e[4], e[5]);
          out[5 * step + tw] = BT5(e[0], e[1], e[2], e[3], e[4], e[5]);
        }
      }
    }
  }
}

static inline float activate(float v, int act) {
  return act == EP_ACT_RELU ? (v > 0.f ? v : 0.f) : v;
}

/* y[k] from m[xi][k][t]: per output channel and tile row, A^T across each tile's columns
 * (vectorised over the tiles), then down its rows, then bias and activation into the output rows. */
EP_CLONES static void output_transform(const float* m, const float* bias, float* y, float* work, const ep_conv_t* p,
                                       int TH, int TW) {
  const int K = p->O, OH = p->OH, OW = p->OW, T = TH * TW;
  float* r = work;  /* r[i][q][tw]: row i of a tile after A^T across its columns */
  float* o = work + PATCH * TILE * TW;  /* o[q][tw]: one output row of every tile */
  for (int k = 0; k < K; ++k) {
    const float b = bias ? bias[k] : 0.f;
    float* plane = y + (size_t)k * OH * OW;
    for (int th = 0; th < TH; ++th) {
      for (int i = 0; i < PATCH; ++i) {
        const float* mi = m + ((size_t)(i * PATCH) * K + k) * T + (size_t)th * TW;
        const size_t step = (size_t)K * T;
        const float *m0 = mi, *m1 = mi + step, *m2 = mi + 2 * step, *m3 = mi + 3 * step, *m4 = mi + 4 * step,
                    *m5 = mi + 5 * step;
        float* ri = r + (size_t)i * TILE * TW;
        for (int tw = 0; tw < TW; ++tw) {
          const float a = m1[tw] + m2[tw], d = m1[tw] - m2[tw], e = m3[tw] + m4[tw], f = m3[tw] - m4[tw];
          ri[tw] = m0[tw] + a + e;
          ri[TW + tw] = d + 2.f * f;
          ri[2 * TW + tw] = a + 4.f * e;
          ri[3 * TW + tw] = d + 8.f * f + m5[tw];
        }
      }
      for (int q = 0; q < TILE; ++q) {
        const float *r0 = r + q * TW, *r1 = r0 + TILE * TW, *r2 = r1 + TILE * TW, *r3 = r2 + TILE * TW,
                    *r4 = r3 + TILE * TW, *r5 = r4 + TILE * TW;
        for (int tw = 0; tw < TW; ++tw) {
          const float a = r1[tw] + r2[tw], d = r1[tw] - r2[tw], e = r3[tw] + r4[tw], f = r3[tw] - r4[tw];
          o[(0 * TILE + q) * TW + tw] = r0[tw] + a + e + b;
          o[(1 * TILE + q) * TW + tw] = d + 2.f * f + b;
          o[(2 * TILE + q) * TW + tw] = a + 4.f * e + b;
          o[(3 * TILE + q) * TW + tw] = d + 8.f * f + r5[tw] + b;
        }
      }
      for (int row = 0; row < TILE && th * TILE + row < OH; ++row) {
        float* out = plane + (size_t)(th * TILE + row) * OW;
        const float* src = o + (size_t)row * TILE * TW;
        for (int tw = 0; tw < TW; ++tw)
          for (int q = 0; q < TILE; ++q) {
            const int ow = tw * TILE + q;
            if (ow < OW) out[ow] = activate(src[q * TW + tw], p->act);
          }
      }
    }
  }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define EP_AVX512 __attribute__((target("avx512f,fma")))

/* The same transforms with AVX-512, for packed builds (AVX-512 targets): sixteen tiles of a tile row
 * at a time. A row's tiles overlap (tile tw reads columns 4 tw .. 4 tw + 5), so the six columns of
 * sixteen tiles are split out of the row with two-source permutes, and the output tiles are
 * interleaved back the same way, instead of the portable loops' stride-4 scalar work. */

/* c_j[t] = s[4 t + j] for t < 16, j < 4 (64 floats from s) */
static inline __attribute__((always_inline)) EP_AVX512 void split4(const float* s, __m512 c[4]) {
  const __m512 z0 = _mm512_loadu_ps(s), z1 = _mm512_loadu_ps(s + 16), z2 = _mm512_loadu_ps(s + 32),
               z3 = _mm512_loadu_ps(s + 48);
  const __m512i every4 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  for (int j = 0; j < 4; ++j) {
    const __m512i idx = _mm512_add_epi32(every4, _mm512_set1_epi32(j));
    const __m512 low = _mm512_permutex2var_ps(z0, idx, z1), high = _mm512_permutex2var_ps(z2, idx, z3);
    c[j] = _mm512_shuffle_f32x4(low, high, 0x44);  /* tiles 0-7 from low, 8-15 from high */
  }
}

/* out[j * step + t] = BT_j(s[4 t .. 4 t + 5]) for the tiles t < tiles of one column-transformed row */
static inline __attribute__((always_inline)) EP_AVX512 void row_transform(const float* s, int tiles, float* out,
                                                                          size_t step) {
  for (int t0 = 0; t0 < tiles; t0 += BLOCK) {
    __m512 c[4], shifted[4];
    split4(s + 4 * t0, c);
    split4(s + 4 * t0 + 4, shifted);  /* columns 4 and 5 are the next tile's 0 and 1 */
    const __m512 d0 = c[0], d1 = c[1], d2 = c[2], d3 = c[3], d4 = shifted[0], d5 = shifted[1];
    const __mmask16 mask = tiles - t0 >= BLOCK ? (__mmask16)0xFFFF : (__mmask16)((1u << (tiles - t0)) - 1u);
    const __m512 four = _mm512_set1_ps(4.f), five = _mm512_set1_ps(5.f), two = _mm512_set1_ps(2.f);
    const __m512 d4_minus_d2 = _mm512_sub_ps(d4, d2);
    float* o = out + t0;
    _mm512_mask_storeu_ps(o, mask, _mm512_add_ps(_mm512_fnmadd_ps(five, d2, _mm512_mul_ps(four, d0)), d4));
    _mm512_mask_storeu_ps(o + step, mask, _mm512_fnmadd_ps(four, _mm512_add_ps(d1, d2), _mm512_add_ps(d3, d4)));
    _mm512_mask_storeu_ps(o + 2 * step, mask, _mm512_fmadd_ps(four, _mm512_sub_ps(d1, d2), _mm512_sub_ps(d4, d3)));
    _mm512_mask_storeu_ps(o + 3 * step, mask, _mm512_fmadd_ps(two, _mm512_sub_ps(d3, d1), d4_minus_d2));
    _mm512_mask_storeu_ps(o + 4 * step, mask, _mm512_fmadd_ps(two, _mm512_sub_ps(d1, d3), d4_minus_d2));
    _mm512_mask_storeu_ps(o + 5 * step, mask, _mm512_add_ps(_mm512_fnmadd_ps(five, d3, _mm512_mul_ps(four, d1)), d5));
  }
}

EP_AVX512 static void input_transform_avx512(const float* x, float* v, float* rows, const ep_conv_t* p, int TH,
                                             int TW) {
  const int C = p->C, H = p->H, W = p->W, T = TH * TW, WP = TILE * TW + 2;
  const int WS = WP + ROW_SLACK;  /* column-transformed rows, zeros past WP so the permutes read zeros */
  float* s = rows + PATCH * WP;
  for (int i = 0; i < PATCH; ++i) memset(s + i * WS + WP, 0, sizeof(float) * ROW_SLACK);
  for (int c = 0; c < C; ++c) {
    const float* plane = x + (size_t)c * H * W;
    for (int th = 0; th < TH; ++th) {
      column_transform(plane, rows, s, WS, p, th, WP);
      for (int i = 0; i < PATCH; ++i)
        row_transform(s + i * WS, TW, v + ((size_t)(i * PATCH) * C + c) * T + (size_t)th * TW, (size_t)C * T);
    }
  }
}

/* The four output columns of sixteen tiles (o[q][t]) as 64 consecutive floats (out[4 t + q]), with
 * the bias added, the activation applied and columns from `valid` on left alone. */
static inline __attribute__((always_inline)) EP_AVX512 void interleave_store(const __m512 o[4], float* out, int valid,
                                                                             int act) {
  const __m512i pairs_low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i pairs_high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i quads_low = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const __m512i quads_high = _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const __m512 a_low = _mm512_permutex2var_ps(o[0], pairs_low, o[1]), a_high = _mm512_permutex2var_ps(o[0], pairs_high, o[1]);
  const __m512 b_low = _mm512_permutex2var_ps(o[2], pairs_low, o[3]), b_high = _mm512_permutex2var_ps(o[2], pairs_high, o[3]);
  __m512 parts[4] = {_mm512_permutex2var_ps(a_low, quads_low, b_low), _mm512_permutex2var_ps(a_low, quads_high, b_low),
                     _mm512_permutex2var_ps(a_high, quads_low, b_high), _mm512_permutex2var_ps(a_high, quads_high, b_high)};
  for (int v = 0; v < 4 && v * 16 < valid; ++v) {
    __m512 value = parts[v];
    if (act == EP_ACT_RELU) value = _mm512_max_ps(value, _mm512_setzero_ps());
    const int left = valid - v * 16;
    _mm512_mask_storeu_ps(out + v * 16, left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u), value);
  }
}

/* Per output channel: A^T m A plus the bias for sixteen tiles at a time over all T tiles of the
 * image (full vectors however narrow the image), into o[row][q][t] (`work`, 16 T floats); then
 * each output row of each tile row interleaved into the plane. */
EP_AVX512 static void output_transform_avx512(const float* m, const float* bias, float* y, float* work,
                                              const ep_conv_t* p, int TH, int TW) {
  const int K = p->O, OH = p->OH, OW = p->OW, T = TH * TW;
  const size_t step = (size_t)K * T;
  for (int k = 0; k < K; ++k) {
    const __m512 b = _mm512_set1_ps(bias ? bias[k] : 0.f);
    for (int t0 = 0; t0 < T; t0 += BLOCK) {
      const __mmask16 mask = T - t0 >= BLOCK ? (__mmask16)0xFFFF : (__mmask16)((1u << (T - t0)) - 1u);
      __m512 r[PATCH][TILE];  /* row i of each tile after A^T across its columns */
      for (int i = 0; i < PATCH; ++i) {
        const float* mi = m + ((size_t)(i * PATCH) * K + k) * T + t0;
        __m512 e[PATCH];
        for (int j = 0; j < PATCH; ++j) e[j] = _mm512_maskz_loadu_ps(mask, mi + j * step);
        const __m512 a = _mm512_add_ps(e[1], e[2]), d = _mm512_sub_ps(e[1], e[2]);
        const __m512 g = _mm512_add_ps(e[3], e[4]), f = _mm512_sub_ps(e[3], e[4]);
        r[i][0] = _mm512_add_ps(_mm512_add_ps(e[0], a), g);
        r[i][1] = _mm512_fmadd_ps(_mm512_set1_ps(2.f), f, d);
        r[i][2] = _mm512_fmadd_ps(_mm512_set1_ps(4.f), g, a);
        r[i][3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.f), f, d), e[5]);
      }
      for (int q = 0; q < TILE; ++q) {
        const __m512 a = _mm512_add_ps(r[1][q], r[2][q]), d = _mm512_sub_ps(r[1][q], r[2][q]);
        const __m512 g = _mm512_add_ps(r[3][q], r[4][q]), f = _mm512_sub_ps(r[3][q], r[4][q]);
        float* o = work + (size_t)q * T + t0;  /* o[row][q][t] = work[(row * TILE + q) * T + t] */
        _mm512_mask_storeu_ps(o, mask, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[0][q], a), g), b));
        _mm512_mask_storeu_ps(o + (size_t)TILE * T, mask, _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(2.f), f, d), b));
        _mm512_mask_storeu_ps(o + (size_t)2 * TILE * T, mask,
                              _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(4.f), g, a), b));
        _mm512_mask_storeu_ps(o + (size_t)3 * TILE * T, mask,
                              _mm512_add_ps(_mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.f), f, d), r[5][q]), b));
      }
    }
    float* plane = y + (size_t)k * OH * OW;
    for (int th = 0; th < TH; ++th)
      for (int row = 0; row < TILE && th * TILE + row < OH; ++row)
        for (int t0 = 0; t0 < TW; t0 += BLOCK) {
          const __mmask16 mask = TW - t0 >= BLOCK ? (__mmask16)0xFFFF : (__mmask16)((1u << (TW - t0)) - 1u);
          const float* o = work + (size_t)row * TILE * T + (size_t)th * TW + t0;
          const __m512 columns[TILE] = {_mm512_maskz_loadu_ps(mask, o), _mm512_maskz_loadu_ps(mask, o + T),
                                        _mm512_maskz_loadu_ps(mask, o + 2 * (size_t)T),
                                        _mm512_maskz_loadu_ps(mask, o + 3 * (size_t)T)};
          interleave_store(columns, plane + (size_t)(th * TILE + row) * OW + TILE * t0, OW - TILE * t0, p->act);
        }
  }
}
#endif

int ep_conv2d_winograd(const float* x, const float* u, const float* bias, float* y, const ep_conv_t* p) {
  const int C = p->C, K = p->O, TH = (p->OH + TILE - 1) / TILE, TW = (p->OW + TILE - 1) / TILE, T = TH * TW;
  const size_t v_size = (size_t)POSITIONS * C * T, m_size = (size_t)POSITIONS * K * T;
  const size_t rows = (size_t)2 * PATCH * (TILE * TW + 2) + PATCH * ROW_SLACK,
               work = (size_t)(PATCH + TILE) * TILE * TW + (size_t)TILE * TILE * T;
  float* v = ep_scratch(EP_SCRATCH_WORK, v_size + m_size + rows + work);
  if (!v) return -1;
  float* m = v + v_size;
  float* buffers = m + m_size;
  /* packed: each position's K x C matrix as ceil(K / EP_PANEL_ROWS) panels (kernels.h) */
  const size_t panel_floats = (size_t)(K + EP_PANEL_ROWS - 1) / EP_PANEL_ROWS * EP_PANEL_ROWS * C;
  for (int n = 0; n < p->N; ++n) {
    const float* xn = x + (size_t)n * C * p->H * p->W;
    float* yn = y + (size_t)n * K * p->OH * p->OW;
#if defined(__x86_64__)
    const int vector = p->packed && __builtin_cpu_supports("avx512f");
    if (vector) input_transform_avx512(xn, v, buffers, p, TH, TW);
    else
#endif
      input_transform(xn, v, buffers, p, TH, TW);
    for (int xi = 0; xi < POSITIONS; ++xi) {
      float* product = m + (size_t)xi * K * T;
      if (p->packed) {
        const ep_gemm_t g = {K, T, C, T, T, T, NULL, NULL, EP_ACT_NONE};
        const int failed = ep_gemm_packed(u + (size_t)xi * panel_floats, v + (size_t)xi * C * T, product, &g);
        if (failed) return failed;
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, T, C, 1.f, u + (size_t)xi * K * C, C,
                    v + (size_t)xi * C * T, T, 0.f, product, T);
      }
    }
#if defined(__x86_64__)
    if (vector) output_transform_avx512(m, bias, yn, buffers, p, TH, TW);
    else
#endif
      output_transform(m, bias, yn, buffers, p, TH, TW);
  }
  return 0;
}
