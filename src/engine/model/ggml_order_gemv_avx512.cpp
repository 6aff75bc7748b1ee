// AVX-512 single-token matrix products (decode) in the reference's summation
// order (compiled with AVX-512 flags; called only after have_avx512()).
// Decode reads every weight once per token, so these kernels are about
// streaming the rows at the memory's speed; each output stays bit-identical
// to the per-element kernel of its type (ggml_order.h).
#include "engine/model/ggml_order.h"

namespace hai::model::ggml_order {

bool gemv_avx512(GgmlType type, const GemmArgs& g) {
  switch (type) {
    // A single token cannot amortize the unpacking of a K-quant tile: the
    // AVX2 kernels that decode the blocks on the fly are faster there.
    case GgmlType::Q4_K: gemm_avx2(type, g); return true;
    default: return false;
  }
}

}  // namespace hai::model::ggml_order
