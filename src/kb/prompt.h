// The prompt of `hai kb ask` with a chat model: the retrieved passages as
// numbered sources, the question, and instructions for the answer mode.
//
//   grounded  answer only from the sources; when they do not contain the
//             answer, say so instead of guessing.
//   open      use the sources first, and the model's own knowledge where
//             they fall short (saying which parts are not from them).
//
// Either way the model is told to cite sources as [1], [2] by their numbers.
// The result is a chat (system + user message) for the model's template.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kb/knowledge_base.h"

namespace hai::kb {

enum class AnswerMode { kGrounded, kOpen };
// "grounded" or "open"; throws hai::Error naming the value.
AnswerMode ParseAnswerMode(const std::string& s);
const char* AnswerModeName(AnswerMode m);

// The source line of a hit: "doc, page 3, heading" (what a citation shows).
std::string SourceLabel(const Hit& h);

// The chat messages [{role: system, ...}, {role: user, ...}]. Source n is
// sources[n-1]; each passage is cut to `max_source_chars` code points
// (whole text when <= 0). The question and passages are quoted verbatim.
nlohmann::ordered_json BuildAskMessages(const std::string& question, const std::vector<Hit>& sources,
                                        AnswerMode mode, int max_source_chars = 0);

// The source numbers cited in an answer ("[2]", "[1][3]", "[1, 2]"), in
// order of first appearance, keeping only 1..n_sources.
std::vector<int> CitedSources(const std::string& answer, int n_sources);

}  // namespace hai::kb
