// The matcher: a pushdown automaton over the byte-level rules (rules.h),
// made fast by two caches.
//
// A parse position is a stack of "what to match next" positions. Stacks are
// hash-consed into a tree of nodes: node = (element position, parent node),
// node 0 being the empty stack (the sentence is complete). Pushing a rule
// reference whose caller has nothing left after it reuses the caller's
// parent (tail calls), so right recursion and repetition do not grow the
// stacks. The set of stacks alive after some bytes is a State; States are
// interned, and the transition State x byte -> State is computed once and
// kept (a lazily built DFA over the pushdown automaton). For the stacks of
// JSON output the number of distinct States stays small.
//
// mask_logits walks a trie of the vocabulary's token bytes (built once per
// tokenizer and shared): every trie node is one table lookup, and a subtree
// is skipped as soon as its prefix is rejected, so tokens that share a
// prefix are checked once. The resulting allowed-token bitmap is cached per
// State, so a State that comes back (inside a long string, say) costs only
// the copy of the mask.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "engine/common/error.h"
#include "engine/grammar/grammar.h"
#include "engine/grammar/rules.h"

namespace hai::grammar {

// ---------------------------------------------------------------- token table

namespace {

// The bytes of every token, how it may be used, and a trie over the bytes
// laid out in preorder (node i's subtree is [i, subtree_end[i])).
struct TokenTable {
  enum Use : uint8_t { TEXT, EOG, NEVER };
  std::vector<Use> use;
  std::vector<uint32_t> piece_off;  // n_vocab + 1 offsets into piece_bytes
  std::string piece_bytes;
  std::vector<int32_t> eog;

  std::vector<uint8_t> byte;
  std::vector<uint16_t> depth;  // 1 for children of the (implicit) root
  std::vector<uint32_t> subtree_end;
  std::vector<uint32_t> tok_off;  // nodes + 1 offsets into toks: tokens ending at the node
  std::vector<int32_t> toks;
  uint16_t max_depth = 0;

  std::string_view piece(int32_t id) const {
    return std::string_view(piece_bytes).substr(piece_off[id], piece_off[id + 1] - piece_off[id]);
  }
};

std::shared_ptr<const TokenTable> build_table(const Tokenizer& tok) {
  auto t = std::make_shared<TokenTable>();
  const int32_t n = tok.n_vocab();
  const Vocab& v = tok.vocab();
  t->use.resize(static_cast<size_t>(n));
  t->piece_off.push_back(0);
  for (int32_t id = 0; id < n; ++id) {
    const TokenType type = v.types.empty() ? TokenType::NORMAL : v.types[id];
    std::string piece;
    if (tok.is_eog(id)) {
      t->use[id] = TokenTable::EOG;
      t->eog.push_back(id);
    } else if (type == TokenType::CONTROL || type == TokenType::UNKNOWN || type == TokenType::UNUSED) {
      t->use[id] = TokenTable::NEVER;
    } else {
      piece = tok.token_to_piece(id, /*render_special=*/false);
      t->use[id] = piece.empty() ? TokenTable::NEVER : TokenTable::TEXT;
    }
    t->piece_bytes += piece;
    t->piece_off.push_back(static_cast<uint32_t>(t->piece_bytes.size()));
  }

  std::vector<int32_t> order;
  for (int32_t id = 0; id < n; ++id)
    if (t->use[id] == TokenTable::TEXT) order.push_back(id);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const auto pa = t->piece(a), pb = t->piece(b);
    return pa != pb ? pa < pb : a < b;
  });
  // Sorted strings give the trie in preorder: each string shares a prefix
  // with the previous one and appends new nodes for the rest.
  std::vector<uint32_t> path;  // node index at each depth of the previous string
  std::string_view prev;
  for (int32_t id : order) {
    const std::string_view p = t->piece(id);
    if (p.size() > 65535) throw Error("token " + std::to_string(id) + " is longer than 65535 bytes");
    size_t common = 0;
    while (common < p.size() && common < prev.size() && p[common] == prev[common]) ++common;
    while (path.size() > common) {
      t->subtree_end[path.back()] = static_cast<uint32_t>(t->byte.size());
      path.pop_back();
    }
    for (size_t k = common; k < p.size(); ++k) {
      path.push_back(static_cast<uint32_t>(t->byte.size()));
      t->byte.push_back(static_cast<uint8_t>(p[k]));
      t->depth.push_back(static_cast<uint16_t>(k + 1));
      t->subtree_end.push_back(0);
      t->tok_off.push_back(static_cast<uint32_t>(t->toks.size()));
    }
    t->toks.push_back(id);  // ends at path.back(), the last node created or the same string again
    t->max_depth = std::max<uint16_t>(t->max_depth, static_cast<uint16_t>(p.size()));
    prev = p;
  }
  for (uint32_t node : path) t->subtree_end[node] = static_cast<uint32_t>(t->byte.size());
  t->tok_off.push_back(static_cast<uint32_t>(t->toks.size()));
  return t;
}

// One table per tokenizer, shared by all matchers while any is alive. The
// key checks more than the address, in case a tokenizer is freed and another
// is made at the same place.
std::shared_ptr<const TokenTable> token_table(const Tokenizer& tok) {
  struct Entry {
    const Tokenizer* ptr;
    int32_t n_vocab;
    std::string fingerprint;
    std::weak_ptr<const TokenTable> table;
  };
  static std::mutex mu;
  static std::vector<Entry> cache;
  const Vocab& v = tok.vocab();
  std::string fp;
  for (int32_t i = 0; i < tok.n_vocab(); i += std::max(1, tok.n_vocab() / 64)) fp += v.tokens[i] + '\0';
  for (int32_t e : v.eog) fp += std::to_string(e) + ',';
  std::lock_guard<std::mutex> lock(mu);
  std::erase_if(cache, [](const Entry& e) { return e.table.expired(); });
  for (const Entry& e : cache)
    if (e.ptr == &tok && e.n_vocab == tok.n_vocab() && e.fingerprint == fp)
      if (auto t = e.table.lock()) return t;
  auto t = build_table(tok);
  cache.push_back({&tok, tok.n_vocab(), fp, t});
  return t;
}

struct VecHash {
  size_t operator()(const std::vector<int32_t>& v) const {
    uint64_t h = 1469598103934665603ull;
    for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

constexpr int32_t kDead = 0;           // the State with no stacks
constexpr int32_t kEmptyStack = 0;     // node 0: nothing left to match
constexpr int32_t kUnknown = -1;       // transition not computed yet
constexpr size_t kMaxStates = 20000;   // then the DFA cache starts over
constexpr size_t kMaxMasks = 32;       // cached allowed-token bitmaps

}  // namespace

// ---------------------------------------------------------------- matcher

struct Matcher::State {
  std::shared_ptr<const Grammar> grammar;
  const Rules* r = nullptr;
  std::shared_ptr<const TokenTable> table;
  int32_t n_vocab = 0;

  // Stack nodes: (element position, parent); node 0 is the empty stack.
  std::vector<std::pair<uint32_t, int32_t>> nodes;
  std::unordered_map<uint64_t, int32_t> node_ids;
  std::vector<uint32_t> visit_mark;
  uint32_t visit_stamp = 0;

  // DFA states: sorted sets of stack nodes. State 0 is dead.
  std::vector<std::vector<int32_t>> sets;
  std::unordered_map<std::vector<int32_t>, int32_t, VecHash> set_ids;
  std::vector<int32_t> trans;  // state * 256 + byte
  int32_t cur = kDead;
  bool ended = false;  // an end-of-generation token was accepted

  // Allowed-token bitmaps by state (FIFO of kMaxMasks).
  std::vector<std::pair<int32_t, std::vector<uint64_t>>> masks;
  std::vector<int32_t> depth_state;  // scratch for the trie walk

  int32_t node(uint32_t pos, int32_t parent) {
    if (r->elems[pos].kind == Elem::END) return parent;
    const uint64_t key = (uint64_t{pos} << 32) | static_cast<uint32_t>(parent);
    auto [it, fresh] = node_ids.emplace(key, static_cast<int32_t>(nodes.size()));
    if (fresh) nodes.push_back({pos, parent});
    return it->second;
  }

  // Adds to `out` the stacks whose top is a byte set (or the empty stack)
  // reachable from `n` by expanding rule references.
  void closure(int32_t n, std::vector<int32_t>& out) {
    if (static_cast<size_t>(n) >= visit_mark.size()) visit_mark.resize(nodes.size() * 2 + 16, 0);
    if (visit_mark[n] == visit_stamp) return;
    visit_mark[n] = visit_stamp;
    if (n == kEmptyStack) {
      out.push_back(n);
      return;
    }
    const auto [pos, parent] = nodes[n];
    const Elem e = r->elems[pos];
    if (e.kind == Elem::BYTES) {
      out.push_back(n);
      return;
    }
    const int32_t ret = node(pos + 1, parent);
    for (uint32_t start : r->alts[e.arg]) closure(node(start, ret), out);
  }

  void new_visit() {
    if (++visit_stamp == 0) {
      std::fill(visit_mark.begin(), visit_mark.end(), 0);
      visit_stamp = 1;
    }
  }

  int32_t intern(std::vector<int32_t> set) {
    std::sort(set.begin(), set.end());
    set.erase(std::unique(set.begin(), set.end()), set.end());
    auto it = set_ids.find(set);
    if (it != set_ids.end()) return it->second;
    const int32_t id = static_cast<int32_t>(sets.size());
    sets.push_back(set);
    set_ids.emplace(std::move(set), id);
    trans.resize(trans.size() + 256, kUnknown);
    return id;
  }

  void reset_states(const std::vector<int32_t>& keep) {
    sets.clear();
    set_ids.clear();
    trans.clear();
    masks.clear();
    intern({});  // dead
    cur = intern(keep);
  }

  int32_t step(int32_t s, uint8_t b) {
    int32_t& t = trans[static_cast<size_t>(s) * 256 + b];
    if (t != kUnknown) return t;
    std::vector<int32_t> next;
    new_visit();
    for (int32_t n : sets[s]) {
      if (n == kEmptyStack) continue;
      const auto [pos, parent] = nodes[n];
      if (r->sets[r->elems[pos].arg].has(b)) closure(node(pos + 1, parent), next);
    }
    const int32_t id = next.empty() ? kDead : intern(std::move(next));
    trans[static_cast<size_t>(s) * 256 + b] = id;  // `t` may dangle after intern grew trans
    return id;
  }

  bool complete(int32_t s) const { return !sets[s].empty() && sets[s][0] == kEmptyStack; }
  bool finished(int32_t s) const { return sets[s].size() == 1 && sets[s][0] == kEmptyStack; }

  int32_t walk(int32_t s, std::string_view bytes) {
    for (char c : bytes) {
      s = step(s, static_cast<uint8_t>(c));
      if (s == kDead) return kDead;
    }
    return s;
  }

  const std::vector<uint64_t>& allowed_bits() {
    for (const auto& [s, bits] : masks)
      if (s == cur) return bits;
    const TokenTable& t = *table;
    std::vector<uint64_t> bits((static_cast<size_t>(n_vocab) + 63) / 64, 0);
    auto set_bit = [&](int32_t id) { bits[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63); };
    if (!ended) {
      depth_state.assign(t.max_depth + 1u, kDead);
      depth_state[0] = cur;
      const uint32_t n_nodes = static_cast<uint32_t>(t.byte.size());
      for (uint32_t i = 0; i < n_nodes;) {
        const int32_t s = step(depth_state[t.depth[i] - 1], t.byte[i]);
        if (s == kDead) {
          i = t.subtree_end[i];
          continue;
        }
        depth_state[t.depth[i]] = s;
        for (uint32_t k = t.tok_off[i]; k < t.tok_off[i + 1]; ++k) set_bit(t.toks[k]);
        ++i;
      }
      if (complete(cur))
        for (int32_t e : t.eog) set_bit(e);
    } else {
      for (int32_t e : t.eog) set_bit(e);
    }
    if (masks.size() >= kMaxMasks) masks.erase(masks.begin());
    masks.emplace_back(cur, std::move(bits));
    return masks.back().second;
  }
};

Matcher::Matcher(std::shared_ptr<const Grammar> grammar, const Tokenizer& tokenizer) : s_(std::make_unique<State>()) {
  if (!grammar) throw Error("grammar matcher: no grammar");
  State& s = *s_;
  s.grammar = std::move(grammar);
  s.r = &s.grammar->rules();
  s.table = token_table(tokenizer);
  s.n_vocab = tokenizer.n_vocab();
  s.nodes.push_back({0, -1});  // the empty stack
  std::vector<int32_t> start;
  s.new_visit();
  for (uint32_t alt : s.r->alts[s.r->root]) s.closure(s.node(alt, kEmptyStack), start);
  s.reset_states(start);
}

Matcher::~Matcher() = default;
Matcher::Matcher(Matcher&&) noexcept = default;
Matcher& Matcher::operator=(Matcher&&) noexcept = default;

void Matcher::mask_logits(float* logits) const {
  const std::vector<uint64_t>& bits = s_->allowed_bits();
  const float ninf = -std::numeric_limits<float>::infinity();
  const int32_t n = s_->n_vocab;
  for (int32_t w = 0; w * 64 < n; ++w) {
    const uint64_t word = bits[static_cast<size_t>(w)];
    const int32_t end = std::min(n, w * 64 + 64);
    if (word == ~uint64_t{0}) continue;
    for (int32_t i = w * 64; i < end; ++i)
      if (!((word >> (i & 63)) & 1)) logits[i] = ninf;
  }
}

bool Matcher::allows(int32_t token) const {
  State& s = *s_;
  if (token < 0 || token >= s.n_vocab) return false;
  switch (s.table->use[token]) {
    case TokenTable::NEVER:
      return false;
    case TokenTable::EOG:
      return s.ended || s.complete(s.cur);
    case TokenTable::TEXT:
      return !s.ended && s.walk(s.cur, s.table->piece(token)) != kDead;
  }
  return false;
}

void Matcher::accept(int32_t token) {
  State& s = *s_;
  if (token < 0 || token >= s.n_vocab)
    throw Error("grammar: token id " + std::to_string(token) + " out of range (vocabulary has " +
                std::to_string(s.n_vocab) + " tokens)");
  if (!allows(token)) {
    std::string what = s.table->use[token] == TokenTable::EOG    ? "end-of-generation token "
                       : s.table->use[token] == TokenTable::NEVER ? "special token "
                                                                  : "token ";
    throw Error("grammar: " + what + std::to_string(token) + " is not allowed here" +
                (s.ended ? " (generation already ended)" : ""));
  }
  if (s.table->use[token] == TokenTable::EOG) {
    s.ended = true;
    return;
  }
  const int32_t next = s.walk(s.cur, s.table->piece(token));
  s.cur = next;
  if (s.sets.size() > kMaxStates) s.reset_states(std::vector<int32_t>(s.sets[next]));
}

bool Matcher::is_complete() const { return s_->ended || s_->complete(s_->cur); }

bool Matcher::is_finished() const { return s_->ended || s_->finished(s_->cur); }

}  // namespace hai::grammar
