// The attention cache: for every layer and every sequence, the keys and
// values of every position processed so far.
//
// A cache holds n_seq independent sequences of n_ctx positions each (a
// Context with one sequence for `hai run`; one sequence per slot for the
// scheduler). Two storage types:
//
//   F16 (default, as the reference engine stores them): keys one row per
//   position (K[layer][seq][pos][n_embd_k]); values transposed
//   (V[layer][seq][dim][pos]), so that the product of the attention
//   probabilities with V is a dot product over positions, as in ggml.
//
//   Q8_0 (half the memory): keys and values one row per position, each row
//   in Q8_0 blocks of 32 (so every head starts on a block: head sizes must
//   be multiples of 32). The numbers differ slightly from F16's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hai::model {

enum class KvType { kF16, kQ8_0 };
const char* to_string(KvType t);                  // "f16", "q8_0"
KvType kv_type_from_string(const std::string& s);  // throws hai::Error naming the value

class KvCache {
 public:
  KvCache() = default;
  // Throws hai::Error on a non-positive size, a cache above 64 GiB, or head
  // sizes that Q8_0 cannot store.
  KvCache(int64_t n_layer, int64_t n_ctx, int64_t n_embd_k, int64_t n_embd_v, int64_t n_seq = 1,
          KvType type = KvType::kF16, int64_t head_dim_k = 32, int64_t head_dim_v = 32);

  KvType type() const { return type_; }
  int64_t n_ctx() const { return n_ctx_; }  // positions per sequence
  int64_t n_seq() const { return n_seq_; }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(uint16_t) + q_.size(); }

  // F16: key row of `pos` of sequence `seq` in `layer`: n_embd_k values.
  uint16_t* k(int64_t layer, int64_t seq, int64_t pos) {
    return &k_[static_cast<size_t>(((layer * n_seq_ + seq) * n_ctx_ + pos) * n_embd_k_)];
  }
  // F16: values of dimension `dim` of sequence `seq` in `layer` for positions
  // 0..v_stride()-1 (rows are padded to a multiple of 32 positions).
  uint16_t* v(int64_t layer, int64_t seq, int64_t dim) {
    return &v_[static_cast<size_t>(((layer * n_seq_ + seq) * n_embd_v_ + dim) * v_stride_)];
  }
  int64_t v_stride() const { return v_stride_; }

  // Q8_0: the key / value row of `pos` (k_row_bytes() / v_row_bytes() bytes).
  uint8_t* k_q8(int64_t layer, int64_t seq, int64_t pos) {
    return &q_[static_cast<size_t>((layer * n_seq_ + seq) * n_ctx_ + pos) * row_bytes_];
  }
  uint8_t* v_q8(int64_t layer, int64_t seq, int64_t pos) { return k_q8(layer, seq, pos) + k_row_bytes_; }
  size_t k_row_bytes() const { return k_row_bytes_; }
  size_t v_row_bytes() const { return row_bytes_ - k_row_bytes_; }

  // Zeroes the F16 values of positions [from, to) of `seq` in every layer.
  // The attention multiplies the padding beyond the last position by a zero
  // probability; zeroed values keep that product exactly zero (a stale value
  // could be an F16 infinity, and inf * 0 is NaN). Q8_0: nothing to do.
  void zero_values(int64_t seq, int64_t from, int64_t to);
  // Copies positions [from, to) of sequence `src` to sequence `dst`.
  void copy(int64_t src, int64_t dst, int64_t from, int64_t to);

 private:
  KvType type_ = KvType::kF16;
  int64_t n_layer_ = 0, n_seq_ = 0, n_ctx_ = 0, v_stride_ = 0, n_embd_k_ = 0, n_embd_v_ = 0;
  std::vector<uint16_t> k_, v_;  // F16
  std::vector<uint8_t> q_;       // Q8_0: [layer][seq][pos] K row then V row
  size_t k_row_bytes_ = 0, row_bytes_ = 0;
};

}  // namespace hai::model
