// Filters ({{ x | name(args) }}), tests ({% if x is name %}) and methods on
// values ({{ s.strip() }}, {{ d.items() }}, {{ l.append(x) }}).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "engine/chat/jinja.h"
#include "engine/chat/utf8.h"
#include "engine/common/error.h"

namespace hai::chat::jinja {
namespace {

using T = Value::Type;

// Argument `name` given at position `pos` or as a keyword; nullptr if absent.
const Value* arg(const Args& a, size_t pos, const char* name) {
  if (pos < a.pos.size()) return &a.pos[pos];
  return a.kwarg(name);
}

bool arg_bool(const Args& a, size_t pos, const char* name, bool def) {
  const Value* v = arg(a, pos, name);
  return v ? v->truthy() : def;
}

size_t length_of(const Value& v) {
  switch (v.type) {
    case T::String: return utf8::code_points(v.s).size();
    case T::List: return v.list->size();
    case T::Dict: case T::Namespace: return v.dict->items.size();
    default: return 0;
  }
}

// Items of an iterable value for filters that take sequences.
List iterate(Interpreter& in, const Value& v, const std::string& filter, int line) {
  switch (v.type) {
    case T::List: return *v.list;
    case T::Dict: {
      List out;
      for (auto& kv : v.dict->items) out.push_back(Value::string(kv.first));
      return out;
    }
    case T::String: {
      List out;
      size_t pos = 0;
      while (pos < v.s.size()) {
        std::string ch;
        utf8::append(ch, utf8::decode(v.s, pos));
        out.push_back(Value::string(std::move(ch)));
      }
      return out;
    }
    case T::Undefined: return {};
    default: in.fail(line, "filter '" + filter + "' needs a sequence, got " + v.type_name());
  }
}

// Attribute path "a.b.0" as used by map/sort/selectattr/sum.
Value attribute_path(const Value& item, const std::string& path) {
  Value cur = item;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur.is_mapping_like()) {
      const Value* v = cur.dict->find(part);
      cur = v ? *v : Value::undefined();
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      size_t k = std::strtoull(part.c_str(), nullptr, 10);
      cur = k < cur.list->size() ? (*cur.list)[k] : Value::undefined();
    } else {
      return Value::undefined();
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

int cmp(Interpreter& in, const Value& a, const Value& b, bool case_sensitive, int line) {
  bool ok;
  int c = compare_values(a, b, case_sensitive, ok);
  if (!ok) in.fail(line, std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
  return c;
}

int64_t parse_int(const std::string& s, bool& ok) {
  std::string t = utf8::strip(s, true, true);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(t.c_str(), &end, 10);
  ok = !t.empty() && end && *end == '\0' && errno == 0;
  if (!ok) {
    // "3.7" | int -> 3, as Jinja does via float().
    double d = std::strtod(t.c_str(), &end);
    ok = !t.empty() && end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18;
    return ok ? int64_t(d) : 0;
  }
  return v;
}

Value py_round(double x, int64_t digits, const std::string& method) {
  double p = std::pow(10.0, double(digits));
  double y = x * p;
  double r;
  if (method == "ceil") r = std::ceil(y);
  else if (method == "floor") r = std::floor(y);
  else {
    r = std::nearbyint(y);  // round half to even, like Python's round()
  }
  return Value::number(r / p);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

// printf-style formatting of Python's "fmt % args" and the format filter:
// %s %d %i %f %e %g %x %r %% with optional flags, width and precision.
std::string Interpreter::py_format(const std::string& fmt, const List& args, int line) {
  std::string out;
  size_t next = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    size_t b = k++;
    while (k < fmt.size() && std::strchr("-+ 0#", fmt[k])) ++k;
    while (k < fmt.size() && std::isdigit((unsigned char)fmt[k])) ++k;
    if (k < fmt.size() && fmt[k] == '.') {
      ++k;
      while (k < fmt.size() && std::isdigit((unsigned char)fmt[k])) ++k;
    }
    if (k >= fmt.size()) fail(line, "incomplete format: '" + fmt.substr(b) + "'");
    char conv = fmt[k];
    std::string spec = fmt.substr(b, k - b);
    if (spec.size() > 20) fail(line, "format specification too long");
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) fail(line, "not enough arguments for format string");
    const Value& v = args[next++];
    char buf[512];
    switch (conv) {
      case 's': case 'r': {
        std::string text = conv == 'r' && v.is_string() ? "'" + v.s + "'" : to_str(v);
        // Width and precision count characters; pad by hand rather than through snprintf.
        size_t dot = spec.find('.');
        size_t width = 0, prec = std::string::npos;
        for (size_t i = 1; i < std::min(dot, spec.size()); ++i) {
          if (std::isdigit((unsigned char)spec[i]) && !(width == 0 && spec[i] == '0')) width = width * 10 + size_t(spec[i] - '0');
        }
        if (dot != std::string::npos) prec = size_t(std::atoi(spec.c_str() + dot + 1));
        auto cps = utf8::code_points(text);
        if (prec < cps.size()) {
          cps.resize(prec);
          text = utf8::encode(cps);
        }
        width = std::min<size_t>(width, 1024);
        size_t len = cps.size();
        bool left = spec.find('-') != std::string::npos;
        if (left) out += text;
        if (len < width) out.append(width - len, ' ');
        if (!left) out += text;
        break;
      }
      case 'd': case 'i': case 'x': case 'X': case 'o': {
        if (!v.is_number() && v.type != T::Bool) fail(line, std::string("%") + conv + " format needs a number, not " + v.type_name());
        long long x = v.type == T::Float ? (long long)v.f : v.type == T::Bool ? v.b : v.i;
        std::snprintf(buf, sizeof buf, (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), x);
        out += buf;
        break;
      }
      case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': {
        if (!v.is_number() && v.type != T::Bool) fail(line, std::string("%") + conv + " format needs a number, not " + v.type_name());
        std::snprintf(buf, sizeof buf, (spec + conv).c_str(), v.as_double());
        out += buf;
        break;
      }
      default:
        fail(line, std::string("unsupported format character '") + conv + "'");
    }
    check_size(out.size(), line);
  }
  if (next < args.size()) fail(line, "not all arguments converted during string formatting");
  return out;
}

bool Interpreter::apply_test(const std::string& name, const Value& v, Args& a, int line) {
  auto need_arg = [&]() -> const Value& {
    if (a.pos.empty()) fail(line, "test '" + name + "' needs an argument");
    return a.pos[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.type == T::Bool;
  if (name == "true") return v.type == T::Bool && v.b;
  if (name == "false") return v.type == T::Bool && !v.b;
  if (name == "integer") return v.type == T::Int;
  if (name == "float") return v.type == T::Float;
  if (name == "number") return v.type == T::Int || v.type == T::Float;
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable") return v.type == T::Callable;
  if (name == "escaped") return false;
  if (name == "lower") return v.is_string() && utf8::lower(v.s) == v.s;
  if (name == "upper") return v.is_string() && utf8::upper(v.s) == v.s;
  if (name == "odd" || name == "even") {
    if (v.type != T::Int) fail(line, "test '" + name + "' needs an integer, got " + v.type_name());
    bool odd = (v.i % 2) != 0;
    return name == "odd" ? odd : !odd;
  }
  if (name == "divisibleby") {
    const Value& d = need_arg();
    if (v.type != T::Int || d.type != T::Int) fail(line, "test 'divisibleby' needs integers");
    if (d.i == 0) fail(line, "test 'divisibleby' by zero");
    return v.i % d.i == 0;
  }
  if (name == "eq" || name == "equalto") return values_equal(v, need_arg());
  if (name == "ne") return !values_equal(v, need_arg());
  if (name == "sameas") {
    const Value& o = need_arg();
    if (v.type != o.type) return false;
    if (v.is_list()) return v.list == o.list;
    if (v.is_mapping_like()) return v.dict == o.dict;
    return values_equal(v, o);
  }
  if (name == "in") {
    const Value& c = need_arg();
    if (c.is_list()) {
      for (auto& e : *c.list) if (values_equal(v, e)) return true;
      return false;
    }
    if (c.is_mapping_like()) return v.is_string() && c.dict->find(v.s);
    if (c.is_string() && v.is_string()) return c.s.find(v.s) != std::string::npos;
    fail(line, std::string("test 'in' needs a container, got ") + c.type_name());
  }
  if (name == "lt" || name == "le" || name == "gt" || name == "ge" || name == "lessthan" || name == "greaterthan") {
    int c = cmp(*this, v, need_arg(), true, line);
    if (name == "lt" || name == "lessthan") return c < 0;
    if (name == "le") return c <= 0;
    if (name == "gt" || name == "greaterthan") return c > 0;
    return c >= 0;
  }
  fail(line, "no test named '" + name + "'");
}

Value Interpreter::apply_filter(const std::string& name, Value v, Args& a, int line) {
  // String filters take any value as Jinja2 does (str(x); undefined is "").
  std::string text_storage;
  auto need_string = [&]() -> const std::string& {
    if (v.is_string()) return v.s;
    if (v.type == T::Callable) fail(line, "filter '" + name + "' needs a string, got a callable");
    text_storage = to_str(v);
    return text_storage;
  };
  if (name == "safe" || (name == "list" && v.is_list())) return v;
  if (name == "default" || name == "d") {
    const Value* def = arg(a, 0, "default_value");
    bool boolean = arg_bool(a, 1, "boolean", false);
    if (v.is_undefined() || (boolean && !v.truthy())) return def ? *def : Value::string("");
    return v;
  }
  if (name == "tojson") {
    JsonStyle st;
    if (const Value* ind = arg(a, 0, "indent"); ind && !ind->is_none()) {
      if (ind->type != T::Int) fail(line, "tojson indent must be an integer");
      st.indent = int(std::clamp<int64_t>(ind->i, 0, 64));
      st.item_sep = ",";
    }
    if (const Value* v2 = a.kwarg("ensure_ascii")) st.ensure_ascii = v2->truthy();
    if (const Value* v2 = a.kwarg("sort_keys")) st.sort_keys = v2->truthy();
    if (const Value* sep = a.kwarg("separators"); sep && !sep->is_none()) {
      if (!sep->is_list() || sep->list->size() != 2 || !(*sep->list)[0].is_string() || !(*sep->list)[1].is_string()) {
        fail(line, "tojson separators must be a pair of strings");
      }
      st.item_sep = (*sep->list)[0].s;
      st.key_sep = (*sep->list)[1].s;
    }
    return Value::string(to_json(v, st, line));
  }
  if (name == "string") return v.is_string() ? v : Value::string(to_str(v));
  if (name == "length" || name == "count") {
    if (!(v.is_string() || v.is_list() || v.is_mapping_like() || v.is_undefined())) {
      fail(line, std::string("filter 'length': a ") + v.type_name() + " has no length");
    }
    return Value::integer(int64_t(length_of(v)));
  }
  if (name == "trim") {
    const Value* chars = arg(a, 0, "chars");
    return Value::string(utf8::strip(need_string(), true, true, chars && chars->is_string() ? &chars->s : nullptr));
  }
  if (name == "upper") return Value::string(utf8::upper(need_string()));
  if (name == "lower") return Value::string(utf8::lower(need_string()));
  if (name == "title") return Value::string(utf8::title(need_string()));
  if (name == "capitalize") return Value::string(utf8::capitalize(need_string()));
  if (name == "e" || name == "escape" || name == "forceescape") return Value::string(html_escape(to_str(v)));
  if (name == "wordcount") {
    auto cps = utf8::code_points(need_string());
    int64_t n = 0;
    bool in_word = false;
    for (uint32_t cp : cps) {
      bool w = utf8::is_alnum(cp) || cp == '_';
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::integer(n);
  }
  if (name == "replace") {
    const Value* from = arg(a, 0, "old");
    const Value* to = arg(a, 1, "new");
    const Value* count = arg(a, 2, "count");
    if (!from || !to || !from->is_string() || !to->is_string()) fail(line, "filter 'replace' needs two strings");
    Args m;
    m.pos = {*from, *to};
    if (count) m.pos.push_back(*count);
    bool found;
    return call_method(Value::string(need_string()), "replace", m, line, &found);
  }
  if (name == "indent") {
    const std::string& s = need_string();
    const Value* width = arg(a, 0, "width");
    std::string pad = "    ";
    if (width && width->type == T::Int) pad = std::string(size_t(std::clamp<int64_t>(width->i, 0, 1024)), ' ');
    else if (width && width->is_string()) pad = width->s;
    bool first = arg_bool(a, 1, "first", false);
    bool blank = arg_bool(a, 2, "blank", false);
    std::string out;
    size_t start = 0;
    bool is_first = true;
    while (true) {
      size_t nl = s.find('\n', start);
      std::string ln = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      bool indent = (is_first ? first : true) && (blank || !ln.empty());
      if (indent) out += pad;
      out += ln;
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
      is_first = false;
    }
    check_size(out.size(), line);
    return Value::string(std::move(out));
  }
  if (name == "center") {
    const Value* width = arg(a, 0, "width");
    int64_t w = width && width->type == T::Int ? std::min<int64_t>(width->i, 1 << 20) : 80;
    std::string s = need_string();
    int64_t n = int64_t(utf8::code_points(s).size());
    if (n >= w) return Value::string(s);
    int64_t left = (w - n) / 2, right = w - n - left;
    return Value::string(std::string(size_t(left), ' ') + s + std::string(size_t(right), ' '));
  }
  if (name == "int") {
    const Value* def = arg(a, 0, "default");
    Value dflt = def ? *def : Value::integer(0);
    if (v.type == T::Int) return v;
    if (v.type == T::Bool) return Value::integer(v.b);
    if (v.type == T::Float) {
      if (!std::isfinite(v.f) || std::fabs(v.f) > 9.2e18) return dflt;
      return Value::integer(int64_t(std::trunc(v.f)));
    }
    if (v.is_string()) {
      bool ok;
      int64_t r = parse_int(v.s, ok);
      return ok ? Value::integer(r) : dflt;
    }
    return dflt;
  }
  if (name == "float") {
    const Value* def = arg(a, 0, "default");
    Value dflt = def ? *def : Value::number(0.0);
    if (v.type == T::Float) return v;
    if (v.type == T::Int || v.type == T::Bool) return Value::number(v.as_double());
    if (v.is_string()) {
      std::string t = utf8::strip(v.s, true, true);
      char* end = nullptr;
      double d = std::strtod(t.c_str(), &end);
      return (!t.empty() && end && *end == '\0') ? Value::number(d) : dflt;
    }
    return dflt;
  }
  if (name == "abs") {
    if (v.type == T::Int) {
      if (v.i == INT64_MIN) fail(line, "integer overflow in abs");
      return Value::integer(std::llabs(v.i));
    }
    if (v.type == T::Float) return Value::number(std::fabs(v.f));
    fail(line, std::string("filter 'abs' needs a number, got ") + v.type_name());
  }
  if (name == "round") {
    if (!v.is_number()) fail(line, std::string("filter 'round' needs a number, got ") + v.type_name());
    const Value* prec = arg(a, 0, "precision");
    const Value* method = arg(a, 1, "method");
    std::string m = method && method->is_string() ? method->s : "common";
    if (m != "common" && m != "ceil" && m != "floor") fail(line, "filter 'round': method must be common, ceil or floor");
    int64_t digits = prec && prec->type == T::Int ? std::clamp<int64_t>(prec->i, -300, 300) : 0;
    return py_round(v.as_double(), digits, m);
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::make_list();
    if (!v.is_mapping_like()) fail(line, std::string("filter 'items' needs a mapping, got ") + v.type_name());
    List out;
    for (auto& kv : v.dict->items) out.push_back(Value::make_list({Value::string(kv.first), kv.second}));
    return Value::make_list(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is_mapping_like()) fail(line, std::string("filter 'dictsort' needs a mapping, got ") + v.type_name());
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const Value* by = arg(a, 1, "by");
    bool by_value = by && by->is_string() && by->s == "value";
    bool reverse = arg_bool(a, 2, "reverse", false);
    List out;
    for (auto& kv : v.dict->items) out.push_back(Value::make_list({Value::string(kv.first), kv.second}));
    std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
      int c = cmp(*this, (*x.list)[by_value], (*y.list)[by_value], cs, line);
      return reverse ? c > 0 : c < 0;
    });
    return Value::make_list(std::move(out));
  }
  if (name == "format") {
    List args(a.pos.begin(), a.pos.end());
    return Value::string(py_format(need_string(), args, line));
  }
  if (name == "attr") {
    const Value* n = arg(a, 0, "name");
    if (!n || !n->is_string()) fail(line, "filter 'attr' needs a name");
    return get_attr(v, n->s, line);
  }

  // The remaining filters work on sequences.
  if (name == "list") return Value::make_list(iterate(*this, v, name, line));
  if (name == "first" || name == "last") {
    if (v.is_undefined()) return Value::undefined();
    List l = iterate(*this, v, name, line);
    if (l.empty()) return Value::undefined();
    return name == "first" ? l.front() : l.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto cps = utf8::code_points(v.s);
      std::reverse(cps.begin(), cps.end());
      return Value::string(utf8::encode(cps));
    }
    List l = iterate(*this, v, name, line);
    std::reverse(l.begin(), l.end());
    return Value::make_list(std::move(l));
  }
  if (name == "join") {
    const Value* sep = arg(a, 0, "d");
    const Value* attribute = arg(a, 1, "attribute");
    std::string s;
    bool first = true;
    for (auto& e : iterate(*this, v, name, line)) {
      if (!first) s += sep ? to_str(*sep) : "";
      first = false;
      s += to_str(attribute && attribute->is_string() ? attribute_path(e, attribute->s) : e);
      check_size(s.size(), line);
    }
    return Value::string(std::move(s));
  }
  if (name == "sort") {
    bool reverse = arg_bool(a, 0, "reverse", false);
    bool cs = arg_bool(a, 1, "case_sensitive", false);
    const Value* attribute = arg(a, 2, "attribute");
    List l = iterate(*this, v, name, line);
    auto key = [&](const Value& x) {
      if (!attribute || attribute->is_none()) return x;
      return attribute_path(x, attribute->type == T::Int ? std::to_string(attribute->i) : to_str(*attribute));
    };
    std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
      int c = cmp(*this, key(x), key(y), cs, line);
      return reverse ? c > 0 : c < 0;
    });
    return Value::make_list(std::move(l));
  }
  if (name == "unique") {
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const Value* attribute = arg(a, 1, "attribute");
    List out, keys;
    for (auto& e : iterate(*this, v, name, line)) {
      Value k = attribute && attribute->is_string() ? attribute_path(e, attribute->s) : e;
      if (!cs && k.is_string()) k = Value::string(utf8::lower(k.s));
      bool seen = false;
      for (auto& s : keys) if (values_equal(s, k)) { seen = true; break; }
      if (!seen) {
        keys.push_back(k);
        out.push_back(e);
      }
    }
    return Value::make_list(std::move(out));
  }
  if (name == "min" || name == "max") {
    bool cs = arg_bool(a, 0, "case_sensitive", false);
    const Value* attribute = arg(a, 1, "attribute");
    List l = iterate(*this, v, name, line);
    if (l.empty()) return Value::undefined();
    auto key = [&](const Value& x) { return attribute && attribute->is_string() ? attribute_path(x, attribute->s) : x; };
    size_t best = 0;
    for (size_t k = 1; k < l.size(); ++k) {
      int c = cmp(*this, key(l[k]), key(l[best]), cs, line);
      if (name == "min" ? c < 0 : c > 0) best = k;
    }
    return l[best];
  }
  if (name == "sum") {
    const Value* attribute = arg(a, 0, "attribute");
    const Value* start = arg(a, 1, "start");
    Value total = start ? *start : Value::integer(0);
    for (auto& e : iterate(*this, v, name, line)) {
      Value x = attribute && attribute->is_string() ? attribute_path(e, attribute->s) : e;
      if (!x.is_number() || !total.is_number()) fail(line, std::string("filter 'sum' needs numbers, got ") + x.type_name());
      if (x.type == T::Int && total.type == T::Int) {
        int64_t r;
        if (__builtin_add_overflow(total.i, x.i, &r)) fail(line, "integer overflow in filter 'sum'");
        total = Value::integer(r);
      } else {
        total = Value::number(total.as_double() + x.as_double());
      }
    }
    return total;
  }
  if (name == "batch") {
    const Value* size = arg(a, 0, "linecount");
    const Value* fill = arg(a, 1, "fill_with");
    if (!size || size->type != T::Int || size->i <= 0) fail(line, "filter 'batch' needs a positive size");
    List out, cur;
    for (auto& e : iterate(*this, v, name, line)) {
      cur.push_back(e);
      if (int64_t(cur.size()) == size->i) {
        out.push_back(Value::make_list(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (fill) while (int64_t(cur.size()) < size->i) cur.push_back(*fill);
      out.push_back(Value::make_list(std::move(cur)));
    }
    return Value::make_list(std::move(out));
  }
  // Like Jinja2, map and the select family yield nothing for a false value (none).
  if ((name == "map" || name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") &&
      v.is_none()) {
    return Value::make_list();
  }
  if (name == "map") {
    List l = iterate(*this, v, name, line);
    List out;
    if (const Value* attribute = a.kwarg("attribute")) {
      const Value* def = a.kwarg("default");
      for (auto& e : l) {
        Value x = attribute_path(e, attribute->type == T::Int ? std::to_string(attribute->i) : to_str(*attribute));
        out.push_back(x.is_undefined() && def ? *def : x);
      }
      return Value::make_list(std::move(out));
    }
    if (a.pos.empty() || !a.pos[0].is_string()) fail(line, "filter 'map' needs a filter name or attribute=");
    std::string f = a.pos[0].s;
    if (!is_known_filter(f) || f == "map") fail(line, "filter 'map': no filter named '" + f + "'");
    Args rest;
    rest.pos.assign(a.pos.begin() + 1, a.pos.end());
    rest.kw = a.kw;
    for (auto& e : l) {
      Args copy = rest;
      out.push_back(apply_filter(f, e, copy, line));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool keep_if = name == "select" || name == "selectattr";
    size_t k0 = 0;
    std::string attribute;
    if (by_attr) {
      if (a.pos.empty() || !a.pos[0].is_string()) fail(line, "filter '" + name + "' needs an attribute name");
      attribute = a.pos[0].s;
      k0 = 1;
    }
    std::string test;
    if (a.pos.size() > k0) {
      if (!a.pos[k0].is_string()) fail(line, "filter '" + name + "': the test name must be a string");
      test = a.pos[k0].s;
      if (!is_known_test(test)) fail(line, "filter '" + name + "': no test named '" + test + "'");
    }
    Args targs;
    if (a.pos.size() > k0 + 1) targs.pos.assign(a.pos.begin() + k0 + 1, a.pos.end());
    List out;
    for (auto& e : iterate(*this, v, name, line)) {
      Value x = by_attr ? attribute_path(e, attribute) : e;
      bool r = test.empty() ? x.truthy() : apply_test(test, x, targs, line);
      if (r == keep_if) out.push_back(e);
    }
    return Value::make_list(std::move(out));
  }
  fail(line, "no filter named '" + name + "'");
}

Value Interpreter::call_method(const Value& obj, const std::string& name, Args& a, int line, bool* found) {
  *found = true;
  auto str_arg = [&](size_t k, const char* what) -> const std::string& {
    if (k >= a.pos.size() || !a.pos[k].is_string()) fail(line, name + "() needs a string " + what);
    return a.pos[k].s;
  };
  if (obj.is_string()) {
    const std::string& s = obj.s;
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const std::string* chars = !a.pos.empty() && a.pos[0].is_string() ? &a.pos[0].s : nullptr;
      return Value::string(utf8::strip(s, name != "rstrip", name != "lstrip", chars));
    }
    if (name == "upper") return Value::string(utf8::upper(s));
    if (name == "lower") return Value::string(utf8::lower(s));
    if (name == "title") return Value::string(utf8::title(s));
    if (name == "capitalize") return Value::string(utf8::capitalize(s));
    if (name == "startswith" || name == "endswith") {
      if (a.pos.empty()) fail(line, name + "() needs an argument");
      List pats = a.pos[0].is_list() ? *a.pos[0].list : List{a.pos[0]};
      for (auto& p : pats) {
        if (!p.is_string()) fail(line, name + "() needs strings");
        bool hit = name == "startswith" ? s.starts_with(p.s) : s.ends_with(p.s);
        if (hit) return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    if (name == "split" || name == "rsplit") {
      const Value* sep = arg(a, 0, "sep");
      const Value* maxv = arg(a, 1, "maxsplit");
      int64_t maxsplit = maxv && maxv->type == T::Int ? maxv->i : -1;
      List out;
      if (!sep || sep->is_none()) {
        auto cps = utf8::code_points(s);
        size_t k = 0, n = cps.size();
        if (name == "rsplit" && maxsplit >= 0) fail(line, "rsplit() with maxsplit and no separator is not supported");
        while (true) {
          while (k < n && utf8::is_space(cps[k])) ++k;
          if (k >= n) break;
          if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
            size_t e = n;
            while (e > k && utf8::is_space(cps[e - 1])) --e;
            out.push_back(Value::string(utf8::encode(std::vector<uint32_t>(cps.begin() + k, cps.begin() + e))));
            break;
          }
          size_t b = k;
          while (k < n && !utf8::is_space(cps[k])) ++k;
          out.push_back(Value::string(utf8::encode(std::vector<uint32_t>(cps.begin() + b, cps.begin() + k))));
        }
        return Value::make_list(std::move(out));
      }
      if (!sep->is_string()) fail(line, name + "() separator must be a string");
      if (sep->s.empty()) fail(line, name + "(): empty separator");
      std::vector<std::string> parts;
      size_t start = 0;
      while (true) {
        size_t p = s.find(sep->s, start);
        if (p == std::string::npos) break;
        parts.push_back(s.substr(start, p - start));
        start = p + sep->s.size();
      }
      parts.push_back(s.substr(start));
      if (maxsplit >= 0 && int64_t(parts.size()) > maxsplit + 1) {
        std::vector<std::string> merged;
        if (name == "split") {
          merged.assign(parts.begin(), parts.begin() + maxsplit);
          std::string rest;
          for (size_t k = size_t(maxsplit); k < parts.size(); ++k) rest += (k > size_t(maxsplit) ? sep->s : "") + parts[k];
          merged.push_back(rest);
        } else {
          size_t keep = parts.size() - size_t(maxsplit);
          std::string head;
          for (size_t k = 0; k < keep; ++k) head += (k ? sep->s : "") + parts[k];
          merged.push_back(head);
          merged.insert(merged.end(), parts.begin() + keep, parts.end());
        }
        parts = std::move(merged);
      }
      for (auto& p : parts) out.push_back(Value::string(std::move(p)));
      return Value::make_list(std::move(out));
    }
    if (name == "replace") {
      const std::string& from = str_arg(0, "to replace");
      const std::string& to = str_arg(1, "replacement");
      const Value* countv = arg(a, 2, "count");
      int64_t count = countv && countv->type == T::Int ? countv->i : -1;
      std::string out;
      if (from.empty()) {
        // Python inserts `to` between every character (and at both ends).
        auto cps = utf8::code_points(s);
        int64_t done = 0;
        for (size_t k = 0; k <= cps.size(); ++k) {
          if (count < 0 || done < count) {
            out += to;
            ++done;
          }
          if (k < cps.size()) utf8::append(out, cps[k]);
          check_size(out.size(), line);
        }
        return Value::string(std::move(out));
      }
      size_t start = 0;
      int64_t done = 0;
      while (count < 0 || done < count) {
        size_t p = s.find(from, start);
        if (p == std::string::npos) break;
        out.append(s, start, p - start);
        out += to;
        check_size(out.size(), line);
        start = p + from.size();
        ++done;
      }
      out.append(s, start, std::string::npos);
      return Value::string(std::move(out));
    }
    if (name == "find" || name == "count" || name == "index" || name == "rfind") {
      const std::string& sub = str_arg(0, "to find");
      if (name == "count") {
        if (sub.empty()) return Value::integer(int64_t(utf8::code_points(s).size()) + 1);
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value::integer(n);
      }
      size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (p == std::string::npos) {
        if (name == "index") fail(line, "index(): substring not found");
        return Value::integer(-1);
      }
      return Value::integer(int64_t(utf8::code_points(s.substr(0, p)).size()));
    }
    if (name == "join") {
      if (a.pos.empty()) fail(line, "join() needs a list");
      std::string out;
      bool first = true;
      for (auto& e : iterate(*this, a.pos[0], "join", line)) {
        if (!e.is_string()) fail(line, std::string("join(): expected strings, got ") + e.type_name());
        if (!first) out += s;
        first = false;
        out += e.s;
        check_size(out.size(), line);
      }
      return Value::string(std::move(out));
    }
    if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isupper" || name == "islower") {
      auto cps = utf8::code_points(s);
      if (cps.empty()) return Value::boolean(false);
      if (name == "isupper") return Value::boolean(utf8::upper(s) == s && utf8::lower(s) != s);
      if (name == "islower") return Value::boolean(utf8::lower(s) == s && utf8::upper(s) != s);
      for (uint32_t cp : cps) {
        bool ok = name == "isdigit" ? (cp >= '0' && cp <= '9') : name == "isspace" ? utf8::is_space(cp)
                                                                                  : utf8::is_alnum(cp) && !(cp >= '0' && cp <= '9');
        if (!ok) return Value::boolean(false);
      }
      return Value::boolean(true);
    }
  } else if (obj.is_dict()) {
    if (name == "items" || name == "keys" || name == "values") {
      List out;
      for (auto& kv : obj.dict->items) {
        if (name == "items") out.push_back(Value::make_list({Value::string(kv.first), kv.second}));
        else if (name == "keys") out.push_back(Value::string(kv.first));
        else out.push_back(kv.second);
      }
      return Value::make_list(std::move(out));
    }
    if (name == "get") {
      if (a.pos.empty() || a.pos.size() > 2) fail(line, "get() takes a key and an optional default");
      const Value* v = a.pos[0].is_string() ? obj.dict->find(a.pos[0].s) : nullptr;
      if (v) return *v;
      return a.pos.size() > 1 ? a.pos[1] : Value::none();
    }
    if (name == "copy") return Value::make_dict(*obj.dict);
    if (name == "update") {
      if (!a.pos.empty()) {
        if (!a.pos[0].is_mapping_like()) fail(line, "update() needs a mapping");
        Dict src = *a.pos[0].dict;
        for (auto& kv : src.items) {
          if (holds_container(kv.second, obj.dict.get())) fail(line, "a dict cannot contain itself");
          obj.dict->set(kv.first, kv.second);
        }
      }
      for (auto& kv : a.kw) {
        if (holds_container(kv.second, obj.dict.get())) fail(line, "a dict cannot contain itself");
        obj.dict->set(kv.first, kv.second);
      }
      return Value::none();
    }
  } else if (obj.is_list()) {
    if (name == "append") {
      if (a.pos.size() != 1) fail(line, "append() takes exactly one argument");
      if (obj.list->size() >= limits_.max_output) fail(line, "list grew too large");
      if (holds_container(a.pos[0], obj.list.get())) fail(line, "a list cannot contain itself");
      obj.list->push_back(a.pos[0]);
      return Value::none();
    }
    if (name == "extend") {
      if (a.pos.size() != 1) fail(line, "extend() takes exactly one argument");
      List more = iterate(*this, a.pos[0], "extend", line);
      for (auto& e : more) {
        if (holds_container(e, obj.list.get())) fail(line, "a list cannot contain itself");
      }
      obj.list->insert(obj.list->end(), more.begin(), more.end());
      return Value::none();
    }
    if (name == "pop") {
      if (obj.list->empty()) fail(line, "pop from an empty list");
      int64_t n = int64_t(obj.list->size());
      int64_t k = a.pos.empty() ? n - 1 : a.pos[0].type == T::Int ? (a.pos[0].i < 0 ? a.pos[0].i + n : a.pos[0].i) : -1;
      if (k < 0 || k >= n) fail(line, "pop index out of range");
      Value v = (*obj.list)[k];
      obj.list->erase(obj.list->begin() + k);
      return v;
    }
    if (name == "index" || name == "count") {
      if (a.pos.size() != 1) fail(line, name + "() takes exactly one argument");
      int64_t n = 0;
      for (size_t k = 0; k < obj.list->size(); ++k) {
        if (values_equal((*obj.list)[k], a.pos[0])) {
          if (name == "index") return Value::integer(int64_t(k));
          ++n;
        }
      }
      if (name == "index") fail(line, "index(): value not in list");
      return Value::integer(n);
    }
  }
  *found = false;
  return Value::undefined();
}

}  // namespace hai::chat::jinja
