// bert_head_attention compiled with the avx2 flags (see bert_attention.h).
#include "engine/model/bert_attention.h"

namespace hai::model {

void bert_head_attention_avx2(const BertHeadArgs& a) { bert_head_attention(a); }

}  // namespace hai::model
