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

/* One row of B^T applied to six values (rows of the 6x6 input transform). */
#define BT0(d0, d1, d2, d3, d4, d5) (4.f * (d0) - 5.f * (d2) + (d4))
#define BT1(d0, d1, d2, d3, d4, d5) (-4.f * (d1) - 4.f * (d2) + (d3) + (d4))
#define BT2(d0, d1, d2, d3, d4, d5) (4.f * (d1) - 4.f * (d2) - (d3) + (d4))
#define BT3(d0, d1, d2, d3, d4, d5) (-2.f * (d1) - (d2) + 2.f * (d3) + (d4))
#define BT4(d0, d1, d2, d3, d4, d5) (2.f * (d1) - (d2) - 2.f * (d3) + (d4))
#define BT5(d0, d1, d2, d3, d4, d5) (4.f * (d1) - 5.f * (d3) + (d5))

/* v[xi][c][t] for one image: per channel and tile row, the six input rows (zero-padded into
 * `rows`, WP wide) are transformed down the columns first, contiguous and vectorised over the
 * width, then across each tile's six columns. */
EP_CLONES static void input_transform(const float* x, float* v, float* rows, const ep_conv_t* p, int TH, int TW) {
  const int C = p->C, H = p->H, W = p->W, WP = TILE * TW + 2, T = TH * TW;
  float* s = rows + PATCH * WP;  /* six column-transformed rows */
  for (int c = 0; c < C; ++c) {
    const float* plane = x + (size_t)c * H * W;
    for (int th = 0; th < TH; ++th) {
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
        s[WP + w] = BT1(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
        s[2 * WP + w] = BT2(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
        s[3 * WP + w] = BT3(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
        s[4 * WP + w] = BT4(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
        s[5 * WP + w] = BT5(d0[w], d1[w], d2[w], d3[w], d4[w], d5[w]);
      }
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

int ep_conv2d_winograd(const float* x, const float* u, const float* bias, float* y, const ep_conv_t* p) {
  const int C = p->C, K = p->O, TH = (p->OH + TILE - 1) / TILE, TW = (p->OW + TILE - 1) / TILE, T = TH * TW;
  const size_t v_size = (size_t)POSITIONS * C * T, m_size = (size_t)POSITIONS * K * T;
  const size_t rows = (size_t)2 * PATCH * (TILE * TW + 2), work = (size_t)(PATCH + TILE) * TILE * TW;
  float* v = ep_scratch(EP_SCRATCH_WORK, v_size + m_size + rows + work);
  if (!v) return -1;
  float* m = v + v_size;
  float* buffers = m + m_size;
  /* packed: each position's K x C matrix as ceil(K / EP_PANEL_ROWS) panels (kernels.h) */
  const size_t panel_floats = (size_t)(K + EP_PANEL_ROWS - 1) / EP_PANEL_ROWS * EP_PANEL_ROWS * C;
  for (int n = 0; n < p->N; ++n) {
    input_transform(x + (size_t)n * C * p->H * p->W, v, buffers, p, TH, TW);
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
    output_transform(m, bias, y + (size_t)n * K * p->OH * p->OW, buffers, p, TH, TW);
  }
  return 0;
}
