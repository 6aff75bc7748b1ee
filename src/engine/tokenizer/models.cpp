// The models: piece -> token ids. Byte-pair encoding over merge ranks,
// SentencePiece BPE over scores, and WordPiece.
#include <algorithm>
#include <array>
#include <cstdio>
#include <mutex>
#include <queue>
#include <shared_mutex>

#include "engine/common/error.h"
#include "engine/tokenizer/pipeline.h"
#include "engine/tokenizer/unicode.h"

namespace hai::tok {

namespace {

// A doubly linked list of symbols over the piece; merged symbols grow to the
// right and their right neighbour is emptied.
struct Symbol {
  TokenId id;
  int prev, next;
  size_t b, n;  // bytes of the piece covered
};

std::array<TokenId, 256> byte_token_ids(const TokenMap& map) {
  std::array<TokenId, 256> ids;
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    ids[b] = lookup(map, buf);
  }
  return ids;
}

// ---- BPE over merge ranks -----------------------------------------------------

class Bpe final : public Model {
 public:
  Bpe(std::shared_ptr<const TokenMap> m, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions o)
      : keep_(std::move(m)), map_(*keep_), opts_(std::move(o)), byte_ids_(byte_token_ids(map_)) {
    merges_.reserve(merges.size() * 2);
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& [a, b] = merges[rank];
      TokenId ia = lookup(map_, a), ib = lookup(map_, b);
      std::string ab = a;
      ab += opts_.continuing_subword_prefix.empty() ? b : b.substr(std::min(b.size(), opts_.continuing_subword_prefix.size()));
      TokenId iab = lookup(map_, ab);
      // A merge whose parts or result are not tokens can never apply.
      if (ia < 0 || ib < 0 || iab < 0) continue;
      merges_.emplace(key(ia, ib), Merge{static_cast<int>(rank), iab});
    }
    // Single code points below kDirect (all of byte-level BPE's alphabet) are
    // looked up in a table rather than hashed.
    direct_.resize(kDirect);
    for (uint32_t c = 0; c < kDirect; ++c) direct_[c] = lookup(map_, unicode::cpt_to_utf8(c));
  }

  // Pieces repeat a lot in real text (words, CJK runs, indentation), so
  // finished pieces are remembered, up to kCacheMax of them.
  void encode(std::string_view piece, std::vector<TokenId>& out) const override {
    if (piece.empty()) return;
    if (piece.size() <= kCachePieceMax) {
      {
        std::shared_lock lock(cache_mu_);
        auto it = cache_.find(piece);
        if (it != cache_.end()) {
          out.insert(out.end(), it->second.begin(), it->second.end());
          return;
        }
      }
      size_t before = out.size();
      encode_uncached(piece, out);
      std::unique_lock lock(cache_mu_);
      if (cache_.size() < kCacheMax) cache_.emplace(std::string(piece), std::vector<TokenId>(out.begin() + before, out.end()));
      return;
    }
    encode_uncached(piece, out);
  }

 private:
  void encode_uncached(std::string_view piece, std::vector<TokenId>& out) const {
    if (opts_.ignore_merges) {
      TokenId id = lookup(map_, piece);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    std::vector<Symbol> sym;
    sym.reserve(piece.size());
    for (size_t pos = 0; pos < piece.size();) {
      size_t b = pos;
      uint32_t cp = unicode::next_cpt(piece, pos);
      std::string_view ch = piece.substr(b, pos - b);
      TokenId id;
      if (cp < kDirect && opts_.continuing_subword_prefix.empty() && opts_.end_of_word_suffix.empty()) {
        id = direct_[cp];
      } else if (!opts_.continuing_subword_prefix.empty() && b > 0) {
        id = lookup(map_, opts_.continuing_subword_prefix + std::string(ch));
      } else if (!opts_.end_of_word_suffix.empty() && pos == piece.size()) {
        id = lookup(map_, std::string(ch) + opts_.end_of_word_suffix);
      } else {
        id = lookup(map_, ch);
      }
      int i = static_cast<int>(sym.size());
      sym.push_back({id, i - 1, -1, b, pos - b});
      if (i > 0) sym[i - 1].next = i;
    }

    struct Cand {
      int rank;
      int left, right;
      TokenId lid, rid;
      bool operator<(const Cand& o) const {  // priority_queue: "less" pops last
        return rank != o.rank ? rank > o.rank : left > o.left;
      }
    };
    std::priority_queue<Cand> q;
    auto add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      TokenId a = sym[l].id, b = sym[r].id;
      if (a < 0 || b < 0) return;
      auto it = merges_.find(key(a, b));
      if (it == merges_.end()) return;
      q.push({it->second.rank, l, r, a, b});
    };
    for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) add(i, i + 1);
    while (!q.empty()) {
      Cand c = q.top();
      q.pop();
      Symbol& L = sym[c.left];
      if (L.n == 0 || L.next != c.right || L.id != c.lid) continue;
      Symbol& R = sym[c.right];
      if (R.n == 0 || R.id != c.rid) continue;
      L.id = merges_.at(key(c.lid, c.rid)).id;
      L.n += R.n;
      R.n = 0;
      L.next = R.next;
      if (R.next >= 0) sym[R.next].prev = c.left;
      add(L.prev, c.left);
      add(c.left, L.next);
    }

    bool prev_unk = false;
    for (int i = 0; i >= 0 && !sym.empty(); i = sym[i].next) {
      const Symbol& s = sym[i];
      if (s.id >= 0) {
        out.push_back(s.id);
        prev_unk = false;
        continue;
      }
      if (opts_.byte_fallback) {
        bool all = true;
        for (size_t k = 0; k < s.n; ++k) all = all && byte_ids_[static_cast<uint8_t>(piece[s.b + k])] >= 0;
        if (all) {
          for (size_t k = 0; k < s.n; ++k) out.push_back(byte_ids_[static_cast<uint8_t>(piece[s.b + k])]);
          prev_unk = false;
          continue;
        }
      }
      if (opts_.unk >= 0) {
        if (!(opts_.fuse_unk && prev_unk)) out.push_back(opts_.unk);
        prev_unk = true;
      } else {
        // Byte-level vocabularies: each byte's printable character on its own.
        for (size_t k = 0; k < s.n; ++k) {
          TokenId id = lookup(map_, piece.substr(s.b + k, 1));
          if (id >= 0) out.push_back(id);
        }
      }
    }
  }

  struct Merge {
    int rank;
    TokenId id;
  };
  static constexpr uint32_t kDirect = 0x800;  // code points with a 1- or 2-byte UTF-8 form
  std::vector<TokenId> direct_;
  static constexpr size_t kCacheMax = 1 << 16;
  static constexpr size_t kCachePieceMax = 256;  // bytes; longer pieces are rare and not worth keeping
  static uint64_t key(TokenId a, TokenId b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

  std::shared_ptr<const TokenMap> keep_;
  const TokenMap& map_;
  BpeOptions opts_;
  std::array<TokenId, 256> byte_ids_;
  std::unordered_map<uint64_t, Merge> merges_;
  mutable std::shared_mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> cache_;
};

// ---- SentencePiece BPE over scores --------------------------------------------

class Spm final : public Model {
 public:
  Spm(const Vocab& v, std::shared_ptr<const TokenMap> m) : keep_(std::move(m)), map_(*keep_), scores_(v.scores), byte_ids_(byte_token_ids(map_)), unk_(v.unk) {
    scores_.resize(v.tokens.size(), 0.0f);
  }

  void encode(std::string_view text, std::vector<TokenId>& out) const override {
    if (text.empty()) return;
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      size_t b = pos;
      unicode::next_cpt(text, pos);
      int i = static_cast<int>(sym.size());
      sym.push_back({-1, i - 1, -1, b, pos - b});
      if (i > 0) sym[i - 1].next = i;
    }
    struct Bigram {
      float score;
      int left, right;
      size_t size;
      bool operator<(const Bigram& o) const {  // best score first, then leftmost
        return score < o.score || (score == o.score && left > o.left);
      }
    };
    std::priority_queue<Bigram> q;
    auto add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      std::string_view s = text.substr(sym[l].b, sym[l].n + sym[r].n);
      TokenId id = lookup(map_, s);
      if (id < 0) return;
      q.push({scores_[id], l, r, s.size()});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) add(i - 1, i);
    while (!q.empty()) {
      Bigram g = q.top();
      q.pop();
      Symbol& L = sym[g.left];
      Symbol& R = sym[g.right];
      if (L.n == 0 || R.n == 0 || L.n + R.n != g.size) continue;
      L.n += R.n;
      R.n = 0;
      L.next = R.next;
      if (R.next >= 0) sym[R.next].prev = g.left;
      add(L.prev, g.left);
      add(g.left, L.next);
    }
    for (int i = 0; i >= 0; i = sym[i].next) {
      std::string_view s = text.substr(sym[i].b, sym[i].n);
      TokenId id = lookup(map_, s);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      // Byte fallback: the UTF-8 bytes as <0xNN> tokens.
      for (unsigned char c : s) {
        TokenId b = byte_ids_[c];
        if (b < 0) b = unk_;
        if (b >= 0) out.push_back(b);
      }
    }
  }

 private:
  std::shared_ptr<const TokenMap> keep_;
  const TokenMap& map_;
  std::vector<float> scores_;
  std::array<TokenId, 256> byte_ids_;
  TokenId unk_;
};

// ---- WordPiece ----------------------------------------------------------------

class WordPiece final : public Model {
 public:
  WordPiece(std::shared_ptr<const TokenMap> m, TokenId unk, std::string wp, std::string cp, size_t max_chars)
      : keep_(std::move(m)), map_(*keep_), unk_(unk), word_prefix_(std::move(wp)), cont_prefix_(std::move(cp)), max_chars_(max_chars) {
    for (auto& [t, id] : map_) max_len_ = std::max(max_len_, t.size());
  }

  void encode(std::string_view piece, std::vector<TokenId>& out) const override {
    if (piece.empty()) return;
    size_t n_chars = 0;
    for (unsigned char c : piece) n_chars += (c & 0xC0) != 0x80;
    if (n_chars > max_chars_) {
      push_unk(out);
      return;
    }
    std::string word = word_prefix_ + std::string(piece);
    size_t first_end_min = word_prefix_.size();  // the first sub-word must hold more than the prefix
    std::vector<TokenId> ids;
    std::string probe;
    for (size_t start = 0; start < word.size();) {
      size_t end = std::min(word.size(), start + max_len_);
      TokenId found = -1;
      for (; end > start; --end) {
        if (end < word.size() && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) continue;
        if (start == 0 && end <= first_end_min) break;
        if (start == 0) {
          found = lookup(map_, std::string_view(word).substr(0, end));
        } else {
          probe.assign(cont_prefix_);
          probe.append(word, start, end - start);
          found = lookup(map_, probe);
        }
        if (found >= 0) break;
      }
      if (found < 0) {
        push_unk(out);
        return;
      }
      ids.push_back(found);
      start = end;
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }

 private:
  void push_unk(std::vector<TokenId>& out) const {
    if (unk_ >= 0) out.push_back(unk_);
  }
  std::shared_ptr<const TokenMap> keep_;
  const TokenMap& map_;
  TokenId unk_;
  std::string word_prefix_, cont_prefix_;
  size_t max_chars_;
  size_t max_len_ = 1;
};

}  // namespace

std::unique_ptr<Model> make_bpe_model(std::shared_ptr<const TokenMap> map,
                                      const std::vector<std::pair<std::string, std::string>>& merges,
                                      BpeOptions opts) {
  return std::make_unique<Bpe>(std::move(map), merges, std::move(opts));
}

std::unique_ptr<Model> make_spm_model(const Vocab& vocab, std::shared_ptr<const TokenMap> map) {
  return std::make_unique<Spm>(vocab, std::move(map));
}

std::unique_ptr<Model> make_wordpiece_model(std::shared_ptr<const TokenMap> map, TokenId unk, std::string word_prefix,
                                            std::string cont_prefix, size_t max_chars_per_word) {
  return std::make_unique<WordPiece>(std::move(map), unk, std::move(word_prefix), std::move(cont_prefix), max_chars_per_word);
}

}  // namespace hai::tok
