// Byte layouts of the quantized blocks, exactly as ggml stores them in GGUF
// files (ggml-common.h). Internal to the quant library: the rest of the engine
// sees rows of bytes and uses quant.h.
//
// Every layout is little-endian and packed; an `f16` field holds the bits of
// an IEEE half (fp16_to_fp32 converts it).
#pragma once

#include <cstdint>

namespace hai::qblock {

constexpr int kQK = 32;    // values per block of the legacy types
constexpr int kQK_K = 256; // values per super-block of the K-quants

// x = d * (q - 8), q in 0..15. qs[j] holds value j (low nibble) and j+16 (high).
struct Q4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};

// x = d * q + m, q in 0..15.
struct Q4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};

// x = d * (q - 16), q in 0..31; bit 4 of value j is bit j of qh.
struct Q5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// x = d * q + m, q in 0..31.
struct Q5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// x = d * q, q in -127..127.
struct Q8_0 {
  uint16_t d;
  int8_t qs[kQK];
};

// Activations for Q4_1 / Q5_1: like Q8_0 plus s = d * sum(qs).
struct Q8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};

// 16 sub-blocks of 16: x = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4),
// q in 0..3; qs packs 4 values per byte (see dequantize_q2_K).
struct Q2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};

// 16 sub-blocks of 16: x = d * (scale6[j] - 32) * (q - 4), q in 0..7 from two
// low bits in qs and a high bit in hmask; the 6-bit scales are packed in 12 bytes.
struct Q3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};

// 8 sub-blocks of 32: x = d * sc[j] * q - dmin * m[j], q in 0..15, 6-bit
// scales and mins packed in 12 bytes (see scale_min_k4).
struct Q4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};

// Like Q4_K with a fifth bit per value in qh.
struct Q5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};

// 16 sub-blocks of 16: x = d * scales[j] * (q - 32), q in 0..63 from 4 low
// bits in ql and 2 high bits in qh.
struct Q6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};

// Activations for the K-quants: x = d * q, with the sums of each 16 values.
struct Q8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(Q4_0) == 18);
static_assert(sizeof(Q4_1) == 20);
static_assert(sizeof(Q5_0) == 22);
static_assert(sizeof(Q5_1) == 24);
static_assert(sizeof(Q8_0) == 34);
static_assert(sizeof(Q8_1) == 36);
static_assert(sizeof(Q2_K) == 84);
static_assert(sizeof(Q3_K) == 110);
static_assert(sizeof(Q4_K) == 144);
static_assert(sizeof(Q5_K) == 176);
static_assert(sizeof(Q6_K) == 210);
static_assert(sizeof(Q8_K) == 292);

// The helpers below are `static` (internal linkage): this header is also
// compiled into the AVX2 / AVX-512 files, and an inline function with external
// linkage could be merged by the linker into one copy built with those
// instruction sets, then called on a CPU without them.

// The j-th (0..7) 6-bit scale and min of a Q4_K / Q5_K block.
static inline void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

// The 16 signed scales (already minus 32) of a Q3_K block.
static inline void unpack_q3_k_scales(const uint8_t* packed, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

}  // namespace hai::qblock
