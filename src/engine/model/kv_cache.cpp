#include "engine/model/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "engine/common/error.h"
#include "engine/quant/types.h"

namespace hai::model {

const char* to_string(KvType t) { return t == KvType::kQ8_0 ? "q8_0" : "f16"; }

KvType kv_type_from_string(const std::string& s) {
  if (s == "f16") return KvType::kF16;
  if (s == "q8_0") return KvType::kQ8_0;
  throw Error("unknown KV cache type \"" + s + "\" (expected f16 or q8_0)");
}

KvCache::KvCache(int64_t n_layer, int64_t n_ctx, int64_t n_embd_k, int64_t n_embd_v, int64_t n_seq, KvType type,
                 int64_t head_dim_k, int64_t head_dim_v)
    : type_(type), n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx), n_embd_k_(n_embd_k), n_embd_v_(n_embd_v) {
  if (n_layer <= 0 || n_ctx <= 0 || n_embd_k <= 0 || n_embd_v <= 0 || n_seq <= 0)
    throw Error("KV cache: invalid size (context " + std::to_string(n_ctx) + ", sequences " + std::to_string(n_seq) +
                ")");
  if (type == KvType::kQ8_0 && (head_dim_k % 32 != 0 || head_dim_v % 32 != 0))
    throw Error("KV cache type q8_0 needs head sizes that are multiples of 32; this model has " +
                std::to_string(head_dim_k) + " and " + std::to_string(head_dim_v));
  const double per_position = type == KvType::kQ8_0
                                  ? static_cast<double>(row_size(GgmlType::Q8_0, n_embd_k) + row_size(GgmlType::Q8_0, n_embd_v))
                                  : 2.0 * static_cast<double>(n_embd_k + n_embd_v);
  const double bytes = per_position * static_cast<double>(n_layer) * static_cast<double>(n_seq) * static_cast<double>(n_ctx);
  if (bytes > 64.0 * (1ull << 30))
    throw Error("KV cache for " + std::to_string(n_seq) + " x " + std::to_string(n_ctx) + " tokens would need " +
                std::to_string(static_cast<long long>(bytes / (1 << 20))) + " MiB; use a smaller context");
  if (type == KvType::kQ8_0) {
    k_row_bytes_ = row_size(GgmlType::Q8_0, n_embd_k);
    row_bytes_ = k_row_bytes_ + row_size(GgmlType::Q8_0, n_embd_v);
    q_.assign(static_cast<size_t>(n_layer * n_seq * n_ctx) * row_bytes_, 0);
    return;
  }
  // Zero-filled: positions not yet written are never read, but a zero is
  // harmless where a garbage NaN would not be.
  v_stride_ = (n_ctx + 31) / 32 * 32;
  k_.assign(static_cast<size_t>(n_layer * n_seq * n_ctx * n_embd_k), 0);
  v_.assign(static_cast<size_t>(n_layer * n_seq * v_stride_ * n_embd_v), 0);
}

void KvCache::zero_values(int64_t seq, int64_t from, int64_t to) {
  if (type_ != KvType::kF16) return;
  from = std::max<int64_t>(from, 0);
  to = std::min(to, v_stride_);
  if (from >= to) return;
  for (int64_t l = 0; l < n_layer_; ++l)
    for (int64_t d = 0; d < n_embd_v_; ++d) std::fill(v(l, seq, d) + from, v(l, seq, d) + to, uint16_t{0});
}

void KvCache::copy(int64_t src, int64_t dst, int64_t from, int64_t to) {
  const int64_t m = to - from;
  if (m <= 0 || src == dst) return;
  for (int64_t l = 0; l < n_layer_; ++l) {
    if (type_ == KvType::kQ8_0) {
      std::memcpy(k_q8(l, dst, from), k_q8(l, src, from), static_cast<size_t>(m) * row_bytes_);
      continue;
    }
    std::memcpy(k(l, dst, from), k(l, src, from), static_cast<size_t>(m * n_embd_k_) * sizeof(uint16_t));
    for (int64_t d = 0; d < n_embd_v_; ++d)
      std::memcpy(v(l, dst, d) + from, v(l, src, d) + from, static_cast<size_t>(m) * sizeof(uint16_t));
  }
}

}  // namespace hai::model
