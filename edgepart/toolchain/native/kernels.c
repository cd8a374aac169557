/* edgepart CPU kernels (kernels.h): conv2d as im2col + cblas_sgemm (a 1x1 stride-1 convolution
 * needs no im2col), depthwise conv2d as direct loops, matmul as cblas_sgemm / cblas_sgemv.
 * edgepart.compile.offload links this file with OpenBLAS's static library (serial build) into each
 * CPU tier's shared library. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "kernels.h"


/* Per-thread scratch (im2col columns, padded depthwise planes, Winograd's transformed tiles; the
 * packed product's column strips): each slot grown to the largest size a call has needed and kept, so
 * a model's calls allocate once rather than per call. */
static __thread float* scratch_buffer[EP_SCRATCH_SLOTS];
static __thread size_t scratch_floats[EP_SCRATCH_SLOTS];

float* ep_scratch(int slot, size_t floats) {
  if (floats > scratch_floats[slot]) {
    free(scratch_buffer[slot]);
    scratch_buffer[slot] = (float*)aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
    scratch_floats[slot] = scratch_buffer[slot] ? floats : 0;
  }
  return scratch_buffer[slot];
}

/* exp for the SiLU epilogue: Cephes polynomial (as topi.fast_exp), branch-free so it vectorises
 * (needs -fno-trapping-math); max rel error ~1.5e-7 */
static inline float ep_exp(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447504f ? -87.3365447504f : x;
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f; p = p * r + 8.3334519073E-3f; p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f; p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.f;
  int32_t e = ((int32_t)n + 127) << 23; float s; memcpy(&s, &e, 4);
  return p * s;
}

static inline float act(float v, int a) {
  if (a == EP_ACT_SILU) return v / (1.f + ep_exp(-v));
  if (a == EP_ACT_RELU) return v > 0.f ? v : 0.f;
  return v;
}

/* y[c, :] = act(y[c, :] + bias[c]) for channels c, plane size hw */
EP_CLONES static void epilogue(float* y, const float* bias, int channels, int hw, const ep_conv_t* p) {
  if (!bias && p->act == EP_ACT_NONE) return;
  for (int c = 0; c < channels; ++c) {
    float b = bias ? bias[c] : 0.f;
    float* row = y + (size_t)c * hw;
    if (p->act == EP_ACT_RELU) {
      for (int i = 0; i < hw; ++i) { float v = row[i] + b; row[i] = v > 0.f ? v : 0.f; }
    } else if (p->act == EP_ACT_SILU) {
      for (int i = 0; i < hw; ++i) { float v = row[i] + b; row[i] = v / (1.f + ep_exp(-v)); }
    } else {
      for (int i = 0; i < hw; ++i) row[i] += b;
    }
  }
}

/* A 1x1, stride-1, unpadded convolution: its input already is the product's right operand (no im2col). */
static int pointwise(const ep_conv_t* p) {
  return p->KH == 1 && p->KW == 1 && p->SH == 1 && p->SW == 1 && p->PT == 0 && p->PL == 0 && p->PB == 0 && p->PR == 0;
}

/* im2col of one group: rows (c, kh, kw), columns (oh, ow) */
EP_CLONES static void im2col(const float* x, float* col, int C, const ep_conv_t* p) {
  const int H = p->H, W = p->W, OH = p->OH, OW = p->OW;
  for (int c = 0; c < C; ++c)
    for (int kh = 0; kh < p->KH; ++kh)
      for (int kw = 0; kw < p->KW; ++kw) {
        float* out = col + (((size_t)c * p->KH + kh) * p->KW + kw) * OH * OW;
        const float* plane = x + (size_t)c * H * W;
        /* valid ow range: 0 <= ow*SW - PL + kw*DW < W */
        int off = kw * p->DW - p->PL;
        int ow0 = off >= 0 ? 0 : (-off + p->SW - 1) / p->SW;
        int ow1 = (W - off + p->SW - 1) / p->SW; if (ow1 > OW) ow1 = OW; if (ow1 < ow0) ow1 = ow0;
        for (int oh = 0; oh < OH; ++oh) {
          int ih = oh * p->SH - p->PT + kh * p->DH;
          float* o = out + (size_t)oh * OW;
          if (ih < 0 || ih >= H) { memset(o, 0, sizeof(float) * OW); continue; }
          const float* row = plane + (size_t)ih * W + off;
          for (int ow = 0; ow < ow0; ++ow) o[ow] = 0.f;
          if (p->SW == 1) memcpy(o + ow0, row + ow0, sizeof(float) * (ow1 - ow0));
          else for (int ow = ow0; ow < ow1; ++ow) o[ow] = row[ow * p->SW];
          for (int ow = ow1; ow < OW; ++ow) o[ow] = 0.f;
        }
      }
}

/* depthwise (one input and one output channel per group). Each plane is copied into a zero-padded
 * buffer. Stride 1: the output is computed over the padded width (WP columns per row, the last
 * columns are garbage), so every kernel tap is one long contiguous multiply-add over OH*WP values
 * that vectorises fully; the valid columns are then copied out with bias and activation.
 * Other strides: per output row. */
EP_CLONES static int depthwise(const float* x, const float* w, const float* bias, float* y, const ep_conv_t* p) {
  const int H = p->H, W = p->W, OH = p->OH, OW = p->OW, KH = p->KH, KW = p->KW;
  const int HP = H + p->PT + p->PB + 1, WP = W + p->PL + p->PR; /* +1 row: stride-1 overrun */
  const size_t plane_p = (size_t)HP * WP;
  float* pad = ep_scratch(EP_SCRATCH_WORK, plane_p + (size_t)OH * WP + (size_t)OW + 32);
  if (!pad) return -1;
  float* acc = pad + plane_p;
  memset(pad, 0, sizeof(float) * plane_p);
  for (int c = 0; c < p->C; ++c) {
    const float* plane = x + (size_t)c * H * W;
    for (int h = 0; h < H; ++h) memcpy(pad + (size_t)(h + p->PT) * WP + p->PL, plane + (size_t)h * W, sizeof(float) * W);
    const float* k = w + (size_t)c * KH * KW;
    const float b = bias ? bias[c] : 0.f;
    float* out = y + (size_t)c * OH * OW;
    if (p->SH == 1 && p->SW == 1) {
      const int len = OH * WP;
      for (int i = 0; i < len; ++i) acc[i] = b;
      for (int kh = 0; kh < KH; ++kh)
        for (int kw = 0; kw < KW; ++kw) {
          const float kv = k[kh * KW + kw];
          const float* __restrict src = pad + (size_t)kh * p->DH * WP + kw * p->DW;
          float* __restrict a = acc;
          for (int i = 0; i < len; ++i) a[i] += kv * src[i];
        }
      for (int oh = 0; oh < OH; ++oh) {
        const float* a = acc + (size_t)oh * WP;
        float* o = out + (size_t)oh * OW;
        if (p->act == EP_ACT_RELU) for (int ow = 0; ow < OW; ++ow) o[ow] = a[ow] > 0.f ? a[ow] : 0.f;
        else if (p->act == EP_ACT_NONE) memcpy(o, a, sizeof(float) * OW);
        else for (int ow = 0; ow < OW; ++ow) o[ow] = act(a[ow], p->act);
      }
      continue;
    }
    for (int oh = 0; oh < OH; ++oh) {
      for (int ow = 0; ow < OW; ++ow) acc[ow] = b;
      for (int kh = 0; kh < KH; ++kh) {
        const float* row = pad + (size_t)(oh * p->SH + kh * p->DH) * WP;
        for (int kw = 0; kw < KW; ++kw) {
          const float kv = k[kh * KW + kw];
          const float* src = row + kw * p->DW;
          if (p->SW == 2) { for (int ow = 0; ow < OW; ++ow) acc[ow] += kv * src[2 * ow]; }
          else { for (int ow = 0; ow < OW; ++ow) acc[ow] += kv * src[ow * p->SW]; }
        }
      }
      float* o = out + (size_t)oh * OW;
      for (int ow = 0; ow < OW; ++ow) o[ow] = act(acc[ow], p->act);
    }
  }
  return 0;
}

int ep_conv2d_nchw(const float* x, const float* w, const float* bias, float* y, const ep_conv_t* p) {
  const int G = p->G, Cg = p->C / G, Og = p->O / G, OHW = p->OH * p->OW;
  const int K = Cg * p->KH * p->KW;
  for (int n = 0; n < p->N; ++n) {
    const float* xn = x + (size_t)n * p->C * p->H * p->W;
    float* yn = y + (size_t)n * p->O * OHW;
    if (Cg == 1 && Og == 1) {
      if (depthwise(xn, w, bias, yn, p)) return -1;
      continue;
    }
    const int direct = pointwise(p);
    float* col = direct ? NULL : ep_scratch(EP_SCRATCH_WORK, (size_t)K * OHW);
    if (!direct && !col) return -1;
    for (int g = 0; g < G; ++g) {
      const float* xg = xn + (size_t)g * Cg * p->H * p->W;
      const float* b;
      if (direct) b = xg; else { im2col(xg, col, Cg, p); b = col; }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Og, OHW, K, 1.f, w + (size_t)g * Og * K, K, b, OHW, 0.f,
                  yn + (size_t)g * Og * OHW, OHW);
    }
    epilogue(yn, bias, p->O, OHW, p);
  }
  return 0;
}

/* One group (G == 1) with weights packed as the O x C*KH*KW matrix (gemm.c); the bias, the residual
 * and ReLU go into the product's stores, SiLU over each image's output afterwards. */
int ep_conv2d_packed(const float* x, const float* w, const float* bias, const float* add, float* y,
                     const ep_conv_t* p) {
  const int OHW = p->OH * p->OW, K = p->C * p->KH * p->KW;
  const int direct = pointwise(p);
  float* col = direct ? NULL : ep_scratch(EP_SCRATCH_WORK, (size_t)K * OHW);
  if (!direct && !col) return -1;
  for (int n = 0; n < p->N; ++n) {
    const float* xn = x + (size_t)n * p->C * p->H * p->W;
    float* yn = y + (size_t)n * p->O * OHW;
    if (!direct) im2col(xn, col, p->C, p);
    const ep_gemm_t g = {p->O, OHW, K, OHW, OHW, OHW, bias, add ? add + (size_t)n * p->O * OHW : NULL,
                         p->act == EP_ACT_RELU ? EP_ACT_RELU : EP_ACT_NONE};
    const int failed = ep_gemm_packed(w, direct ? xn : col, yn, &g);
    if (failed) return failed;
    if (p->act == EP_ACT_SILU) {
      const ep_conv_t silu_only = {.act = EP_ACT_SILU};
      epilogue(yn, NULL, p->O, OHW, &silu_only);
    }
  }
  return 0;
}

/* y[b] = act(a[b] @ w[b] + bias) for each of the `batch` products (kernels.h). */
void ep_matmul(const float* a, const float* w, const float* bias, float* y, const ep_matmul_t* p) {
  for (int64_t b = 0; b < p->batch; ++b) {
    float* yb = y + (size_t)b * p->M * p->N;
    float beta = 0.f;
    if (bias) {
      for (int64_t m = 0; m < p->M; ++m) memcpy(yb + m * p->N, bias, sizeof(float) * p->N);
      beta = 1.f;
    }
    if (p->M == 1)  /* vector-matrix: GEMV, which does not pack the weights first as sgemm does */
      cblas_sgemv(CblasRowMajor, CblasTrans, p->K, p->N, 1.f, w + (size_t)b * p->w_stride, p->N,
                  a + (size_t)b * p->a_stride, 1, beta, yb, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->M, p->N, p->K, 1.f, a + (size_t)b * p->a_stride,
                  p->K, w + (size_t)b * p->w_stride, p->N, beta, yb, p->N);
    if (p->act == EP_ACT_RELU)
      for (int64_t i = 0; i < p->M * p->N; ++i) yb[i] = yb[i] > 0.f ? yb[i] : 0.f;
  }
}
