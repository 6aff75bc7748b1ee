// What `hai logits` computes for one prompt, in the format of the reference
// files (shared/fixtures/reference/M.json): the top logits after every prompt
// token, all logits after the last one, and a greedy continuation.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/model/forward.h"

namespace hai {
class Tokenizer;
}

namespace hai::model {

struct PromptReport {
  std::string prompt;
  std::vector<int32_t> tokens;
  // top[pos] = the `top` largest (id, logit) after prompt token pos, largest first.
  std::vector<std::vector<std::pair<int32_t, float>>> top;
  std::vector<float> last_logits;  // n_vocab logits after the last prompt token
  std::string last_logits_file;    // "M.K.last_logits.f32"
  std::vector<int32_t> greedy;     // argmax continuation
  std::string greedy_text;         // greedy detokenized (raw bytes)
};

// Evaluates `tokens` from position 0 of `ctx` (which is cleared first), then
// continues greedily for n_greedy tokens (always n_greedy, end-of-generation
// tokens included, as the reference does). `tokenizer` may be null, then
// greedy_text stays empty. Throws hai::Error if the prompt plus the
// continuation does not fit in the context.
PromptReport run_prompt(Context& ctx, const std::vector<int32_t>& tokens, int top, int n_greedy,
                        const Tokenizer* tokenizer);

// The `k` largest logits, largest first (ties: lower id first).
std::vector<std::pair<int32_t, float>> top_k(const float* logits, int64_t n_vocab, int k);
// Index of the largest logit (the first one on ties).
int32_t argmax(const float* logits, int64_t n_vocab);

// One JSON object, formatted as the reference files are: no spaces, logits
// with 6 decimals, control characters escaped as \u00XX. The key of the top
// logits is "top" + top size ("top5").
std::string to_json(const PromptReport& r, int top);

// Lines of a prompt file; a literal backslash-n in a line stands for a
// newline. A trailing newline at the end of the file does not add a prompt.
std::vector<std::string> read_prompt_file(const std::string& path);

// "tiny-llama-spm-f16" for ".../tiny-llama-spm-f16.gguf".
std::string model_stem(const std::string& model_path);

// Writes n floats little-endian to path. Throws hai::Error on failure.
void write_f32_file(const std::string& path, const std::vector<float>& v);

}  // namespace hai::model
