// Lexer and recursive-descent parser for the Jinja dialect of chat templates.
//
// The lexer applies Hugging Face's whitespace settings as Jinja2 does:
//   - a single trailing newline of the template is dropped,
//   - lstrip_blocks: spaces/tabs between the start of a line and a {% or {#
//     tag are removed ({%+ turns that off for one tag),
//   - trim_blocks: the first newline after a %} or #} is removed (+%} keeps it),
//   - {%- / {{- / {#- strip all whitespace before the tag, -%} / -}} / -#}
//     all whitespace after it.
// Precedence follows Jinja2's parser: if-else < or < and < not < comparisons
// and `in` < + - < ~ < * / // % < ** < unary sign < postfix, filters, tests.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/chat/jinja.h"
#include "engine/chat/utf8.h"
#include "engine/common/error.h"

namespace hai::chat::jinja {
namespace {

enum class Tok : uint8_t { Text, BlockBegin, BlockEnd, VarBegin, VarEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string s;  // text, name, string value, operator
  int64_t i = 0;
  double f = 0;
  int line = 1;
};

constexpr int kMaxNesting = 256;     // nested blocks / parentheses in the source
constexpr int kMaxExprDepth = 512;   // height of one expression tree (a+b+c+... chains included)

class Lexer {
 public:
  Lexer(std::string_view src, const std::string& name) : src_(src), name_(name) {
    if (!src_.empty() && src_.back() == '\n') src_.remove_suffix(1);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t q = find_tag(pos_);
      std::string text(src_.substr(pos_, q - pos_));
      int text_line = line_;
      count_lines(pos_, q);
      pos_ = q;
      apply_leading_strip(text);
      if (q < src_.size()) apply_trailing_strip(text, q);
      if (!text.empty()) out_.push_back({Tok::Text, std::move(text), 0, 0, text_line});
      if (q >= src_.size()) break;
      char kind = src_[q + 1];
      if (kind == '#') lex_comment();
      else if (kind == '%') lex_tag(true);
      else lex_tag(false);
    }
    out_.push_back({Tok::Eof, "", 0, 0, line_});
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw hai::Error(name_ + ":" + std::to_string(line_) + ": syntax error: " + msg);
  }

  void count_lines(size_t a, size_t b) {
    for (size_t k = a; k < b; ++k) line_ += src_[k] == '\n';
  }

  size_t find_tag(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k) {
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return src_.size();
  }

  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

  // Whitespace control from the tag before this text (-%} or trim_blocks).
  void apply_leading_strip(std::string& text) {
    if (strip_next_) {
      size_t k = 0;
      while (k < text.size() && is_space(text[k])) ++k;
      text.erase(0, k);
    } else if (trim_newline_next_ && !text.empty() && text[0] == '\n') {
      text.erase(0, 1);
    }
    strip_next_ = trim_newline_next_ = false;
  }

  // Whitespace control from the tag after this text ({%- or lstrip_blocks).
  void apply_trailing_strip(std::string& text, size_t tag) {
    char kind = src_[tag + 1];
    char mod = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
    if (mod == '-') {
      while (!text.empty() && is_space(text.back())) text.pop_back();
      return;
    }
    if (kind == '{' || mod == '+') return;
    // lstrip_blocks: only when the tag is the first thing on its line.
    size_t k = tag;
    while (k > 0 && (src_[k - 1] == ' ' || src_[k - 1] == '\t')) --k;
    if (k == 0 || src_[k - 1] == '\n') {
      size_t n = tag - k;
      text.erase(text.size() - std::min(n, text.size()));
    }
  }

  void lex_comment() {
    size_t end = src_.find("#}", pos_ + 2);
    if (end == std::string_view::npos) fail("unclosed comment {# ... #}");
    bool minus = end > pos_ + 2 && src_[end - 1] == '-';
    bool plus = end > pos_ + 2 && src_[end - 1] == '+';
    count_lines(pos_, end + 2);
    pos_ = end + 2;
    if (minus) strip_next_ = true;
    else if (!plus) trim_newline_next_ = true;
  }

  void lex_tag(bool block) {
    int open_line = line_;
    out_.push_back({block ? Tok::BlockBegin : Tok::VarBegin, "", 0, 0, line_});
    pos_ += 2;
    if (pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+')) ++pos_;
    if (block && try_raw()) return;
    int depth = 0;
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (pos_ >= src_.size()) {
        line_ = open_line;
        fail(block ? "unclosed tag {% ... %}" : "unclosed expression {{ ... }}");
      }
      std::string_view rest = src_.substr(pos_);
      if (block) {
        if (rest.starts_with("-%}") || rest.starts_with("+%}") || rest.starts_with("%}")) {
          char m = rest[0];
          pos_ += m == '%' ? 2 : 3;
          out_.push_back({Tok::BlockEnd, "", 0, 0, line_});
          if (m == '-') strip_next_ = true;
          else if (m != '+') trim_newline_next_ = true;
          return;
        }
      } else if (depth == 0 && (rest.starts_with("-}}") || rest.starts_with("}}"))) {
        pos_ += rest[0] == '-' ? 3 : 2;
        out_.push_back({Tok::VarEnd, "", 0, 0, line_});
        if (rest[0] == '-') strip_next_ = true;
        return;
      }
      char c = src_[pos_];
      if (c == '\'' || c == '"') {
        lex_string(c);
      } else if (c >= '0' && c <= '9') {
        lex_number();
      } else if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        size_t b = pos_;
        while (pos_ < src_.size() && (src_[pos_] == '_' || std::isalnum((unsigned char)src_[pos_]))) ++pos_;
        out_.push_back({Tok::Name, std::string(src_.substr(b, pos_ - b)), 0, 0, line_});
      } else {
        static const char* const ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                          "|",  ".",  ",",  ":",  "(",  ")",  "[", "]", "{", "}", "=", "<", ">"};
        bool matched = false;
        for (const char* op : ops) {
          if (rest.starts_with(op)) {
            std::string o(op);
            if (o == "{" || o == "(" || o == "[") ++depth;
            if (o == "}" || o == ")" || o == "]") --depth;
            out_.push_back({Tok::Op, o, 0, 0, line_});
            pos_ += o.size();
            matched = true;
            break;
          }
        }
        if (!matched) fail(std::string("unexpected character '") + c + "'");
      }
    }
  }

  // {% raw %}...{% endraw %}: the body is text, not parsed.
  bool try_raw() {
    size_t k = pos_;
    while (k < src_.size() && is_space(src_[k])) ++k;
    if (src_.substr(k, 3) != "raw") return false;
    k += 3;
    while (k < src_.size() && is_space(src_[k])) ++k;
    if (k < src_.size() && (src_[k] == '-' || src_[k] == '+')) ++k;
    if (src_.substr(k, 2) != "%}") return false;
    bool strip_after_open = src_[k - 1] == '-';
    out_.pop_back();  // the BlockBegin
    k += 2;
    // Find {%[-] endraw [-]%}
    size_t search = k;
    while (true) {
      size_t t = src_.find("{%", search);
      if (t == std::string_view::npos) fail("unclosed {% raw %} block");
      size_t m = t + 2;
      bool strip_before = m < src_.size() && src_[m] == '-';
      if (m < src_.size() && (src_[m] == '-' || src_[m] == '+')) ++m;
      while (m < src_.size() && is_space(src_[m])) ++m;
      if (src_.substr(m, 6) == "endraw") {
        m += 6;
        while (m < src_.size() && is_space(src_[m])) ++m;
        char mod = m < src_.size() ? src_[m] : '\0';
        if (mod == '-' || mod == '+') ++m;
        if (src_.substr(m, 2) == "%}") {
          std::string body(src_.substr(k, t - k));
          if (strip_after_open) {
            size_t a = 0;
            while (a < body.size() && is_space(body[a])) ++a;
            body.erase(0, a);
          } else if (!body.empty() && body[0] == '\n') {
            body.erase(0, 1);
          }
          if (strip_before) {
            while (!body.empty() && is_space(body.back())) body.pop_back();
          }
          out_.push_back({Tok::Text, body, 0, 0, line_});
          count_lines(pos_, m + 2);
          pos_ = m + 2;
          if (mod == '-') strip_next_ = true;
          else if (mod != '+') trim_newline_next_ = true;
          return true;
        }
      }
      search = t + 2;
    }
  }

  uint32_t read_hex(size_t n) {
    if (pos_ + n > src_.size()) fail("truncated escape sequence in string");
    uint32_t v = 0;
    for (size_t k = 0; k < n; ++k) {
      char c = src_[pos_ + k];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) fail("invalid hexadecimal escape in string");
      v = v * 16 + d;
    }
    pos_ += n;
    return v;
  }

  void lex_string(char quote) {
    int start_line = line_;
    ++pos_;
    std::string s;
    while (true) {
      if (pos_ >= src_.size()) {
        line_ = start_line;
        fail("unterminated string literal");
      }
      char c = src_[pos_++];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        s += c;
        continue;
      }
      if (pos_ >= src_.size()) continue;
      char e = src_[pos_++];
      switch (e) {
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'r': s += '\r'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'v': s += '\v'; break;
        case 'a': s += '\a'; break;
        case '0': s += '\0'; break;
        case '\\': s += '\\'; break;
        case '\'': s += '\''; break;
        case '"': s += '"'; break;
        case '\n': ++line_; break;  // line continuation
        case 'x': utf8::append(s, read_hex(2)); break;
        case 'u': utf8::append(s, read_hex(4)); break;
        case 'U': {
          uint32_t cp = read_hex(8);
          if (cp > 0x10FFFF) fail("invalid \\U escape in string");
          utf8::append(s, cp);
          break;
        }
        default:  // Python keeps unknown escapes as they are
          s += '\\';
          s += e;
      }
    }
    out_.push_back({Tok::String, std::move(s), 0, 0, start_line});
  }

  void lex_number() {
    size_t b = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && (std::isdigit((unsigned char)src_[pos_]) || src_[pos_] == '_')) ++pos_;
    };
    digits();
    bool is_float = false;
    bool after_dot = !out_.empty() && out_.back().type == Tok::Op && out_.back().s == ".";
    if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit((unsigned char)src_[pos_ + 1])) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (!after_dot && pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t k = pos_ + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit((unsigned char)src_[k])) {
        is_float = true;
        pos_ = k;
        digits();
      }
    }
    std::string text;
    for (char c : src_.substr(b, pos_ - b)) if (c != '_') text += c;
    Token t{is_float ? Tok::Float : Tok::Int, text, 0, 0, line_};
    if (is_float) {
      t.f = std::strtod(text.c_str(), nullptr);
    } else {
      errno = 0;
      t.i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) fail("integer literal out of range: " + text);
    }
    out_.push_back(std::move(t));
  }

  std::string_view src_;
  const std::string& name_;
  size_t pos_ = 0;
  int line_ = 1;
  bool strip_next_ = false;
  bool trim_newline_next_ = false;
  std::vector<Token> out_;
};

class Parser {
 public:
  Parser(std::vector<Token> toks, const std::string& name) : t_(std::move(toks)), name_(name) {}

  std::vector<NodePtr> run() {
    auto body = parse_body({});
    return body;
  }

 private:
  [[noreturn]] void fail(const std::string& msg, int line = -1) const {
    if (line < 0) line = cur().line;
    throw hai::Error(name_ + ":" + std::to_string(line) + ": syntax error: " + msg);
  }

  const Token& cur() const { return t_[p_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().s == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().s == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    ++p_;
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    ++p_;
    return true;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Text: return "text";
      case Tok::BlockBegin: return "'{%'";
      case Tok::BlockEnd: return "'%}'";
      case Tok::VarBegin: return "'{{'";
      case Tok::VarEnd: return "'}}'";
      case Tok::Name: return "'" + t.s + "'";
      case Tok::String: return "string literal";
      case Tok::Int: case Tok::Float: return "number";
      case Tok::Op: return "'" + t.s + "'";
      case Tok::Eof: return "end of template";
    }
    return "token";
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
  }
  void expect(Tok type, const char* what) {
    if (cur().type != type) fail(std::string("expected ") + what + ", got " + describe(cur()));
    ++p_;
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail("expected a name, got " + describe(cur()));
    return t_[p_++].s;
  }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& pp) : p(pp) {
      if (++p.depth_ > kMaxNesting) p.fail("template nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
    }
    ~DepthGuard() { --p.depth_; }
  };

  static NodePtr node(NodeKind k, int line) { return std::make_unique<Node>(k, line); }

  // Records the height of a finished expression node; refuses trees so deep
  // that evaluating or freeing them could exhaust the stack.
  NodePtr fin(NodePtr n) {
    int d = 0;
    for (auto& k : n->kids) if (k) d = std::max(d, k->depth);
    n->depth = d + 1;
    if (n->depth > kMaxExprDepth) fail("expression nested too deeply (more than " + std::to_string(kMaxExprDepth) + " levels)", n->line);
    return n;
  }

  // Statements until a {% tag %} whose name is in `ends` (not consumed:
  // p_ is left at the BlockBegin). With no ends, until end of input.
  std::vector<NodePtr> parse_body(std::initializer_list<const char*> ends) {
    DepthGuard g(*this);
    std::vector<NodePtr> out;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (ends.size() == 0) return out;
        std::string want;
        for (const char* e : ends) want += std::string(want.empty() ? "" : " or ") + "'" + e + "'";
        fail("unexpected end of template, expected " + want + " (block opened at line " +
             std::to_string(open_line_) + ")");
      }
      if (t.type == Tok::Text) {
        auto n = node(NodeKind::Text, t.line);
        n->str = t.s;
        out.push_back(std::move(n));
        ++p_;
      } else if (t.type == Tok::VarBegin) {
        ++p_;
        auto n = node(NodeKind::Print, t.line);
        n->kids.push_back(parse_tuple_expr());
        expect(Tok::VarEnd, "'}}'");
        out.push_back(std::move(n));
      } else if (t.type == Tok::BlockBegin) {
        const Token& name = peek();
        if (name.type != Tok::Name) {
          ++p_;
          fail("expected a tag name after '{%', got " + describe(name));
        }
        for (const char* e : ends) {
          if (name.s == e) return out;
        }
        ++p_;
        out.push_back(parse_statement());
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  // Consumes "{% name" where name must be one of the end tags just found.
  void end_tag(const char* name) {
    expect(Tok::BlockBegin, "'{%'");
    if (!accept_name(name)) fail(std::string("expected '") + name + "'");
    expect(Tok::BlockEnd, "'%}'");
  }

  NodePtr parse_statement() {
    int line = cur().line;
    std::string tag = expect_name();
    int saved_open = open_line_;
    open_line_ = line;
    NodePtr n;
    if (tag == "if") n = parse_if(line);
    else if (tag == "for") n = parse_for(line);
    else if (tag == "set") n = parse_set(line);
    else if (tag == "macro") n = parse_macro(line);
    else if (tag == "call") n = parse_call_block(line);
    else if (tag == "filter") n = parse_filter_block(line);
    else if (tag == "generation") {
      n = node(NodeKind::Block, line);
      expect(Tok::BlockEnd, "'%}'");
      n->body = parse_body({"endgeneration"});
      end_tag("endgeneration");
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside of a for loop", line);
      n = node(tag == "break" ? NodeKind::Break : NodeKind::Continue, line);
      expect(Tok::BlockEnd, "'%}'");
    } else if (tag.starts_with("end") || tag == "else" || tag == "elif") {
      fail("unexpected '" + tag + "'", line);
    } else {
      fail("unknown tag '" + tag + "'", line);
    }
    open_line_ = saved_open;
    return n;
  }

  NodePtr parse_if(int line) {
    auto n = node(NodeKind::If, line);
    n->kids.push_back(parse_expr());
    expect(Tok::BlockEnd, "'%}'");
    n->body = parse_body({"elif", "else", "endif"});
    ++p_;  // {%
    std::string t = expect_name();
    if (t == "elif") {
      n->orelse.push_back(parse_if(t_[p_ - 1].line));
      return n;  // the nested if consumed endif
    }
    if (t == "else") {
      expect(Tok::BlockEnd, "'%}'");
      n->orelse = parse_body({"endif"});
      ++p_;
      expect_name();
    }
    expect(Tok::BlockEnd, "'%}'");
    return n;
  }

  NodePtr parse_for(int line) {
    auto n = node(NodeKind::For, line);
    // Targets: a name or a tuple of names.
    do {
      if (is_op("(")) fail("parenthesised loop targets are not supported");
      n->names.push_back(expect_name());
    } while (accept_op(","));
    if (!accept_name("in")) fail("expected 'in' after the loop variable, got " + describe(cur()));
    n->kids.push_back(parse_or());
    if (accept_name("if")) {
      n->flag = true;
      n->kids.push_back(parse_expr());
    }
    if (accept_name("recursive")) fail("recursive loops are not supported", line);
    expect(Tok::BlockEnd, "'%}'");
    ++loop_depth_;
    n->body = parse_body({"else", "endfor"});
    --loop_depth_;
    ++p_;
    if (expect_name() == "else") {
      expect(Tok::BlockEnd, "'%}'");
      int saved = loop_depth_;
      loop_depth_ = 0;
      n->orelse = parse_body({"endfor"});
      loop_depth_ = saved;
      ++p_;
      expect_name();
    }
    expect(Tok::BlockEnd, "'%}'");
    return n;
  }

  NodePtr parse_assign_target() {
    int line = cur().line;
    std::string name = expect_name();
    if (is_op(".")) {
      ++p_;
      auto n = node(NodeKind::Attr, line);
      auto obj = node(NodeKind::Name, line);
      obj->str = name;
      n->kids.push_back(std::move(obj));
      n->str = expect_name();
      return n;
    }
    if (is_op(",")) {
      auto n = node(NodeKind::TupleLit, line);
      auto first = node(NodeKind::Name, line);
      first->str = name;
      n->kids.push_back(std::move(first));
      while (accept_op(",")) {
        auto e = node(NodeKind::Name, cur().line);
        e->str = expect_name();
        n->kids.push_back(std::move(e));
      }
      return n;
    }
    auto n = node(NodeKind::Name, line);
    n->str = name;
    return n;
  }

  NodePtr parse_set(int line) {
    NodePtr target = parse_assign_target();
    if (accept_op("=")) {
      auto n = node(NodeKind::Set, line);
      n->kids.push_back(std::move(target));
      n->kids.push_back(parse_tuple_expr());
      expect(Tok::BlockEnd, "'%}'");
      return n;
    }
    if (target->kind != NodeKind::Name) fail("a block set needs a single variable name", line);
    auto n = node(NodeKind::SetBlock, line);
    n->kids.push_back(std::move(target));
    // Optional filters: {% set x | trim %}
    while (accept_op("|")) n->kids.push_back(parse_filter_call(nullptr));
    expect(Tok::BlockEnd, "'%}'");
    n->body = parse_body({"endset"});
    end_tag("endset");
    return n;
  }

  // Parameter list "(a, b=expr, ...)" into names/kids (kids[i] null = no default).
  void parse_params(Node& n) {
    expect_op("(");
    while (!is_op(")")) {
      std::string p = expect_name();
      for (auto& existing : n.names) {
        if (existing == p) fail("duplicate parameter '" + p + "'");
      }
      n.names.push_back(p);
      if (accept_op("=")) n.kids.push_back(parse_expr());
      else n.kids.push_back(nullptr);
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  NodePtr parse_macro(int line) {
    auto n = node(NodeKind::Macro, line);
    n->str = expect_name();
    bool sv = seen_varargs_, sk = seen_kwargs_;
    seen_varargs_ = seen_kwargs_ = false;
    parse_params(*n);
    expect(Tok::BlockEnd, "'%}'");
    int saved_loop = loop_depth_;
    loop_depth_ = 0;
    n->body = parse_body({"endmacro"});
    loop_depth_ = saved_loop;
    end_tag_with_optional_name("endmacro");
    n->flag = seen_varargs_;
    n->flag2 = seen_kwargs_;
    seen_varargs_ = sv || seen_varargs_;
    seen_kwargs_ = sk || seen_kwargs_;
    return n;
  }

  void end_tag_with_optional_name(const char* name) {
    expect(Tok::BlockBegin, "'%}'");
    if (!accept_name(name)) fail(std::string("expected '") + name + "'");
    if (cur().type == Tok::Name) ++p_;
    expect(Tok::BlockEnd, "'%}'");
  }

  NodePtr parse_call_block(int line) {
    // {% call(params) macro(args) %}body{% endcall %}: kids[0] is the call,
    // the caller's parameters are in a Macro node kept in orelse[0].
    auto n = node(NodeKind::CallBlock, line);
    auto caller = node(NodeKind::Macro, line);
    caller->str = "caller";
    bool sv = seen_varargs_, sk = seen_kwargs_;
    seen_varargs_ = seen_kwargs_ = false;
    if (is_op("(")) parse_params(*caller);
    NodePtr call = parse_expr();
    if (call->kind != NodeKind::Call) fail("expected a macro call after 'call'", line);
    n->kids.push_back(std::move(call));
    expect(Tok::BlockEnd, "'%}'");
    caller->body = parse_body({"endcall"});
    end_tag("endcall");
    caller->flag = seen_varargs_;
    caller->flag2 = seen_kwargs_;
    seen_varargs_ = sv;
    seen_kwargs_ = sk;
    n->orelse.push_back(std::move(caller));
    return n;
  }

  NodePtr parse_filter_block(int line) {
    auto n = node(NodeKind::FilterBlock, line);
    do {
      n->kids.push_back(parse_filter_call(nullptr));
    } while (accept_op("|"));
    expect(Tok::BlockEnd, "'%}'");
    n->body = parse_body({"endfilter"});
    end_tag("endfilter");
    return n;
  }

  // ---- expressions ----

  // An expression, or a tuple when followed by commas ({{ a, b }}, set x = 1, 2).
  NodePtr parse_tuple_expr() {
    int line = cur().line;
    NodePtr first = parse_expr();
    if (!is_op(",")) return first;
    auto t = node(NodeKind::TupleLit, line);
    t->kids.push_back(std::move(first));
    while (accept_op(",")) {
      if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")")) break;
      t->kids.push_back(parse_expr());
    }
    return fin(std::move(t));
  }

  NodePtr parse_expr() {
    DepthGuard g(*this);
    int line = cur().line;
    NodePtr a = parse_or();
    while (is_name("if")) {
      ++p_;
      auto n = node(NodeKind::Cond, line);
      NodePtr test = parse_or();
      NodePtr other = accept_name("else") ? parse_expr() : nullptr;
      n->kids.push_back(std::move(test));
      n->kids.push_back(std::move(a));
      n->kids.push_back(std::move(other));
      a = fin(std::move(n));
    }
    return a;
  }

  NodePtr binary(const std::string& op, NodePtr a, NodePtr b, int line) {
    auto n = node(NodeKind::Binary, line);
    n->str = op;
    n->kids.push_back(std::move(a));
    n->kids.push_back(std::move(b));
    return fin(std::move(n));
  }

  NodePtr parse_or() {
    NodePtr a = parse_and();
    while (is_name("or")) {
      int line = cur().line;
      ++p_;
      a = binary("or", std::move(a), parse_and(), line);
    }
    return a;
  }

  NodePtr parse_and() {
    NodePtr a = parse_not();
    while (is_name("and")) {
      int line = cur().line;
      ++p_;
      a = binary("and", std::move(a), parse_not(), line);
    }
    return a;
  }

  NodePtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(*this);
      auto n = node(NodeKind::Unary, cur().line);
      ++p_;
      n->str = "not";
      n->kids.push_back(parse_not());
      return fin(std::move(n));
    }
    return parse_compare();
  }

  NodePtr parse_compare() {
    NodePtr a = parse_math1();
    while (true) {
      int line = cur().line;
      std::string op;
      if (cur().type == Tok::Op && (cur().s == "==" || cur().s == "!=" || cur().s == "<" || cur().s == "<=" ||
                                    cur().s == ">" || cur().s == ">=")) {
        op = cur().s;
        ++p_;
      } else if (is_name("in")) {
        op = "in";
        ++p_;
      } else if (is_name("not") && peek().type == Tok::Name && peek().s == "in") {
        op = "not in";
        p_ += 2;
      } else {
        return a;
      }
      a = binary(op, std::move(a), parse_math1(), line);
    }
  }

  NodePtr parse_math1() {
    NodePtr a = parse_concat();
    while (is_op("+") || is_op("-")) {
      int line = cur().line;
      std::string op = t_[p_++].s;
      a = binary(op, std::move(a), parse_concat(), line);
    }
    return a;
  }

  NodePtr parse_concat() {
    NodePtr a = parse_math2();
    while (is_op("~")) {
      int line = cur().line;
      ++p_;
      a = binary("~", std::move(a), parse_math2(), line);
    }
    return a;
  }

  NodePtr parse_math2() {
    NodePtr a = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      int line = cur().line;
      std::string op = t_[p_++].s;
      a = binary(op, std::move(a), parse_pow(), line);
    }
    return a;
  }

  NodePtr parse_pow() {
    NodePtr a = parse_unary(true);
    while (is_op("**")) {
      int line = cur().line;
      ++p_;
      a = binary("**", std::move(a), parse_unary(true), line);
    }
    return a;
  }

  NodePtr parse_unary(bool with_filter) {
    DepthGuard g(*this);
    int line = cur().line;
    NodePtr n;
    if (is_op("-") || is_op("+")) {
      n = node(NodeKind::Unary, line);
      n->str = t_[p_++].s;
      n->kids.push_back(parse_unary(false));
      n = fin(std::move(n));
    } else {
      n = parse_postfix(parse_primary());
    }
    if (with_filter) n = parse_filter_expr(std::move(n));
    return n;
  }

  NodePtr parse_primary() {
    const Token& t = cur();
    int line = t.line;
    switch (t.type) {
      case Tok::Name: {
        ++p_;
        if (t.s == "true" || t.s == "True" || t.s == "false" || t.s == "False") {
          auto n = node(NodeKind::Const, line);
          n->value = Value::boolean(t.s[0] == 't' || t.s[0] == 'T');
          return n;
        }
        if (t.s == "none" || t.s == "None") {
          auto n = node(NodeKind::Const, line);
          n->value = Value::none();
          return n;
        }
        if (t.s == "varargs") seen_varargs_ = true;
        if (t.s == "kwargs") seen_kwargs_ = true;
        auto n = node(NodeKind::Name, line);
        n->str = t.s;
        return n;
      }
      case Tok::String: {
        std::string s;
        while (cur().type == Tok::String) s += t_[p_++].s;  // adjacent literals concatenate
        auto n = node(NodeKind::Const, line);
        n->value = Value::string(std::move(s));
        return n;
      }
      case Tok::Int: {
        ++p_;
        auto n = node(NodeKind::Const, line);
        n->value = Value::integer(t.i);
        return n;
      }
      case Tok::Float: {
        ++p_;
        auto n = node(NodeKind::Const, line);
        n->value = Value::number(t.f);
        return n;
      }
      case Tok::Op:
        if (t.s == "(") {
          ++p_;
          if (accept_op(")")) return node(NodeKind::TupleLit, line);
          NodePtr first = parse_expr();
          if (accept_op(")")) return first;
          auto tup = node(NodeKind::TupleLit, line);
          tup->kids.push_back(std::move(first));
          while (accept_op(",")) {
            if (is_op(")")) break;
            tup->kids.push_back(parse_expr());
          }
          expect_op(")");
          return fin(std::move(tup));
        }
        if (t.s == "[") {
          ++p_;
          auto n = node(NodeKind::ListLit, line);
          while (!is_op("]")) {
            n->kids.push_back(parse_expr());
            if (!accept_op(",")) break;
          }
          expect_op("]");
          return fin(std::move(n));
        }
        if (t.s == "{") {
          ++p_;
          auto n = node(NodeKind::DictLit, line);
          while (!is_op("}")) {
            n->kids.push_back(parse_expr());
            expect_op(":");
            n->kids.push_back(parse_expr());
            if (!accept_op(",")) break;
          }
          expect_op("}");
          return fin(std::move(n));
        }
        break;
      default:
        break;
    }
    fail("unexpected " + describe(t) + " in expression");
  }

  NodePtr parse_postfix(NodePtr n) {
    while (true) {
      int line = cur().line;
      if (accept_op(".")) {
        auto a = node(NodeKind::Attr, line);
        if (cur().type == Tok::Name) {
          a->str = t_[p_++].s;
        } else if (cur().type == Tok::Int) {
          // x.0 is x[0]
          auto item = node(NodeKind::Item, line);
          auto k = node(NodeKind::Const, line);
          k->value = Value::integer(t_[p_++].i);
          item->kids.push_back(std::move(n));
          item->kids.push_back(std::move(k));
          n = fin(std::move(item));
          continue;
        } else {
          fail("expected an attribute name after '.', got " + describe(cur()));
        }
        a->kids.push_back(std::move(n));
        n = fin(std::move(a));
      } else if (accept_op("[")) {
        n = parse_subscript(std::move(n), line);
      } else if (is_op("(")) {
        n = parse_call(std::move(n));
      } else {
        return n;
      }
    }
  }

  NodePtr parse_subscript(NodePtr obj, int line) {
    NodePtr parts[3];
    bool slice = false;
    if (!is_op(":")) parts[0] = parse_expr();
    if (accept_op(":")) {
      slice = true;
      if (!is_op(":") && !is_op("]")) parts[1] = parse_expr();
      if (accept_op(":")) {
        if (!is_op("]")) parts[2] = parse_expr();
      }
    }
    expect_op("]");
    if (!slice) {
      auto n = node(NodeKind::Item, line);
      n->kids.push_back(std::move(obj));
      n->kids.push_back(std::move(parts[0]));
      return fin(std::move(n));
    }
    auto n = node(NodeKind::Slice, line);
    n->kids.push_back(std::move(obj));
    for (auto& p : parts) n->kids.push_back(std::move(p));
    return fin(std::move(n));
  }

  // Arguments "(a, b, k=v)" appended to n.kids / n.names.
  void parse_args(Node& n) {
    expect_op("(");
    bool kw_seen = false;
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail("argument unpacking (* / **) is not supported");
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().s == "=") {
        std::string k = t_[p_].s;
        p_ += 2;
        n.names.push_back(k);
        n.kids.push_back(parse_expr());
        kw_seen = true;
      } else {
        if (kw_seen) fail("positional argument after keyword argument");
        n.names.push_back("");
        n.kids.push_back(parse_expr());
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  NodePtr parse_call(NodePtr callee) {
    auto n = node(NodeKind::Call, cur().line);
    n->kids.push_back(std::move(callee));
    n->names.push_back("");  // parallel slot for the callee
    parse_args(*n);
    return fin(std::move(n));
  }

  // A filter application "name(args)" on `operand` (nullptr for filter blocks).
  NodePtr parse_filter_call(NodePtr operand) {
    int line = cur().line;
    auto n = node(NodeKind::Filter, line);
    n->str = expect_name();
    if (!is_known_filter(n->str)) fail("no filter named '" + n->str + "'", line);
    n->kids.push_back(std::move(operand));
    n->names.push_back("");
    if (is_op("(")) parse_args(*n);
    return fin(std::move(n));
  }

  NodePtr parse_filter_expr(NodePtr n) {
    while (true) {
      if (accept_op("|")) {
        n = parse_filter_call(std::move(n));
      } else if (is_name("is")) {
        int line = cur().line;
        ++p_;
        auto t = node(NodeKind::Test, line);
        t->flag = accept_name("not");
        t->str = expect_name();
        if (!is_known_test(t->str)) fail("no test named '" + t->str + "'", line);
        t->kids.push_back(std::move(n));
        t->names.push_back("");
        if (is_op("(")) {
          parse_args(*t);
        } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                    cur().type == Tok::Float || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") && !is_name("in") &&
                   !is_name("is") && !is_name("not")) {
          t->names.push_back("");
          t->kids.push_back(parse_postfix(parse_primary()));
        }
        n = fin(std::move(t));
      } else {
        return n;
      }
    }
  }

  std::vector<Token> t_;
  const std::string& name_;
  size_t p_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  int open_line_ = 1;
  bool seen_varargs_ = false;
  bool seen_kwargs_ = false;
};

}  // namespace

std::vector<NodePtr> parse(std::string_view source, const std::string& name) {
  Lexer lexer(source, name);
  Parser parser(lexer.run(), name);
  return parser.run();
}

}  // namespace hai::chat::jinja
