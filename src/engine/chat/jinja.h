// Internal interface of the Jinja interpreter behind chat::Template: the
// run-time value model, the syntax tree, the parser and the evaluator.
// Users include "engine/chat/template.h" instead.
//
// The dialect is the one Hugging Face renders chat templates with (Jinja2
// with trim_blocks, lstrip_blocks and the loop-controls extension). Where
// Python's Jinja2 and @huggingface/jinja (the renderer that transformers.js
// and many servers use) disagree on how a value prints, we follow
// @huggingface/jinja, since prompts must match what the reference renders:
//   - lists and dicts print as JSON ({"a": 1}, not {'a': 1}),
//   - true/false print lower-case, a bare {{ none }} prints nothing,
//   - tojson keeps non-ASCII characters and uses ", " / ": " separators.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hai::chat::jinja {

struct Value;
struct Node;
class Interpreter;

using List = std::vector<Value>;

// A dict keeps insertion order (tojson and items() print in that order).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(const std::string& key, Value v);
};

// Arguments of a call: positional first, then keyword arguments in order.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* kwarg(std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Value(Interpreter&, Args&, int line)> fn;
};

struct Value {
  enum class Type : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

  Type type = Type::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;
  std::shared_ptr<List> list;       // List
  std::shared_ptr<Dict> dict;       // Dict and Namespace (shared: namespaces are mutable)
  std::shared_ptr<Callable> fn;     // Callable

  static Value undefined() { return Value(); }
  static Value none() { Value v; v.type = Type::None; return v; }
  static Value boolean(bool x) { Value v; v.type = Type::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.type = Type::Int; v.i = x; return v; }
  static Value number(double x) { Value v; v.type = Type::Float; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.type = Type::String; v.s = std::move(x); return v; }
  static Value make_list(List items = {});
  static Value make_dict(Dict d = {});
  static Value make_namespace(Dict d = {});
  static Value callable(std::string name, std::function<Value(Interpreter&, Args&, int)> fn);
  // Throws hai::Error for JSON nested deeper than 512 levels.
  static Value from_json(const nlohmann::ordered_json& j, int depth = 0);

  bool is_undefined() const { return type == Type::Undefined; }
  bool is_none() const { return type == Type::None; }
  bool is_string() const { return type == Type::String; }
  bool is_int() const { return type == Type::Int; }
  bool is_number() const { return type == Type::Int || type == Type::Float; }
  bool is_list() const { return type == Type::List; }
  bool is_dict() const { return type == Type::Dict; }
  bool is_mapping_like() const { return type == Type::Dict || type == Type::Namespace; }

  bool truthy() const;
  double as_double() const { return type == Type::Float ? f : type == Type::Bool ? (b ? 1 : 0) : double(i); }
  const char* type_name() const;
};

// Text of a value as {{ }} prints it (undefined and none print nothing).
std::string to_output(const Value& v);
// Text of a value as str() would give it (none -> "None", true -> "true").
std::string to_str(const Value& v);
// JSON as the tojson filter writes it. indent < 0: one line.
struct JsonStyle {
  int indent = -1;
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
};
std::string to_json(const Value& v, const JsonStyle& style, int line);
bool values_equal(const Value& a, const Value& b);
// Python's ordering (numbers, strings by code point, lists element-wise):
// <0, 0 or >0; `ok` is false for values that have no order between them.
int compare_values(const Value& a, const Value& b, bool case_sensitive, bool& ok);
// True when `v` is, or (transitively) holds, the list/dict object `target`.
// Used to refuse self-containing values, which would be reference cycles.
bool holds_container(const Value& v, const void* target);

// ---- syntax tree ---------------------------------------------------------

enum class NodeKind : uint8_t {
  // expressions
  Const, Name, ListLit, TupleLit, DictLit, Attr, Item, Slice, Unary, Binary, Cond, Call, Filter, Test,
  // statements
  Text, Print, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue, Block,
};

using NodePtr = std::unique_ptr<Node>;

struct Node {
  NodeKind kind;
  int line = 0;
  std::string str;                  // name, operator, attribute, filter/test name, text
  Value value;                      // Const
  std::vector<NodePtr> kids;        // operands / arguments (nullptr marks an omitted slice part)
  std::vector<std::string> names;   // keyword names parallel to args ("" = positional), targets, parameters
  std::vector<NodePtr> body;        // statements of a block
  std::vector<NodePtr> orelse;      // else branch (if / for)
  bool flag = false;                // Test: negated; Macro: uses varargs; For: has condition
  bool flag2 = false;               // Macro: uses kwargs
  int depth = 1;                    // height of the expression tree below (bounded by the parser)
  Node(NodeKind k, int l) : kind(k), line(l) {}
};

// Parses a template into a list of statements. Throws hai::Error
// "NAME:LINE: message" on a syntax error, an unknown filter or test.
std::vector<NodePtr> parse(std::string_view source, const std::string& name);

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

// ---- evaluation ------------------------------------------------------------

struct Limits {
  int max_depth = 200;                  // nested macro calls / expression depth
  uint64_t max_steps = 50'000'000;      // statements + loop iterations
  size_t max_output = 64u << 20;        // bytes of output (and of any string built)
};

class Interpreter {
 public:
  Interpreter(std::string name, Limits limits, int64_t now_unix);

  // Renders `program` with the given globals (HF's context).
  std::string render(const std::vector<NodePtr>& program, const Dict& globals);

  // Used by builtins.
  [[noreturn]] void fail(int line, const std::string& msg) const;
  Value call(const Value& fn, Args& args, int line);
  int64_t now() const { return now_; }

  struct Scope;

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec_block(const std::vector<NodePtr>& stmts, std::string& out);
  Flow exec(const Node& n, std::string& out);
  void exec_for(const Node& n, std::string& out);
  void assign(const Node& target, const Value& v, int line);
  Value eval(const Node& n);
  Value eval_binary(const Node& n);
  Value eval_call(const Node& n);
  void eval_args(const Node& n, size_t first, Args& args);
  Value apply_filter(const std::string& name, Value operand, Args& args, int line);
  bool apply_test(const std::string& name, const Value& operand, Args& args, int line);
  Value get_attr(const Value& obj, const std::string& name, int line);
  Value get_item(const Value& obj, const Value& key, int line);
  Value call_method(const Value& obj, const std::string& name, Args& args, int line, bool* found);
  Value make_macro(const Node& n);
  std::string py_format(const std::string& fmt, const List& args, int line);
  void step(int line);
  void check_size(size_t n, int line) const;

  std::string name_;
  Limits limits_;
  int64_t now_;
  uint64_t steps_ = 0;
  int depth_ = 0;   // nested macro calls
  int nest_ = 0;    // nested exec/eval frames (bounds the C++ stack)
  std::shared_ptr<Scope> scope_;
  // Scopes captured by macros. A macro stored in the scope it closes over is
  // a reference cycle; render() empties these scopes when it ends.
  std::vector<std::shared_ptr<Scope>> closures_;
};

}  // namespace hai::chat::jinja
