#include "engine/model/kv_cache.h"

#include "engine/common/error.h"

namespace hai::model {

KvCache::KvCache(int64_t n_layer, int64_t n_ctx, int64_t n_embd_k, int64_t n_embd_v)
    : n_layer_(n_layer), n_ctx_(n_ctx), n_embd_k_(n_embd_k), n_embd_v_(n_embd_v) {
  if (n_layer <= 0 || n_ctx <= 0 || n_embd_k <= 0 || n_embd_v <= 0)
    throw Error("KV cache: invalid size (context " + std::to_string(n_ctx) + ")");
  const double bytes = 2.0 * static_cast<double>(n_layer) * static_cast<double>(n_ctx) *
                       static_cast<double>(n_embd_k + n_embd_v);
  if (bytes > 64.0 * (1ull << 30))
    throw Error("KV cache for a context of " + std::to_string(n_ctx) + " tokens would need " +
                std::to_string(static_cast<long long>(bytes / (1 << 20))) + " MiB; use a smaller context");
  // Zero-filled: positions not yet written are never read, but a zero is
  // harmless where a garbage NaN would not be.
  v_stride_ = (n_ctx + 31) / 32 * 32;
  k_.assign(static_cast<size_t>(n_layer * n_ctx * n_embd_k), 0);
  v_.assign(static_cast<size_t>(n_layer * v_stride_ * n_embd_v), 0);
}

}  // namespace hai::model
