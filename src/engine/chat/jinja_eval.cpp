// The evaluator: walks the syntax tree with a chain of scopes and appends to
// one output string. Statements return a Flow so that {% break %} and
// {% continue %} unwind to their loop without exceptions.
//
// Scoping follows Jinja2: a for loop and a macro call open a scope (a {% set %}
// inside them does not leak out, which is why templates use namespace()),
// if/filter/generation blocks do not. Macros close over the scope they were
// defined in.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <unordered_map>

#include "engine/chat/jinja.h"
#include "engine/chat/utf8.h"
#include "engine/common/error.h"

namespace hai::chat::jinja {

struct Interpreter::Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;

  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};

namespace {

using T = Value::Type;

// Filters and tests the parser accepts; the evaluator implements each one.
const char* const kFilters[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first",
    "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
    "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum",
    "title", "tojson", "trim", "unique", "upper", "wordcount"};
const char* const kTests[] = {"boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even",
                              "false", "float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le",
                              "lessthan", "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas",
                              "sequence", "string", "true", "undefined", "upper"};

int64_t to_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

// Python slice semantics for a sequence of length n.
std::vector<int64_t> slice_indices(int64_t n, const Value* start, const Value* stop, const Value* step) {
  int64_t st = step ? step->i : 1;
  std::vector<int64_t> out;
  if (st > 0) {
    int64_t a = start ? start->i : 0, b = stop ? stop->i : n;
    a = a < 0 ? std::max<int64_t>(a + n, 0) : std::min(a, n);
    b = b < 0 ? std::max<int64_t>(b + n, 0) : std::min(b, n);
    for (int64_t k = a; k < b; k += st) out.push_back(k);
  } else {
    int64_t a = start ? start->i : n - 1, b = stop ? stop->i : -1;
    bool b_none = !stop;
    a = a < 0 ? std::max<int64_t>(a + n, -1) : std::min(a, n - 1);
    if (!b_none) b = b < 0 ? std::max<int64_t>(b + n, -1) : std::min(b, n - 1);
    for (int64_t k = a; k > b; k += st) out.push_back(k);
  }
  return out;
}

}  // namespace

bool is_known_filter(std::string_view name) {
  for (const char* f : kFilters) if (name == f) return true;
  return false;
}

bool is_known_test(std::string_view name) {
  for (const char* t : kTests) if (name == t) return true;
  return false;
}

Interpreter::Interpreter(std::string name, Limits limits, int64_t now_unix)
    : name_(std::move(name)), limits_(limits), now_(now_unix) {}

void Interpreter::fail(int line, const std::string& msg) const {
  throw hai::Error(name_ + ":" + std::to_string(line) + ": " + msg);
}

void Interpreter::step(int line) {
  if (++steps_ > limits_.max_steps) {
    fail(line, "template exceeded the limit of " + std::to_string(limits_.max_steps) + " steps (endless loop?)");
  }
}

void Interpreter::check_size(size_t n, int line) const {
  if (n > limits_.max_output) {
    fail(line, "template output exceeded the limit of " + std::to_string(limits_.max_output) + " bytes");
  }
}

// ---- globals -----------------------------------------------------------------

std::string Interpreter::render(const std::vector<NodePtr>& program, const Dict& globals) {
  auto builtins = std::make_shared<Scope>();
  auto& g = builtins->vars;
  g["range"] = Value::callable("range", [](Interpreter& in, Args& a, int line) {
    if (a.pos.empty() || a.pos.size() > 3 || !a.kw.empty()) in.fail(line, "range() takes 1 to 3 integer arguments");
    for (auto& v : a.pos) {
      if (v.type != T::Int) in.fail(line, std::string("range() argument must be an integer, not ") + v.type_name());
    }
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = a.pos[0].i;
    } else {
      start = a.pos[0].i;
      stop = a.pos[1].i;
      if (a.pos.size() == 3) step = a.pos[2].i;
    }
    if (step == 0) in.fail(line, "range() step must not be zero");
    List out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (out.size() >= 1'000'000) in.fail(line, "range() would produce more than 1000000 items");
      out.push_back(Value::integer(k));
    }
    return Value::make_list(std::move(out));
  });
  g["namespace"] = Value::callable("namespace", [](Interpreter& in, Args& a, int line) {
    Dict d;
    if (a.pos.size() > 1) in.fail(line, "namespace() takes at most 1 positional argument");
    if (a.pos.size() == 1) {
      if (!a.pos[0].is_mapping_like()) in.fail(line, "namespace() argument must be a mapping");
      d = *a.pos[0].dict;
    }
    for (auto& kv : a.kw) d.set(kv.first, kv.second);
    return Value::make_namespace(std::move(d));
  });
  g["dict"] = Value::callable("dict", [](Interpreter& in, Args& a, int line) {
    Dict d;
    if (a.pos.size() > 1) in.fail(line, "dict() takes at most 1 positional argument");
    if (a.pos.size() == 1) {
      if (a.pos[0].is_mapping_like()) {
        d = *a.pos[0].dict;
      } else if (a.pos[0].is_list()) {
        for (auto& pair : *a.pos[0].list) {
          if (!pair.is_list() || pair.list->size() != 2 || !(*pair.list)[0].is_string()) {
            in.fail(line, "dict() needs [key, value] pairs with string keys");
          }
          d.set((*pair.list)[0].s, (*pair.list)[1]);
        }
      } else {
        in.fail(line, std::string("dict() argument must be a mapping or a list of pairs, not ") + a.pos[0].type_name());
      }
    }
    for (auto& kv : a.kw) d.set(kv.first, kv.second);
    return Value::make_dict(std::move(d));
  });
  g["raise_exception"] = Value::callable("raise_exception", [](Interpreter& in, Args& a, int line) -> Value {
    std::string msg = a.pos.empty() ? "raise_exception() called" : to_str(a.pos[0]);
    in.fail(line, "template raised an exception: " + msg);
  });
  g["strftime_now"] = Value::callable("strftime_now", [](Interpreter& in, Args& a, int line) {
    if (a.pos.size() != 1 || !a.pos[0].is_string()) in.fail(line, "strftime_now() takes one format string");
    std::time_t t = std::time_t(in.now());
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[512];
    size_t n = a.pos[0].s.size() < 200 ? std::strftime(buf, sizeof buf, a.pos[0].s.c_str(), &tm) : 0;
    if (n == 0 && !a.pos[0].s.empty()) in.fail(line, "strftime_now(): format too long or produces no text");
    return Value::string(std::string(buf, n));
  });

  auto context = std::make_shared<Scope>();
  context->parent = builtins;
  for (auto& kv : globals.items) context->vars[kv.first] = kv.second;
  scope_ = context;
  steps_ = 0;
  depth_ = 0;
  nest_ = 0;
  struct Cleanup {
    Interpreter& in;
    ~Cleanup() {
      for (auto& s : in.closures_) s->vars.clear();
      in.closures_.clear();
      in.scope_.reset();
    }
  } cleanup{*this};
  std::string out;
  exec_block(program, out);
  return out;
}

// ---- statements ----------------------------------------------------------------

Interpreter::Flow Interpreter::exec_block(const std::vector<NodePtr>& stmts, std::string& out) {
  for (auto& s : stmts) {
    Flow f = exec(*s, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

namespace {
constexpr int kMaxNest = 2000;  // exec/eval frames; keeps the C++ stack to a few MB

struct NestGuard {
  int& n;
  NestGuard(int& nn, Interpreter& in, int line) : n(nn) {
    if (++n > kMaxNest) {
      --n;
      in.fail(line, "template nested too deeply while rendering (recursion?)");
    }
  }
  ~NestGuard() { --n; }
};
}  // namespace

Interpreter::Flow Interpreter::exec(const Node& n, std::string& out) {
  NestGuard guard(nest_, *this, n.line);
  step(n.line);
  switch (n.kind) {
    case NodeKind::Text:
      out += n.str;
      check_size(out.size(), n.line);
      return Flow::Normal;
    case NodeKind::Print:
      out += to_output(eval(*n.kids[0]));
      check_size(out.size(), n.line);
      return Flow::Normal;
    case NodeKind::If:
      return exec_block(eval(*n.kids[0]).truthy() ? n.body : n.orelse, out);
    case NodeKind::For:
      exec_for(n, out);
      return Flow::Normal;
    case NodeKind::Set:
      assign(*n.kids[0], eval(*n.kids[1]), n.line);
      return Flow::Normal;
    case NodeKind::SetBlock: {
      std::string body;
      Flow f = exec_block(n.body, body);
      Value v = Value::string(std::move(body));
      for (size_t k = 1; k < n.kids.size(); ++k) {
        const Node& flt = *n.kids[k];
        Args args;
        eval_args(flt, 1, args);
        v = apply_filter(flt.str, std::move(v), args, flt.line);
      }
      assign(*n.kids[0], v, n.line);
      return f;
    }
    case NodeKind::Macro:
      scope_->vars[n.str] = make_macro(n);
      return Flow::Normal;
    case NodeKind::CallBlock: {
      const Node& call = *n.kids[0];
      Value fn = eval(*call.kids[0]);
      Args args;
      eval_args(call, 1, args);
      args.kw.emplace_back("caller", make_macro(*n.orelse[0]));
      out += to_output(this->call(fn, args, n.line));
      check_size(out.size(), n.line);
      return Flow::Normal;
    }
    case NodeKind::FilterBlock: {
      std::string body;
      Flow f = exec_block(n.body, body);
      Value v = Value::string(std::move(body));
      for (auto& flt : n.kids) {
        Args args;
        eval_args(*flt, 1, args);
        v = apply_filter(flt->str, std::move(v), args, flt->line);
      }
      out += to_output(v);
      check_size(out.size(), n.line);
      return f;
    }
    case NodeKind::Block:
      return exec_block(n.body, out);
    case NodeKind::Break:
      return Flow::Break;
    case NodeKind::Continue:
      return Flow::Continue;
    default:
      fail(n.line, "internal error: expression used as a statement");
  }
}

void Interpreter::assign(const Node& target, const Value& v, int line) {
  if (target.kind == NodeKind::Name) {
    scope_->vars[target.str] = v;
  } else if (target.kind == NodeKind::TupleLit) {
    if (!v.is_list()) fail(line, std::string("cannot unpack a ") + v.type_name() + " into " + std::to_string(target.kids.size()) + " variables");
    if (v.list->size() != target.kids.size()) {
      fail(line, "cannot unpack " + std::to_string(v.list->size()) + " values into " + std::to_string(target.kids.size()) + " variables");
    }
    for (size_t k = 0; k < target.kids.size(); ++k) scope_->vars[target.kids[k]->str] = (*v.list)[k];
  } else if (target.kind == NodeKind::Attr) {
    Value obj = eval(*target.kids[0]);
    if (obj.type != T::Namespace) {
      fail(line, "cannot assign attribute '" + target.str + "' on a " + obj.type_name() + " (only on a namespace())");
    }
    if (holds_container(v, obj.dict.get())) fail(line, "a namespace cannot contain itself");
    obj.dict->set(target.str, v);
  } else {
    fail(line, "invalid assignment target");
  }
}

void Interpreter::exec_for(const Node& n, std::string& out) {
  Value seq = eval(*n.kids[0]);
  List items;
  switch (seq.type) {
    case T::Undefined: break;
    case T::List: items = *seq.list; break;
    case T::Dict:
      for (auto& kv : seq.dict->items) items.push_back(Value::string(kv.first));
      break;
    case T::String: {
      size_t pos = 0;
      while (pos < seq.s.size()) {
        std::string ch;
        utf8::append(ch, utf8::decode(seq.s, pos));
        items.push_back(Value::string(std::move(ch)));
      }
      break;
    }
    default:
      fail(n.line, std::string("cannot loop over a ") + seq.type_name() + " (not iterable)");
  }

  auto saved = scope_;
  auto loop_scope = std::make_shared<Scope>();
  loop_scope->parent = saved;
  scope_ = loop_scope;
  auto bind = [&](const Value& item) {
    if (n.names.size() == 1) {
      scope_->vars[n.names[0]] = item;
      return;
    }
    if (!item.is_list() || item.list->size() != n.names.size()) {
      fail(n.line, "cannot unpack a loop item into " + std::to_string(n.names.size()) + " variables");
    }
    for (size_t k = 0; k < n.names.size(); ++k) scope_->vars[n.names[k]] = (*item.list)[k];
  };

  // {% for x in xs if cond %}: filter first, so that loop.length counts the kept items.
  if (n.flag) {
    List kept;
    for (auto& item : items) {
      step(n.line);
      bind(item);
      if (eval(*n.kids[1]).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }

  try {
    const int64_t len = int64_t(items.size());
    for (int64_t k = 0; k < len; ++k) {
      step(n.line);
      bind(items[k]);
      Dict loop;
      loop.items.reserve(10);
      loop.set("index", Value::integer(k + 1));
      loop.set("index0", Value::integer(k));
      loop.set("revindex", Value::integer(len - k));
      loop.set("revindex0", Value::integer(len - k - 1));
      loop.set("first", Value::boolean(k == 0));
      loop.set("last", Value::boolean(k == len - 1));
      loop.set("length", Value::integer(len));
      loop.set("depth", Value::integer(1));
      loop.set("depth0", Value::integer(0));
      loop.set("previtem", k > 0 ? items[k - 1] : Value::undefined());
      loop.set("nextitem", k + 1 < len ? items[k + 1] : Value::undefined());
      loop.set("cycle", Value::callable("cycle", [k](Interpreter& in, Args& a, int line) {
        if (a.pos.empty()) in.fail(line, "loop.cycle() needs at least one argument");
        return a.pos[size_t(k) % a.pos.size()];
      }));
      scope_->vars["loop"] = Value::make_dict(std::move(loop));
      Flow f = exec_block(n.body, out);
      if (f == Flow::Break) break;
    }
    if (len == 0) {
      scope_ = saved;
      exec_block(n.orelse, out);
    }
  } catch (...) {
    scope_ = saved;
    throw;
  }
  scope_ = saved;
}

Value Interpreter::make_macro(const Node& n) {
  const Node* def = &n;
  std::shared_ptr<Scope> closure = scope_;
  if (std::find(closures_.begin(), closures_.end(), closure) == closures_.end()) closures_.push_back(closure);
  return Value::callable(n.str, [def, closure](Interpreter& in, Args& a, int line) {
    const Node& m = *def;
    auto scope = std::make_shared<Scope>();
    scope->parent = closure;
    size_t np = m.names.size();
    if (a.pos.size() > np && !m.flag) {
      in.fail(line, "macro '" + m.str + "' takes at most " + std::to_string(np) + " argument(s), got " + std::to_string(a.pos.size()));
    }
    std::vector<bool> bound(np, false);
    for (size_t k = 0; k < np && k < a.pos.size(); ++k) {
      scope->vars[m.names[k]] = a.pos[k];
      bound[k] = true;
    }
    Dict extra_kw;
    for (auto& kv : a.kw) {
      auto it = std::find(m.names.begin(), m.names.end(), kv.first);
      if (it != m.names.end()) {
        size_t idx = size_t(it - m.names.begin());
        if (bound[idx]) in.fail(line, "macro '" + m.str + "' got multiple values for argument '" + kv.first + "'");
        scope->vars[kv.first] = kv.second;
        bound[idx] = true;
      } else if (kv.first == "caller") {
        scope->vars["caller"] = kv.second;
      } else if (m.flag2) {
        extra_kw.set(kv.first, kv.second);
      } else {
        in.fail(line, "macro '" + m.str + "' takes no keyword argument '" + kv.first + "'");
      }
    }
    List varargs;
    for (size_t k = np; k < a.pos.size(); ++k) varargs.push_back(a.pos[k]);
    scope->vars["varargs"] = Value::make_list(std::move(varargs));
    scope->vars["kwargs"] = Value::make_dict(std::move(extra_kw));
    auto saved = in.scope_;
    in.scope_ = scope;
    struct Restore {
      Interpreter& in;
      std::shared_ptr<Scope> saved;
      ~Restore() { in.scope_ = saved; --in.depth_; }
    } restore{in, saved};
    if (++in.depth_ > in.limits_.max_depth) {
      in.fail(line, "maximum macro recursion depth (" + std::to_string(in.limits_.max_depth) + ") exceeded");
    }
    for (size_t k = 0; k < np; ++k) {
      if (bound[k]) continue;
      scope->vars[m.names[k]] = m.kids[k] ? in.eval(*m.kids[k]) : Value::undefined();
    }
    std::string out;
    in.exec_block(m.body, out);
    return Value::string(std::move(out));
  });
}

// ---- expressions ---------------------------------------------------------------

void Interpreter::eval_args(const Node& n, size_t first, Args& args) {
  for (size_t k = first; k < n.kids.size(); ++k) {
    Value v = eval(*n.kids[k]);
    if (n.names[k].empty()) {
      args.pos.push_back(std::move(v));
    } else {
      for (auto& kv : args.kw) {
        if (kv.first == n.names[k]) fail(n.line, "keyword argument '" + n.names[k] + "' given twice");
      }
      args.kw.emplace_back(n.names[k], std::move(v));
    }
  }
}

Value Interpreter::call(const Value& fn, Args& args, int line) {
  if (fn.type != T::Callable) {
    fail(line, std::string("cannot call a ") + fn.type_name() + (fn.is_undefined() ? " value (unknown function?)" : ""));
  }
  return fn.fn->fn(*this, args, line);
}

Value Interpreter::eval(const Node& n) {
  NestGuard guard(nest_, *this, n.line);
  switch (n.kind) {
    case NodeKind::Const:
      return n.value;
    case NodeKind::Name: {
      const Value* v = scope_->lookup(n.str);
      return v ? *v : Value::undefined();
    }
    case NodeKind::ListLit:
    case NodeKind::TupleLit: {
      List l;
      l.reserve(n.kids.size());
      for (auto& k : n.kids) l.push_back(eval(*k));
      return Value::make_list(std::move(l));
    }
    case NodeKind::DictLit: {
      Dict d;
      for (size_t k = 0; k + 1 < n.kids.size(); k += 2) {
        Value key = eval(*n.kids[k]);
        if (!key.is_string()) fail(n.line, std::string("dict keys must be strings, got ") + key.type_name());
        d.set(key.s, eval(*n.kids[k + 1]));
      }
      return Value::make_dict(std::move(d));
    }
    case NodeKind::Attr:
      return get_attr(eval(*n.kids[0]), n.str, n.line);
    case NodeKind::Item:
      return get_item(eval(*n.kids[0]), eval(*n.kids[1]), n.line);
    case NodeKind::Slice: {
      Value obj = eval(*n.kids[0]);
      Value parts[3];
      const Value* p[3] = {nullptr, nullptr, nullptr};
      for (int k = 0; k < 3; ++k) {
        if (!n.kids[k + 1]) continue;
        parts[k] = eval(*n.kids[k + 1]);
        if (parts[k].is_none()) continue;
        if (parts[k].type != T::Int) fail(n.line, std::string("slice indices must be integers, not ") + parts[k].type_name());
        p[k] = &parts[k];
      }
      if (p[2] && p[2]->i == 0) fail(n.line, "slice step cannot be zero");
      if (obj.is_list()) {
        List out;
        for (int64_t k : slice_indices(int64_t(obj.list->size()), p[0], p[1], p[2])) out.push_back((*obj.list)[k]);
        return Value::make_list(std::move(out));
      }
      if (obj.is_string()) {
        auto cps = utf8::code_points(obj.s);
        std::vector<uint32_t> out;
        for (int64_t k : slice_indices(int64_t(cps.size()), p[0], p[1], p[2])) out.push_back(cps[k]);
        return Value::string(utf8::encode(out));
      }
      if (obj.is_undefined()) return Value::undefined();
      fail(n.line, std::string("cannot slice a ") + obj.type_name());
    }
    case NodeKind::Unary: {
      Value v = eval(*n.kids[0]);
      if (n.str == "not") return Value::boolean(!v.truthy());
      if (v.type == T::Int || v.type == T::Bool) {
        int64_t x = v.type == T::Bool ? v.b : v.i;
        if (n.str == "-" && x == INT64_MIN) fail(n.line, "integer overflow");
        return Value::integer(n.str == "-" ? -x : x);
      }
      if (v.type == T::Float) return Value::number(n.str == "-" ? -v.f : v.f);
      fail(n.line, "bad operand type for unary " + n.str + ": " + v.type_name());
    }
    case NodeKind::Binary:
      return eval_binary(n);
    case NodeKind::Cond: {
      if (eval(*n.kids[0]).truthy()) return eval(*n.kids[1]);
      return n.kids[2] ? eval(*n.kids[2]) : Value::undefined();
    }
    case NodeKind::Call:
      return eval_call(n);
    case NodeKind::Filter: {
      Value operand = eval(*n.kids[0]);
      Args args;
      eval_args(n, 1, args);
      return apply_filter(n.str, std::move(operand), args, n.line);
    }
    case NodeKind::Test: {
      Value operand = eval(*n.kids[0]);
      Args args;
      eval_args(n, 1, args);
      bool r = apply_test(n.str, operand, args, n.line);
      return Value::boolean(n.flag ? !r : r);
    }
    default:
      fail(n.line, "internal error: statement used as an expression");
  }
}

Value Interpreter::eval_binary(const Node& n) {
  const std::string& op = n.str;
  Value a = eval(*n.kids[0]);
  if (op == "and") return a.truthy() ? eval(*n.kids[1]) : a;
  if (op == "or") return a.truthy() ? a : eval(*n.kids[1]);
  Value b = eval(*n.kids[1]);
  if (op == "==") return Value::boolean(values_equal(a, b));
  if (op == "!=") return Value::boolean(!values_equal(a, b));
  if (op == "in" || op == "not in") {
    bool found = false;
    if (b.is_list()) {
      for (auto& e : *b.list) if (values_equal(a, e)) { found = true; break; }
    } else if (b.is_mapping_like()) {
      found = a.is_string() && b.dict->find(a.s) != nullptr;
    } else if (b.is_string()) {
      if (!a.is_string()) fail(n.line, std::string("'in <string>' requires a string on the left, not ") + a.type_name());
      found = b.s.find(a.s) != std::string::npos;
    } else if (b.is_undefined()) {
      found = false;
    } else {
      fail(n.line, std::string("argument of type ") + b.type_name() + " is not iterable");
    }
    return Value::boolean(op == "in" ? found : !found);
  }
  if (op == "~") {
    std::string s = to_str(a) + to_str(b);
    check_size(s.size(), n.line);
    return Value::string(std::move(s));
  }
  if (op == "<" || op == "<=" || op == ">" || op == ">=") {
    bool ok;
    int c = compare_values(a, b, true, ok);
    if (!ok) fail(n.line, "'" + op + "' not supported between " + a.type_name() + " and " + b.type_name());
    return Value::boolean(op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0);
  }
  if (a.is_undefined() || b.is_undefined()) {
    fail(n.line, "undefined value in '" + op + "' (a variable or attribute is missing)");
  }
  bool an = a.type == T::Int || a.type == T::Float || a.type == T::Bool;
  bool bn = b.type == T::Int || b.type == T::Float || b.type == T::Bool;
  if (op == "+") {
    if (a.is_list() && b.is_list()) {
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(l));
    }
    // Like @huggingface/jinja, "+" joins as text when either side is a string.
    if ((a.is_string() || b.is_string()) && !a.is_none() && !b.is_none()) {
      std::string s = to_str(a) + to_str(b);
      check_size(s.size(), n.line);
      return Value::string(std::move(s));
    }
  }
  if (op == "*" && (a.is_string() || a.is_list()) && b.type == T::Int) {
    int64_t times = std::max<int64_t>(b.i, 0);
    size_t unit = a.is_string() ? a.s.size() : a.list->size();
    if (unit && uint64_t(times) > limits_.max_output / unit) fail(n.line, "repetition result too large");
    if (a.is_string()) {
      std::string s;
      for (int64_t k = 0; k < times; ++k) s += a.s;
      return Value::string(std::move(s));
    }
    List l;
    for (int64_t k = 0; k < times; ++k) l.insert(l.end(), a.list->begin(), a.list->end());
    return Value::make_list(std::move(l));
  }
  if (op == "%" && a.is_string()) {
    List args = b.is_list() ? *b.list : List{b};
    return Value::string(py_format(a.s, args, n.line));
  }
  if (!an || !bn) {
    fail(n.line, "unsupported operand types for " + op + ": " + a.type_name() + " and " + b.type_name());
  }
  bool ints = a.type != T::Float && b.type != T::Float;
  int64_t x = a.type == T::Bool ? a.b : a.i, y = b.type == T::Bool ? b.b : b.i;
  double fx = a.as_double(), fy = b.as_double();
  if (op == "+" || op == "-" || op == "*") {
    if (ints) {
      int64_t r;
      bool over = op == "+" ? __builtin_add_overflow(x, y, &r) : op == "-" ? __builtin_sub_overflow(x, y, &r) : __builtin_mul_overflow(x, y, &r);
      if (over) fail(n.line, "integer overflow in '" + op + "'");
      return Value::integer(r);
    }
    return Value::number(op == "+" ? fx + fy : op == "-" ? fx - fy : fx * fy);
  }
  if (op == "/") {
    if (fy == 0) fail(n.line, "division by zero");
    return Value::number(fx / fy);
  }
  if (op == "//" || op == "%") {
    if (ints) {
      if (y == 0) fail(n.line, op == "//" ? "integer division by zero" : "integer modulo by zero");
      if (x == INT64_MIN && y == -1) fail(n.line, "integer overflow in '" + op + "'");
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    if (fy == 0) fail(n.line, "float division by zero");
    if (op == "//") return Value::number(std::floor(fx / fy));
    double r = std::fmod(fx, fy);
    if (r != 0 && ((r < 0) != (fy < 0))) r += fy;
    return Value::number(r);
  }
  if (op == "**") {
    if (ints && y >= 0) {
      int64_t r = 1;
      for (int64_t k = 0; k < y; ++k) {
        if (__builtin_mul_overflow(r, x, &r)) fail(n.line, "integer overflow in '**'");
        if (r == 0 || r == 1) break;
      }
      if (x == -1) r = (y % 2) ? -1 : 1;
      return Value::integer(r);
    }
    if (fx == 0 && fy < 0) fail(n.line, "0.0 cannot be raised to a negative power");
    double r = std::pow(fx, fy);
    if (!std::isfinite(r)) fail(n.line, "'**' result is not a finite real number");
    return Value::number(r);
  }
  fail(n.line, "unknown operator '" + op + "'");
}

Value Interpreter::eval_call(const Node& n) {
  const Node& callee = *n.kids[0];
  Args args;
  if (callee.kind == NodeKind::Attr) {
    Value obj = eval(*callee.kids[0]);
    eval_args(n, 1, args);
    bool found = false;
    Value r = call_method(obj, callee.str, args, n.line, &found);
    if (found) return r;
    Value fn = get_attr(obj, callee.str, n.line);
    if (fn.type != T::Callable) {
      fail(n.line, std::string("a ") + obj.type_name() + " has no method '" + callee.str + "'");
    }
    return call(fn, args, n.line);
  }
  Value fn = eval(callee);
  eval_args(n, 1, args);
  if (fn.type != T::Callable && callee.kind == NodeKind::Name) {
    fail(n.line, "'" + callee.str + "' is not a function" + (fn.is_undefined() ? " (undefined)" : ""));
  }
  if (depth_ > limits_.max_depth) fail(n.line, "maximum call depth exceeded");
  return call(fn, args, n.line);
}

Value Interpreter::get_attr(const Value& obj, const std::string& name, int line) {
  (void)line;
  if (obj.is_mapping_like()) {
    const Value* v = obj.dict->find(name);
    return v ? *v : Value::undefined();
  }
  return Value::undefined();
}

Value Interpreter::get_item(const Value& obj, const Value& key, int line) {
  if (obj.is_mapping_like()) {
    if (!key.is_string()) return Value::undefined();
    const Value* v = obj.dict->find(key.s);
    return v ? *v : Value::undefined();
  }
  if (obj.is_list() || obj.is_string()) {
    if (key.type != T::Int) {
      if (key.is_string()) return Value::undefined();
      fail(line, std::string("indices must be integers, not ") + key.type_name());
    }
    if (obj.is_list()) {
      int64_t k = to_index(key.i, int64_t(obj.list->size()));
      if (k < 0 || k >= int64_t(obj.list->size())) return Value::undefined();
      return (*obj.list)[k];
    }
    auto cps = utf8::code_points(obj.s);
    int64_t k = to_index(key.i, int64_t(cps.size()));
    if (k < 0 || k >= int64_t(cps.size())) return Value::undefined();
    std::string ch;
    utf8::append(ch, cps[k]);
    return Value::string(std::move(ch));
  }
  return Value::undefined();
}

}  // namespace hai::chat::jinja
