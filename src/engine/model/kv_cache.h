// The attention cache: for every layer, the keys and values of every position
// processed so far, stored as F16 (as the reference engine stores them).
//
// Keys are kept one row per position (K[layer][pos][n_embd_k]); values are
// kept transposed (V[layer][dim][pos]), so that the product of the attention
// probabilities with V is a dot product over positions, as in ggml.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hai::model {

class KvCache {
 public:
  KvCache() = default;
  KvCache(int64_t n_layer, int64_t n_ctx, int64_t n_embd_k, int64_t n_embd_v);

  int64_t n_ctx() const { return n_ctx_; }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(uint16_t); }

  // Key row of `pos` in `layer`: n_embd_k F16 values.
  uint16_t* k(int64_t layer, int64_t pos) { return &k_[static_cast<size_t>((layer * n_ctx_ + pos) * n_embd_k_)]; }
  // Values of dimension `dim` in `layer` for positions 0..v_stride()-1
  // (rows are padded to a multiple of 32 positions, zero beyond n_ctx).
  uint16_t* v(int64_t layer, int64_t dim) { return &v_[static_cast<size_t>((layer * n_embd_v_ + dim) * v_stride_)]; }
  int64_t v_stride() const { return v_stride_; }

 private:
  int64_t n_layer_ = 0, n_ctx_ = 0, v_stride_ = 0, n_embd_k_ = 0, n_embd_v_ = 0;
  std::vector<uint16_t> k_, v_;
};

}  // namespace hai::model
