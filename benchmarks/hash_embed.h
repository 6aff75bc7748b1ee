// A zero-cost stand-in embedder for knowledge-base benchmarks: hashed
// character unigrams and bigrams in 384 dimensions. It measures the index
// and the fusion, not embedding quality (no model can be downloaded here).
#pragma once

#include <string>
#include <vector>

#include "kb/text.h"

namespace hai::bench {

constexpr unsigned kHashEmbedDim = 384;

inline std::vector<std::vector<float>> HashEmbed(const std::vector<std::string>& texts) {
  std::vector<std::vector<float>> out;
  for (auto& t : texts) {
    std::vector<float> v(kHashEmbedDim, 0.0f);
    std::u32string u = hai::kb::DecodeUtf8(t);
    for (size_t i = 0; i < u.size(); ++i) {
      v[(u[i] * 2654435761u) % kHashEmbedDim] += 0.5f;
      if (i + 1 < u.size()) v[((u[i] * 31u + u[i + 1]) * 2654435761u) % kHashEmbedDim] += 1.0f;
    }
    v[0] += 0.01f;
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace hai::bench
