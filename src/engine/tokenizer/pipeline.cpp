#include "engine/tokenizer/pipeline.h"

#include <algorithm>

#include "engine/common/error.h"
#include "engine/tokenizer/unicode.h"

namespace hai::tok {

std::shared_ptr<const TokenMap> build_token_map(const std::vector<std::string>& tokens) {
  auto m = std::make_shared<TokenMap>();
  m->reserve(tokens.size() * 2);
  for (size_t i = 0; i < tokens.size(); ++i) m->emplace(tokens[i], static_cast<TokenId>(i));
  return m;
}

PipelineTokenizer::PipelineTokenizer(Vocab vocab, PipelineConfig config)
    : Tokenizer(std::move(vocab)), cfg_(std::move(config)) {
  if (!cfg_.model) throw Error("tokenizer has no model");
  // Added tokens: drop empty ones, index by first byte, longest first.
  std::erase_if(cfg_.added, [&](const AddedToken& a) { return a.text.empty() || a.id < 0 || a.id >= n_vocab(); });
  std::stable_sort(cfg_.added.begin(), cfg_.added.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.text.size() > b.text.size(); });
  added_by_byte_.resize(256);
  for (size_t i = 0; i < cfg_.added.size(); ++i)
    added_by_byte_[static_cast<uint8_t>(cfg_.added[i].text[0])].push_back(i);
  for (TokenId id : cfg_.prefix)
    if (id < 0 || id >= n_vocab()) throw Error("special token id " + std::to_string(id) + " out of range");
  for (TokenId id : cfg_.suffix)
    if (id < 0 || id >= n_vocab()) throw Error("special token id " + std::to_string(id) + " out of range");
  std::vector<std::string> pieces(vocab_.tokens.size());
  for (TokenId id = 0; id < n_vocab(); ++id) pieces[id] = token_to_piece(id, true);
  pieces_ = std::move(pieces);
}

namespace {
bool ws_at(std::string_view s, size_t pos, size_t* len) {
  size_t p = pos;
  uint32_t c = unicode::next_cpt(s, p);
  *len = p - pos;
  return unicode::is_whitespace(c);
}
}  // namespace

std::vector<PipelineTokenizer::Fragment> PipelineTokenizer::partition(std::string_view text,
                                                                      bool parse_special) const {
  std::vector<Fragment> out;
  size_t seg = 0;  // start of the pending plain text
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& cands = added_by_byte_[static_cast<uint8_t>(text[pos])];
    const AddedToken* hit = nullptr;
    for (size_t i : cands) {
      const AddedToken& a = cfg_.added[i];
      if (a.special && !parse_special) continue;
      if (text.compare(pos, a.text.size(), a.text) == 0) {
        hit = &a;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t left_end = pos;
    if (hit->lstrip) {
      // Swallow whitespace before the token (whole code points).
      while (left_end > seg) {
        size_t b = left_end - 1;
        while (b > seg && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        size_t len;
        if (!ws_at(text, b, &len)) break;
        left_end = b;
      }
    }
    if (left_end > seg) out.push_back({text.substr(seg, left_end - seg), -1});
    out.push_back({{}, hit->id});
    pos += hit->text.size();
    if (hit->rstrip) {
      size_t len;
      while (pos < text.size() && ws_at(text, pos, &len)) pos += len;
    }
    seg = pos;
  }
  if (seg < text.size()) out.push_back({text.substr(seg), -1});
  return out;
}

void PipelineTokenizer::encode_fragment(std::string_view text, bool first, std::vector<TokenId>& out) const {
  std::string s(text);
  for (const auto& n : cfg_.normalizers) n->apply(s, first);
  if (cfg_.pre_tokenizers.empty()) {
    cfg_.model->encode(s, out);
    return;
  }
  std::vector<std::string> pieces;
  pieces.push_back(std::move(s));
  for (const auto& p : cfg_.pre_tokenizers) p->apply(pieces, first);
  for (const auto& piece : pieces) cfg_.model->encode(piece, out);
}

std::vector<TokenId> PipelineTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  unicode::validate_utf8(text);
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special) out.insert(out.end(), cfg_.prefix.begin(), cfg_.prefix.end());
  const char* start = text.data();
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
    } else {
      encode_fragment(f.text, f.text.data() == start, out);
    }
  }
  if (add_special) out.insert(out.end(), cfg_.suffix.begin(), cfg_.suffix.end());
  return out;
}

namespace {
int parse_byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, pos)) {
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}
}  // namespace

std::string PipelineTokenizer::token_to_piece(TokenId id, bool render_special) const {
  if (id < 0 || id >= n_vocab())
    throw Error("token id " + std::to_string(id) + " out of range (vocabulary has " + std::to_string(n_vocab()) +
                " tokens)");
  if (render_special && !pieces_.empty()) return pieces_[id];
  const std::string& text = vocab_.tokens[id];
  TokenType type = vocab_.types.empty() ? TokenType::NORMAL : vocab_.types[id];
  switch (type) {
    case TokenType::CONTROL:
    case TokenType::UNKNOWN:
      if (!render_special) return std::string();
      // WordPiece joins words with spaces, [CLS] and [SEP] included.
      if (cfg_.piece_mode == PieceMode::WORDPIECE_GGUF || cfg_.piece_mode == PieceMode::WORDPIECE_HF) return " " + text;
      return text;
    case TokenType::USER_DEFINED:
      return text;
    case TokenType::BYTE: {
      int b = parse_byte_token(text);
      return b < 0 ? text : std::string(1, static_cast<char>(b));
    }
    case TokenType::NORMAL:
      break;
    default:
      return std::string();
  }
  switch (cfg_.piece_mode) {
    case PieceMode::SENTENCEPIECE: {
      if (cfg_.byte_fallback_decode) {
        int b = parse_byte_token(text);
        if (b >= 0) return std::string(1, static_cast<char>(b));
      }
      return replace_all(text, "\xE2\x96\x81", " ");
    }
    case PieceMode::BYTE_LEVEL: {
      std::string out;
      out.reserve(text.size());
      for (size_t pos = 0; pos < text.size();) {
        size_t b = pos;
        uint32_t c = unicode::next_cpt(text, pos);
        int byte = unicode::unicode_to_byte(c);
        if (byte >= 0) {
          out += static_cast<char>(byte);
        } else {
          out.append(text, b, pos - b);
        }
      }
      return out;
    }
    case PieceMode::WORDPIECE_GGUF:
      return replace_all(text, "\xE2\x96\x81", " ");
    case PieceMode::WORDPIECE_HF:
      if (text.compare(0, 2, "##") == 0) return text.substr(2);
      return " " + text;
  }
  return text;
}

std::string PipelineTokenizer::decode(const std::vector<TokenId>& ids, bool render_special) const {
  // The space the vocabulary put before the first word is dropped, from the
  // first piece that shows anything (hidden control tokens show nothing).
  std::string out;
  bool strip = cfg_.strip_first_space;
  for (TokenId id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (strip && !piece.empty()) {
      if (piece[0] == ' ') piece.erase(0, 1);
      strip = false;
    }
    out += piece;
  }
  switch (cfg_.cleanup) {
    case SpaceCleanup::NONE: break;
    case SpaceCleanup::LLAMA_CPP: out = llama_clean_spaces(out); break;
    case SpaceCleanup::HUGGING_FACE: out = hf_clean_up_tokenization(out); break;
  }
  return out;
}

}  // namespace hai::tok

namespace hai {

std::string llama_clean_spaces(std::string_view text) {
  // Each pass reads the previous pass's text and writes a new one; "drop the
  // space" means taking back the space just written before the current byte.
  auto is_space_before = [](std::string_view t, size_t i) { return i > 0 && t[i - 1] == ' '; };

  // Pass 1: " ?", " !", " .", " ,"  ->  "?", "!", ".", ",".
  std::string p1;
  p1.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (is_space_before(text, i) && (c == '?' || c == '!' || c == '.' || c == ',')) p1.pop_back();
    p1 += c;
  }

  // Pass 2: " ' "  ->  "'". The space after the apostrophe is skipped and no
  // longer counts as a space before the next byte, so " ' ' " becomes "'' ".
  std::string p2;
  p2.reserve(p1.size());
  size_t skipped = std::string::npos;  // index in p1 of the last skipped space
  for (size_t i = 0; i < p1.size(); ++i) {
    const char c = p1[i];
    const bool space_before = is_space_before(p1, i) && skipped != i - 1;
    if (c == '\'' && space_before && i + 1 < p1.size() && p1[i + 1] == ' ') {
      p2.pop_back();
      p2 += c;
      skipped = ++i;
      continue;
    }
    p2 += c;
  }

  // Pass 3: " 's", " 'm", " 're", " 've"  ->  without the space.
  std::string p3;
  p3.reserve(p2.size());
  for (size_t i = 0; i < p2.size(); ++i) {
    const char c = p2[i];
    if (c == '\'' && is_space_before(p2, i) && i + 1 < p2.size()) {
      const char x1 = p2[i + 1];
      const char x2 = i + 2 < p2.size() ? p2[i + 2] : '\0';
      const bool s_or_m = x1 == 's' || x1 == 'm';
      const bool re_or_ve = i + 2 < p2.size() && (x1 == 'r' || x1 == 'v') && x2 == 'e';
      if (s_or_m || re_or_ve) p3.pop_back();
    }
    p3 += c;
  }
  return p3;
}

std::string hf_clean_up_tokenization(std::string_view text) {
  static const std::pair<const char*, const char*> kCleanups[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string out(text);
  for (auto [from, to] : kCleanups) out = tok::replace_all(std::move(out), from, to);
  return out;
}

}  // namespace hai
