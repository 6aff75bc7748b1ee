// Run-time values of the Jinja interpreter: construction from JSON,
// truthiness, equality, and the three ways a value becomes text (output,
// str() and JSON).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "engine/chat/jinja.h"
#include "engine/chat/utf8.h"
#include "engine/common/error.h"

namespace hai::chat::jinja {

const Value* Dict::find(std::string_view key) const {
  for (auto& kv : items) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

Value* Dict::find(std::string_view key) {
  for (auto& kv : items) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  if (Value* old = find(key)) {
    *old = std::move(v);
  } else {
    items.emplace_back(key, std::move(v));
  }
}

const Value* Args::kwarg(std::string_view name) const {
  for (auto& kv : kw) {
    if (kv.first == name) return &kv.second;
  }
  return nullptr;
}

Value Value::make_list(List items) {
  Value v;
  v.type = Type::List;
  v.list = std::make_shared<List>(std::move(items));
  return v;
}

Value Value::make_dict(Dict d) {
  Value v;
  v.type = Type::Dict;
  v.dict = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::make_namespace(Dict d) {
  Value v;
  v.type = Type::Namespace;
  v.dict = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::callable(std::string name, std::function<Value(Interpreter&, Args&, int)> fn) {
  Value v;
  v.type = Type::Callable;
  v.fn = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth > 512) throw hai::Error("context JSON nested too deeply (more than 512 levels)");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return number(double(u));
      return integer(int64_t(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return number(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      l.reserve(j.size());
      for (auto& e : j) l.push_back(from_json(e, depth + 1));
      return make_list(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) d.items.emplace_back(it.key(), from_json(it.value(), depth + 1));
      return make_dict(std::move(d));
    }
    default: return undefined();  // binary / discarded: not produced by the JSON parser
  }
}

bool Value::truthy() const {
  switch (type) {
    case Type::Undefined: case Type::None: return false;
    case Type::Bool: return b;
    case Type::Int: return i != 0;
    case Type::Float: return f != 0.0;
    case Type::String: return !s.empty();
    case Type::List: return !list->empty();
    case Type::Dict: return !dict->items.empty();
    case Type::Namespace: case Type::Callable: return true;
  }
  return false;
}

const char* Value::type_name() const {
  switch (type) {
    case Type::Undefined: return "undefined";
    case Type::None: return "none";
    case Type::Bool: return "boolean";
    case Type::Int: return "integer";
    case Type::Float: return "float";
    case Type::String: return "string";
    case Type::List: return "list";
    case Type::Dict: return "dict";
    case Type::Namespace: return "namespace";
    case Type::Callable: return "callable";
  }
  return "value";
}

namespace {

// A double as JavaScript's Number.prototype.toString writes it: the shortest
// digits that read back to the same value, in fixed notation for exponents
// -7 < e < 21 and in exponent notation (1e+21, 1.5e-7) otherwise.
std::string js_number(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x < 0 ? "-Infinity" : "Infinity";
  if (x == 0) return "0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp10 = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (char c : mant) if (c != '.') digits += c;
  int k = int(digits.size());
  int n = exp10 + 1;
  std::string out;
  if (k <= n && n <= 21) {
    out = digits + std::string(n - k, '0');
  } else if (0 < n && n <= 21) {
    out = digits.substr(0, n) + "." + digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out = "0." + std::string(-n, '0') + digits;
  } else {
    out = digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += (n - 1 >= 0 ? "e+" : "e-") + std::to_string(std::abs(n - 1));
  }
  return sign + out;
}

std::string float_str(double x) {
  if (x == 0 && std::signbit(x)) return "-0.0";
  if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 1e21) return js_number(x) + ".0";
  return js_number(x);
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  size_t k = 0;
  while (k < s.size()) {
    unsigned char c = s[k];
    if (c < 0x80) {
      ++k;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += char(c);
          }
      }
      continue;
    }
    size_t start = k;
    uint32_t cp = utf8::decode(s, k);
    if (ensure_ascii) {
      char buf[16];
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      }
      out += buf;
    } else if (cp == utf8::kReplacement && !(k - start == 3 && s.compare(start, 3, "\xEF\xBF\xBD") == 0)) {
      out += "\xEF\xBF\xBD";  // an invalid byte becomes U+FFFD
    } else {
      out.append(s, start, k - start);
    }
  }
  out += '"';
}

void json_value(std::string& out, const Value& v, const JsonStyle& st, int depth, int line, bool undefined_as_null) {
  if (depth > 512) throw hai::Error("line " + std::to_string(line) + ": value nested too deeply for tojson");
  auto newline = [&](int d) {
    out += '\n';
    out.append(size_t(st.indent) * d, ' ');
  };
  switch (v.type) {
    case Value::Type::Undefined: out += undefined_as_null ? "null" : "undefined"; return;
    case Value::Type::None: out += "null"; return;
    case Value::Type::Bool: out += v.b ? "true" : "false"; return;
    case Value::Type::Int: out += std::to_string(v.i); return;
    case Value::Type::Float:
      out += std::isfinite(v.f) ? js_number(v.f) : "null";
      return;
    case Value::Type::String: json_string(out, v.s, st.ensure_ascii); return;
    case Value::Type::List: {
      out += '[';
      bool first = true;
      for (auto& e : *v.list) {
        if (!first) out += st.item_sep;
        first = false;
        if (st.indent > 0) newline(depth + 1);
        json_value(out, e, st, depth + 1, line, undefined_as_null);
      }
      if (st.indent > 0 && !v.list->empty()) newline(depth);
      out += ']';
      return;
    }
    case Value::Type::Dict:
    case Value::Type::Namespace: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (auto& kv : v.dict->items) items.push_back(&kv);
      if (st.sort_keys) {
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      out += '{';
      bool first = true;
      for (auto* kv : items) {
        if (!first) out += st.item_sep;
        first = false;
        if (st.indent > 0) newline(depth + 1);
        json_string(out, kv->first, st.ensure_ascii);
        out += st.key_sep;
        json_value(out, kv->second, st, depth + 1, line, undefined_as_null);
      }
      if (st.indent > 0 && !items.empty()) newline(depth);
      out += '}';
      return;
    }
    case Value::Type::Callable:
      throw hai::Error("line " + std::to_string(line) + ": a callable cannot be converted to JSON");
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonStyle& style, int line) {
  std::string out;
  json_value(out, v, style, 0, line, true);
  return out;
}

std::string to_str(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "";
    case Value::Type::None: return "None";
    case Value::Type::Bool: return v.b ? "true" : "false";
    case Value::Type::Int: return std::to_string(v.i);
    case Value::Type::Float: return float_str(v.f);
    case Value::Type::String: return v.s;
    case Value::Type::List:
    case Value::Type::Dict:
    case Value::Type::Namespace: {
      std::string out;
      json_value(out, v, JsonStyle{}, 0, 0, false);
      return out;
    }
    case Value::Type::Callable: return "<function " + v.fn->name + ">";
  }
  return "";
}

std::string to_output(const Value& v) {
  if (v.is_undefined() || v.is_none()) return "";
  return to_str(v);
}

int compare_values(const Value& a, const Value& b, bool case_sensitive, bool& ok) {
  using T = Value::Type;
  ok = true;
  bool an = a.type == T::Int || a.type == T::Float || a.type == T::Bool;
  bool bn = b.type == T::Int || b.type == T::Float || b.type == T::Bool;
  if (an && bn) {
    if (a.type == T::Int && b.type == T::Int) return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
    double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.type == T::String && b.type == T::String) {
    if (case_sensitive) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
    std::string x = utf8::lower(a.s), y = utf8::lower(b.s);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.type == T::None && b.type == T::None) return 0;
  if (a.type == T::List && b.type == T::List) {
    size_t n = std::min(a.list->size(), b.list->size());
    for (size_t k = 0; k < n; ++k) {
      int c = compare_values((*a.list)[k], (*b.list)[k], case_sensitive, ok);
      if (!ok || c != 0) return c;
    }
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size() ? 1 : 0;
  }
  ok = false;
  return 0;
}

bool holds_container(const Value& v, const void* target) {
  if ((v.list && v.list.get() == target) || (v.dict && v.dict.get() == target)) return true;
  if (v.list) {
    for (auto& e : *v.list) if (holds_container(e, target)) return true;
  } else if (v.dict) {
    for (auto& kv : v.dict->items) if (holds_container(kv.second, target)) return true;
  }
  return false;
}

bool values_equal(const Value& a, const Value& b) {
  using T = Value::Type;
  bool an = a.type == T::Int || a.type == T::Float || a.type == T::Bool;
  bool bn = b.type == T::Int || b.type == T::Float || b.type == T::Bool;
  if (an && bn) {
    if (a.type == T::Int && b.type == T::Int) return a.i == b.i;
    return a.as_double() == b.as_double();
  }
  if (a.type != b.type) return false;
  switch (a.type) {
    case T::Undefined: case T::None: return true;
    case T::String: return a.s == b.s;
    case T::List: {
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k) {
        if (!values_equal((*a.list)[k], (*b.list)[k])) return false;
      }
      return true;
    }
    case T::Dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (auto& kv : a.dict->items) {
        const Value* o = b.dict->find(kv.first);
        if (!o || !values_equal(kv.second, *o)) return false;
      }
      return true;
    }
    case T::Namespace: return a.dict == b.dict;
    case T::Callable: return a.fn == b.fn;
    default: return false;
  }
}

}  // namespace hai::chat::jinja
