// JSON schema -> GBNF.
//
// Every schema becomes one GBNF rule (named after where it sits, e.g.
// root-address-city); $ref targets are rules too, made once, so recursive
// schemas work. The grammar produces a subset of what the schema accepts,
// never more: whenever a keyword cannot be honoured exactly, the
// translation stops with hai::Error naming the JSON pointer of the keyword.
// Choices that keep the output small and bounded:
//   - properties come in the order the schema lists them; properties that
//     are not listed are produced only when additionalProperties is true or
//     a schema (never under a name that is listed);
//   - whitespace is at most one run (" " or a line break and up to 20
//     spaces/tabs) after '{', '[', ',' and ':' and before '}' and ']';
//   - numbers have at most 16 integer digits, 15 fraction digits and a
//     2-digit exponent; bounded numbers (minimum / maximum / exclusive*) use
//     integer bounds and no exponent;
//   - \u escapes in strings never encode surrogates, so every string decodes
//     to valid Unicode and minLength / maxLength count code points exactly.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <functional>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/common/error.h"
#include "engine/common/utf8.h"
#include "engine/grammar/grammar.h"
#include "engine/grammar/pattern.h"

namespace hai::grammar {
namespace {

using json = nlohmann::ordered_json;

const std::set<std::string> kAnnotations = {"title",   "description", "$schema",  "$id",       "$comment",
                                             "examples", "default",    "deprecated", "readOnly", "writeOnly",
                                             "$defs",   "definitions", "$anchor"};

const std::set<std::string> kObjectKeys = {"properties", "required", "additionalProperties", "minProperties",
                                           "maxProperties"};
const std::set<std::string> kArrayKeys = {"items", "prefixItems", "minItems", "maxItems", "uniqueItems"};
const std::set<std::string> kStringKeys = {"minLength", "maxLength", "format", "pattern"};
const std::set<std::string> kNumberKeys = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                           "multipleOf"};

constexpr int64_t kMaxInt = 999999999999999;  // 15 digits: the bound used for an unbounded side

std::string escape_pointer_token(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

// A GBNF string literal for arbitrary bytes (valid UTF-8 passes through).
std::string gbnf_literal(const std::string& bytes) {
  std::string out = "\"";
  for (unsigned char c : bytes) {
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A code point as an escape usable inside a GBNF class.
std::string class_char(uint32_t cp) {
  char buf[16];
  if (cp < 0x10000) std::snprintf(buf, sizeof buf, "\\u%04X", cp);
  else std::snprintf(buf, sizeof buf, "\\U%08X", cp);
  return buf;
}


std::vector<uint32_t> decode_utf8(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += static_cast<size_t>(len);
  }
  return out;
}

std::string json_type_of(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number()) return (std::floor(v.get<double>()) == v.get<double>()) ? "integer" : "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

bool type_admits(const std::string& type, const json& v) {
  const std::string t = json_type_of(v);
  return type == t || (type == "number" && t == "integer");
}

// ------------------------------------------------------------ digit ranges

std::string digits_class(char lo, char hi) {
  if (lo == hi) return std::string("\"") + lo + "\"";
  return std::string("[") + lo + "-" + hi + "]";
}

// Decimal strings of exactly x.size() digits from x to y (same length, x <= y).
std::string same_length_range(const std::string& x, const std::string& y) {
  if (x.empty()) return "";
  const size_t n = x.size();
  if (x == y) return gbnf_literal(x);
  if (x[0] == y[0]) return gbnf_literal(x.substr(0, 1)) + " " + same_length_range(x.substr(1), y.substr(1));
  const std::string rest_x = x.substr(1), rest_y = y.substr(1);
  const bool x_low = rest_x == std::string(n - 1, '0');
  const bool y_high = rest_y == std::string(n - 1, '9');
  std::vector<std::string> alts;
  char from = x[0], to = y[0];
  if (!x_low) {
    alts.push_back(gbnf_literal(x.substr(0, 1)) + " (" + same_length_range(rest_x, std::string(n - 1, '9')) + ")");
    ++from;
  }
  if (!y_high) --to;
  if (from <= to) {
    std::string a = digits_class(from, to);
    if (n > 1) a += " [0-9]{" + std::to_string(n - 1) + "}";
    alts.push_back(a);
  }
  if (!y_high)
    alts.push_back(gbnf_literal(y.substr(0, 1)) + " (" + same_length_range(std::string(n - 1, '0'), rest_y) + ")");
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return "(" + out + ")";
}

// Non-negative integers from a to b (a <= b), without leading zeros.
std::string uint_range(int64_t a, int64_t b) {
  std::vector<std::string> alts;
  const std::string sa = std::to_string(a), sb = std::to_string(b);
  for (size_t len = sa.size(); len <= sb.size(); ++len) {
    std::string lo = sa;
    if (len != sa.size()) {
      lo.assign(len, '0');
      lo[0] = '1';
    }
    const std::string hi = len == sb.size() ? sb : std::string(len, '9');
    alts.push_back(same_length_range(lo, hi));
  }
  std::string out;
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return "(" + out + ")";
}

// ------------------------------------------------------------ converter

class Converter {
 public:
  explicit Converter(const json& root) : root_(root) {}

  std::string convert() {
    used_names_.insert("root");
    const std::string top = visit(root_, "", "root");
    std::string out = "root ::= " + top + "\n";
    for (const auto& name : order_) out += name + " ::= " + rules_[name] + "\n";
    return out;
  }

 private:
  const json& root_;
  std::map<std::string, std::string> rules_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> ref_rules_;  // pointer -> rule name
  std::set<std::string> used_names_;
  static constexpr int kMaxDepth = 64;
  int depth_ = 0;

  [[noreturn]] static void fail(const std::string& ptr, const std::string& what) {
    throw Error("JSON schema at '" + (ptr.empty() ? std::string("#") : "#" + ptr) + "': " + what);
  }

  std::string fresh_name(const std::string& hint) {
    std::string base;
    for (char c : hint) base += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '-';
    if (base.empty()) base = "r";
    if (base.size() > 60) base.resize(60);
    std::string name = base;
    for (int i = 2; used_names_.count(name); ++i) name = base + "-" + std::to_string(i);
    used_names_.insert(name);
    return name;
  }

  void define(const std::string& name, const std::string& body) {
    if (!rules_.count(name)) order_.push_back(name);
    rules_[name] = body;
  }

  // Named helper rules shared by all schemas.
  std::string prim(const std::string& name) {
    static const std::map<std::string, std::string> kPrims = {
        {"ws", R"(( " " | "\n" [ \t]{0,20} )?)"},
        {"char", R"([^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" hex4 ))"},
        // \u escapes without surrogates (D800-DFFF).
        {"hex4", R"(( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ))"},
        {"string", R"("\"" char* "\"")"},
        {"number", R"("-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,2} )?)"},
        {"integer", R"("-"? ( "0" | [1-9] [0-9]{0,15} ))"},
        {"boolean", R"("true" | "false")"},
        {"null", R"("null")"},
        {"value", R"(object | array | string | number | boolean | null)"},
        {"object", R"("{" ws ( string ":" ws value ( "," ws string ":" ws value )* ws )? "}")"},
        {"array", R"("[" ws ( value ( "," ws value )* ws )? "]")"},
        {"date", R"([0-9]{4} "-" ( ( "0" [13578] | "1" [02] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) | ( "0" [469] | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ) ))"},
        {"time", R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))"},
        {"uuid", R"([0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12})"},
    };
    static const std::map<std::string, std::vector<std::string>> kDeps = {
        {"char", {"hex4"}},
        {"string", {"char"}},
        {"value", {"object", "array", "string", "number", "boolean", "null"}},
        {"object", {"ws", "string", "value"}},
        {"array", {"ws", "value"}},
    };
    if (!rules_.count(name)) {
      used_names_.insert(name);
      define(name, kPrims.at(name));
      if (auto d = kDeps.find(name); d != kDeps.end())
        for (const auto& dep : d->second) prim(dep);
    }
    return name;
  }

  const json& resolve(const std::string& ref, const std::string& ptr) {
    if (ref.empty() || ref[0] != '#')
      fail(ptr + "/$ref", "only references inside the schema (#/$defs/..., #/definitions/...) are supported, got '" +
                              ref + "'");
    const json* cur = &root_;
    size_t i = 1;
    while (i < ref.size()) {
      if (ref[i] != '/') fail(ptr + "/$ref", "malformed reference '" + ref + "'");
      size_t j = ref.find('/', i + 1);
      if (j == std::string::npos) j = ref.size();
      std::string tok = ref.substr(i + 1, j - i - 1);
      std::string un;
      for (size_t k = 0; k < tok.size(); ++k) {
        if (tok[k] == '~' && k + 1 < tok.size() && (tok[k + 1] == '0' || tok[k + 1] == '1')) {
          un += tok[k + 1] == '0' ? '~' : '/';
          ++k;
        } else {
          un += tok[k];
        }
      }
      if (cur->is_object() && cur->contains(un)) {
        cur = &(*cur)[un];
      } else if (cur->is_array() && !un.empty() && un.size() < 10 && std::all_of(un.begin(), un.end(), ::isdigit) &&
                 std::stoul(un) < cur->size()) {
        cur = &(*cur)[std::stoul(un)];
      } else {
        fail(ptr + "/$ref", "reference '" + ref + "' points to nothing");
      }
      i = j;
    }
    return *cur;
  }

  // The keywords of `s` that are not annotations.
  static std::vector<std::string> keywords(const json& s) {
    std::vector<std::string> k;
    for (auto it = s.begin(); it != s.end(); ++it)
      if (!kAnnotations.count(it.key())) k.push_back(it.key());
    return k;
  }

  // Returns a GBNF expression (usually a rule name) for schema `s` at `ptr`.
  std::string visit(const json& s, const std::string& ptr, const std::string& hint) {
    struct Depth {
      int& d;
      explicit Depth(int& x) : d(x) { ++d; }
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > kMaxDepth) fail(ptr, "schema nested more than " + std::to_string(kMaxDepth) + " deep");
    if (s.is_boolean()) {
      if (!s.get<bool>()) fail(ptr, "the schema false accepts no value");
      return prim("value");
    }
    if (!s.is_object()) fail(ptr, "a schema must be an object or a boolean, got " + std::string(s.type_name()));
    const std::vector<std::string> keys = keywords(s);
    auto has = [&](const char* k) { return s.contains(k); };

    if (has("$ref")) {
      if (!s["$ref"].is_string()) fail(ptr + "/$ref", "$ref must be a string");
      if (keys.size() > 1) return visit_all_of(s, ptr, hint);
      const std::string ref = s["$ref"].get<std::string>();
      auto it = ref_rules_.find(ref);
      if (it != ref_rules_.end()) return it->second;
      const std::string name = fresh_name(ref.size() > 1 ? "ref" + ref.substr(1) : "ref-root");
      ref_rules_[ref] = name;
      const json& target = resolve(ref, ptr);
      define(name, "");  // reserve the name (recursion)
      define(name, visit(target, ref.substr(1), name + "-body"));
      return name;
    }
    if (has("allOf")) return visit_all_of(s, ptr, hint);
    if (has("anyOf") || has("oneOf")) {
      const char* kw = has("anyOf") ? "anyOf" : "oneOf";
      if (has("anyOf") && has("oneOf")) fail(ptr, "anyOf together with oneOf is not supported");
      for (const auto& k : keys)
        if (k != kw) fail(ptr + "/" + escape_pointer_token(k), "'" + k + "' beside " + kw + " is not supported; move it into every branch");
      const json& branches = s[kw];
      if (!branches.is_array() || branches.empty()) fail(ptr + "/" + kw, std::string(kw) + " must be a non-empty array");
      if (std::string(kw) == "oneOf") check_one_of(branches, ptr + "/oneOf");
      std::string body;
      for (size_t i = 0; i < branches.size(); ++i)
        body += (i ? " | " : "") + visit(branches[i], ptr + "/" + kw + "/" + std::to_string(i), hint + "-" + std::to_string(i));
      return define_rule(hint, body);
    }
    if (has("const") || has("enum")) return visit_enum(s, ptr, hint);
    for (const auto& k : keys) {
      if (k == "type" || kObjectKeys.count(k) || kArrayKeys.count(k) || kStringKeys.count(k) || kNumberKeys.count(k))
        continue;
      fail(ptr + "/" + escape_pointer_token(k), "unsupported keyword '" + k + "'");
    }

    std::vector<std::string> types;
    if (has("type")) {
      const json& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const auto& x : t) {
          if (!x.is_string()) fail(ptr + "/type", "type must be a string or an array of strings");
          types.push_back(x.get<std::string>());
        }
      } else {
        fail(ptr + "/type", "type must be a string or an array of strings");
      }
    } else {
      // No type: the type the keywords talk about; none -> any value.
      for (const auto& k : keys) {
        std::string t = kObjectKeys.count(k) ? "object" : kArrayKeys.count(k) ? "array"
                        : kStringKeys.count(k) ? "string" : kNumberKeys.count(k) ? "number" : "";
        if (!t.empty() && std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
      }
      if (types.size() > 1) fail(ptr, "keywords of several types without 'type'; add a 'type'");
      if (types.empty()) return prim("value");
    }
    // Keywords that do not belong to any of the types would be ignored by a
    // validator: harmless. Keywords of a type are honoured below.
    std::string body;
    for (size_t i = 0; i < types.size(); ++i) {
      const std::string& t = types[i];
      std::string e;
      const std::string h = types.size() == 1 ? hint : hint + "-" + t;
      if (t == "object") e = visit_object(s, ptr, h);
      else if (t == "array") e = visit_array(s, ptr, h);
      else if (t == "string") e = visit_string(s, ptr, h);
      else if (t == "number" || t == "integer") e = visit_number(s, ptr, t == "integer");
      else if (t == "boolean") e = prim("boolean");
      else if (t == "null") e = prim("null");
      else fail(ptr + "/type", "unknown type '" + t + "'");
      body += (i ? " | " : "") + e;
    }
    return types.size() == 1 ? body : define_rule(hint, body);
  }

  std::string define_rule(const std::string& hint, const std::string& body) {
    const std::string name = fresh_name(hint);
    define(name, body);
    return name;
  }

  std::string visit_enum(const json& s, const std::string& ptr, const std::string& hint) {
    std::vector<std::string> types;
    for (const auto& k : keywords(s)) {
      if (k == "const" || k == "enum") continue;
      if (k != "type") fail(ptr + "/" + escape_pointer_token(k), "'" + k + "' beside const/enum is not supported");
    }
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) types.push_back(t.get<std::string>());
      else if (t.is_array()) for (const auto& x : t) if (x.is_string()) types.push_back(x.get<std::string>());
    }
    std::vector<json> values;
    if (s.contains("const")) values.push_back(s["const"]);
    if (s.contains("enum")) {
      if (!s["enum"].is_array() || s["enum"].empty()) fail(ptr + "/enum", "enum must be a non-empty array");
      for (const auto& v : s["enum"])
        if (!s.contains("const") || v == s["const"]) values.push_back(v);
      if (s.contains("const")) values.erase(values.begin());
    }
    std::string body;
    int n = 0;
    for (const auto& v : values) {
      bool ok = types.empty();
      for (const auto& t : types) ok = ok || type_admits(t, v);
      if (!ok) continue;
      body += (n++ ? " | " : "") + gbnf_literal(v.dump());
    }
    if (n == 0) fail(ptr, "no value of const/enum satisfies the schema");
    return n == 1 ? body : define_rule(hint, body);
  }

  // allOf (and $ref with siblings): object schemas with properties and
  // required only, merged into one.
  std::string visit_all_of(const json& s, const std::string& ptr, const std::string& hint) {
    std::vector<std::pair<json, std::string>> parts;  // (schema, pointer)
    json rest = json::object();
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (it.key() == "allOf") {
        if (!it.value().is_array() || it.value().empty()) fail(ptr + "/allOf", "allOf must be a non-empty array");
        for (size_t i = 0; i < it.value().size(); ++i) parts.push_back({it.value()[i], ptr + "/allOf/" + std::to_string(i)});
      } else if (it.key() == "$ref") {
        parts.push_back({json{{"$ref", it.value()}}, ptr});
      } else if (!kAnnotations.count(it.key())) {
        rest[it.key()] = it.value();
      }
    }
    if (!rest.empty()) parts.push_back({rest, ptr});
    if (parts.size() == 1) return visit(parts[0].first, parts[0].second, hint);
    json merged = {{"type", "object"}, {"properties", json::object()}, {"required", json::array()}};
    for (auto& [part, pptr] : parts) {
      const json* p = &part;
      std::string pp = pptr;
      for (int depth = 0; p->is_object() && p->contains("$ref"); ++depth) {
        if (depth > 32) fail(pp, "$ref chain too long");
        if (keywords(*p).size() > 1) fail(pp, "allOf: a part with $ref and other keywords is not supported");
        const std::string ref = (*p)["$ref"].get<std::string>();
        p = &resolve(ref, pp);
        pp = ref.substr(1);
      }
      if (!p->is_object()) fail(pp, "allOf is supported for object schemas only");
      for (auto it = p->begin(); it != p->end(); ++it) {
        const std::string& k = it.key();
        if (kAnnotations.count(k)) continue;
        if (k == "type") {
          if (it.value() != "object") fail(pp + "/type", "allOf is supported for object schemas only");
        } else if (k == "properties") {
          if (!it.value().is_object()) fail(pp + "/properties", "properties must be an object");
          for (auto pr = it.value().begin(); pr != it.value().end(); ++pr) {
            if (merged["properties"].contains(pr.key()) && merged["properties"][pr.key()] != pr.value())
              fail(pp + "/properties/" + escape_pointer_token(pr.key()),
                   "allOf: property '" + pr.key() + "' is given two different schemas");
            merged["properties"][pr.key()] = pr.value();
          }
        } else if (k == "required") {
          if (!it.value().is_array()) fail(pp + "/required", "required must be an array of strings");
          for (const auto& r : it.value())
            if (std::find(merged["required"].begin(), merged["required"].end(), r) == merged["required"].end())
              merged["required"].push_back(r);
        } else {
          fail(pp + "/" + escape_pointer_token(k), "allOf: keyword '" + k +
                                                       "' in a part is not supported (only type object, properties, required)");
        }
      }
    }
    merged["additionalProperties"] = false;  // only listed properties are produced
    return visit_object(merged, ptr, hint);
  }

  // ---- oneOf: every value one branch produces must fail every other branch.

  static std::set<std::string> produced_types(const json& s) {
    std::set<std::string> out;
    if (!s.is_object()) return {"null", "boolean", "integer", "number", "string", "array", "object"};
    if (s.contains("const")) out.insert(json_type_of(s["const"]));
    if (s.contains("enum") && s["enum"].is_array())
      for (const auto& v : s["enum"]) out.insert(json_type_of(v));
    if (!out.empty()) return out;
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) out.insert(t.get<std::string>());
      if (t.is_array()) for (const auto& x : t) if (x.is_string()) out.insert(x.get<std::string>());
      if (out.count("number")) out.insert("integer");
      return out;
    }
    return {"null", "boolean", "integer", "number", "string", "array", "object"};
  }

  static std::set<std::string> accepted_types(const json& s) {
    std::set<std::string> out = produced_types(s);
    if (out.count("integer")) out.insert("number");  // 1.0 is an integer to a validator
    return out;
  }

  static bool finite_values(const json& s, std::vector<json>& vals) {
    if (!s.is_object()) return false;
    if (s.contains("const")) {
      vals = {s["const"]};
      return true;
    }
    if (s.contains("enum") && s["enum"].is_array()) {
      vals.assign(s["enum"].begin(), s["enum"].end());
      return true;
    }
    return false;
  }

  static bool values_disjoint(const json& a, const json& b) {
    std::vector<json> va, vb;
    if (!finite_values(a, va) || !finite_values(b, vb)) return false;
    for (const auto& x : va)
      for (const auto& y : vb)
        if (x == y) return false;
    return true;
  }

  // Whether every value generated from `a` surely fails `b`.
  bool surely_fails(const json& a0, const json& b0, const std::string& ptr) {
    const json& a = deref(a0, ptr);
    const json& b = deref(b0, ptr);
    const auto ta = produced_types(a), tb = accepted_types(b);
    bool overlap = false;
    for (const auto& t : ta) overlap = overlap || tb.count(t);
    if (!overlap) return true;
    if (values_disjoint(a, b)) return true;
    if (ta == std::set<std::string>{"object"} && a.is_object() && b.is_object()) {
      const json empty = json::object();
      const json& pa = a.contains("properties") ? a["properties"] : empty;
      const json& pb = b.contains("properties") ? b["properties"] : empty;
      const bool a_extras = a.contains("additionalProperties") ? a["additionalProperties"] != false : !a.contains("properties");
      const bool b_closed = b.contains("additionalProperties") && b["additionalProperties"] == false;
      std::set<std::string> ra, rb;
      if (a.contains("required")) for (const auto& r : a["required"]) if (r.is_string()) ra.insert(r.get<std::string>());
      if (b.contains("required")) for (const auto& r : b["required"]) if (r.is_string()) rb.insert(r.get<std::string>());
      for (const auto& q : rb)
        if (!pa.contains(q) && !ra.count(q) && !a_extras) return true;  // b needs q, a never writes it
      for (const auto& p : ra) {
        if (b_closed && !pb.contains(p)) return true;  // a always writes p, b forbids it
        if (pa.contains(p) && pb.contains(p) && values_disjoint(deref(pa[p], ptr), deref(pb[p], ptr))) return true;
      }
    }
    return false;
  }

  const json& deref(const json& s, const std::string& ptr) {
    const json* p = &s;
    for (int i = 0; i < 32 && p->is_object() && p->contains("$ref") && (*p)["$ref"].is_string(); ++i)
      p = &resolve((*p)["$ref"].get<std::string>(), ptr);
    return *p;
  }

  void check_one_of(const json& branches, const std::string& ptr) {
    if (!branches.is_array()) return;
    for (size_t i = 0; i < branches.size(); ++i)
      for (size_t j = 0; j < branches.size(); ++j)
        if (i != j && !surely_fails(branches[i], branches[j], ptr))
          fail(ptr, "branches " + std::to_string(i) + " and " + std::to_string(j) +
                        " may both match one value, which oneOf forbids; use anyOf, or tell the branches apart "
                        "(different types, const/enum values of a required property, or additionalProperties false)");
  }

  // ---- objects

  std::string visit_object(const json& s, const std::string& ptr, const std::string& hint) {
    const json empty = json::object();
    const json& props = s.contains("properties") ? s["properties"] : empty;
    if (!props.is_object()) fail(ptr + "/properties", "properties must be an object");
    std::vector<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail(ptr + "/required", "required must be an array of strings");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) fail(ptr + "/required", "required must be an array of strings");
        required.push_back(r.get<std::string>());
      }
    }
    // Extra (unlisted) properties: only when asked for explicitly, or when
    // the schema lists no properties at all.
    const json* extra = nullptr;
    json any = true;
    if (s.contains("additionalProperties")) {
      const json& ap = s["additionalProperties"];
      if (!ap.is_boolean() && !ap.is_object()) fail(ptr + "/additionalProperties", "must be a boolean or a schema");
      if (ap != false) extra = &ap;
    } else if (props.empty()) {
      extra = &any;
    }
    struct Prop {
      std::string name;
      std::string value;  // GBNF expression
      bool required;
    };
    std::vector<Prop> list;
    std::set<std::string> names;
    for (auto it = props.begin(); it != props.end(); ++it) {
      const bool req = std::find(required.begin(), required.end(), it.key()) != required.end();
      list.push_back({it.key(), visit(it.value(), ptr + "/properties/" + escape_pointer_token(it.key()),
                                      hint + "-" + it.key()),
                      req});
      names.insert(it.key());
    }
    for (const auto& r : required) {
      if (names.count(r)) continue;
      if (!extra) fail(ptr + "/required", "required property '" + r + "' is not allowed by additionalProperties");
      list.push_back({r, visit(*extra, ptr + "/additionalProperties", hint + "-" + r), true});
      names.insert(r);
    }
    size_t n_required = 0;
    for (const auto& p : list) n_required += p.required;
    if (s.contains("minProperties")) {
      const json& m = s["minProperties"];
      if (!m.is_number_unsigned() && !m.is_number_integer()) fail(ptr + "/minProperties", "must be an integer");
      if (m.get<int64_t>() > static_cast<int64_t>(n_required))
        fail(ptr + "/minProperties", "minProperties above the number of required properties is not supported");
    }
    if (s.contains("maxProperties")) {
      const json& m = s["maxProperties"];
      if (!m.is_number_unsigned() && !m.is_number_integer()) fail(ptr + "/maxProperties", "must be an integer");
      if (extra || m.get<int64_t>() < static_cast<int64_t>(list.size()))
        fail(ptr + "/maxProperties", "maxProperties below the number of properties the schema allows is not supported");
    }
    prim("ws");
    std::string extra_kv;
    if (extra) {
      const std::string v = visit(*extra, ptr + "/additionalProperties", hint + "-additional");
      extra_kv = define_rule(hint + "-extra-kv", key_not_in(names, hint) + " \":\" ws " + v);
    }
    // rest(i, comma): the properties from i on; `comma` says whether one
    // was written already (so the next needs a comma first).
    std::map<std::pair<size_t, bool>, std::string> memo;
    std::function<std::string(size_t, bool)> rest = [&](size_t i, bool comma) -> std::string {
      if (i == list.size()) {
        if (!extra) return "";
        if (comma) return "( \",\" ws " + extra_kv + " )*";
        return "( " + extra_kv + " ( \",\" ws " + extra_kv + " )* )?";
      }
      auto key = std::make_pair(i, comma);
      if (auto m = memo.find(key); m != memo.end()) return m->second;
      const Prop& p = list[i];
      const std::string kv = std::string(comma ? "\",\" ws " : "") + gbnf_literal(json(p.name).dump()) +
                             " \":\" ws " + p.value;
      std::string body;
      if (p.required) {
        body = kv + " " + rest(i + 1, true);
      } else {
        body = "( " + kv + " " + rest(i + 1, true) + " | " + rest(i + 1, comma) + " )";
      }
      // Long chains of optional properties: name the tails so the text stays linear.
      std::string out = body;
      if (!p.required) out = define_rule(hint + "-tail", body);
      memo[key] = out;
      return out;
    };
    std::string inner = rest(0, false);
    if (inner.empty()) return define_rule(hint, "\"{\" ws \"}\"");
    if (n_required == 0) {
      // May be empty: "{" ws "}" or "{" ws props ws "}".
      return define_rule(hint, "\"{\" ws ( " + inner + " ws )? \"}\"");
    }
    return define_rule(hint, "\"{\" ws " + inner + " ws \"}\"");
  }

  // A JSON string key (without escapes) that is none of `names`.
  std::string key_not_in(const std::set<std::string>& names, const std::string& hint) {
    prim("string");
    const std::string kchar = R"([^"\\\x00-\x1F])";
    if (names.empty()) return "string";
    struct Node {
      std::map<uint32_t, int> kids;
      bool terminal = false;
    };
    std::vector<Node> trie(1);
    for (const auto& n : names) {
      int cur = 0;
      bool usable = true;
      for (uint32_t cp : decode_utf8(n)) {
        if (cp == '"' || cp == '\\' || cp < 0x20) {
          usable = false;  // such a name cannot be written without escapes, so no key equals it
          break;
        }
        auto it = trie[cur].kids.find(cp);
        if (it == trie[cur].kids.end()) {
          trie.push_back({});
          it = trie[cur].kids.emplace(cp, static_cast<int>(trie.size() - 1)).first;
        }
        cur = it->second;
      }
      if (usable) trie[cur].terminal = true;
    }
    const std::string base = fresh_name(hint + "-key");
    std::function<std::string(int)> rule = [&](int node) -> std::string {
      const std::string name = node == 0 ? base : fresh_name(hint + "-key");
      std::vector<std::string> alts;
      if (!trie[node].terminal) alts.push_back("\"\\\"\"");
      std::string cls = "[^\"\\\\\\x00-\\x1F";
      for (const auto& [cp, kid] : trie[node].kids) cls += class_char(cp);
      cls += "]";
      alts.push_back(cls + " " + kchar + "* \"\\\"\"");
      for (const auto& [cp, kid] : trie[node].kids) {
        std::string tmp;
        utf8::append(tmp, cp);
        alts.push_back(gbnf_literal(tmp) + " " + rule(kid));
      }
      std::string body;
      for (size_t i = 0; i < alts.size(); ++i) body += (i ? " | " : "") + alts[i];
      define(name, body);
      return name;
    };
    rule(0);
    return "\"\\\"\" " + base;
  }

  // ---- arrays

  static int64_t get_count(const json& s, const char* key, const std::string& ptr, int64_t dflt) {
    if (!s.contains(key)) return dflt;
    const json& v = s[key];
    if (!(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)))
      fail(ptr + "/" + key, std::string(key) + " must be a non-negative integer");
    const int64_t x = v.get<int64_t>();
    if (x > 100000) fail(ptr + "/" + key, std::string(key) + " above 100000 is not supported");
    return x;
  }

  std::string visit_array(const json& s, const std::string& ptr, const std::string& hint) {
    const int64_t min = get_count(s, "minItems", ptr, 0);
    int64_t max = get_count(s, "maxItems", ptr, -1);
    if (max >= 0 && max < min) fail(ptr + "/maxItems", "maxItems is less than minItems");
    if (s.contains("uniqueItems")) {
      if (!s["uniqueItems"].is_boolean()) fail(ptr + "/uniqueItems", "must be a boolean");
      if (s["uniqueItems"] == true && !(max >= 0 && max <= 1))
        fail(ptr + "/uniqueItems", "uniqueItems true is not supported (unless maxItems <= 1)");
    }
    std::vector<std::string> prefix;
    if (s.contains("prefixItems")) {
      const json& p = s["prefixItems"];
      if (!p.is_array()) fail(ptr + "/prefixItems", "prefixItems must be an array of schemas");
      for (size_t i = 0; i < p.size(); ++i)
        prefix.push_back(visit(p[i], ptr + "/prefixItems/" + std::to_string(i), hint + "-" + std::to_string(i)));
    }
    std::string item;  // empty: no items after the prefix
    if (s.contains("items")) {
      const json& it = s["items"];
      if (it.is_array()) fail(ptr + "/items", "items as an array is the old tuple form; use prefixItems");
      if (it == false) {
        if (max < 0 || max > static_cast<int64_t>(prefix.size())) max = static_cast<int64_t>(prefix.size());
      } else {
        item = visit(it, ptr + "/items", hint + "-item");
      }
    } else {
      item = prim("value");
    }
    if (min > static_cast<int64_t>(prefix.size()) && item.empty())
      fail(ptr + "/minItems", "minItems is larger than the items allowed");
    prim("ws");
    // elements(i): the elements from index i on (i elements written).
    std::function<std::string(int64_t)> elements = [&](int64_t i) -> std::string {
      if (max >= 0 && i >= max) return "";
      const std::string sep = i > 0 ? "\",\" ws " : "";
      if (i >= static_cast<int64_t>(prefix.size())) {
        if (item.empty()) return "";
        // Tail of identical items: mandatory ones, then optional ones.
        const int64_t need = std::max<int64_t>(0, min - i);
        std::string out;
        for (int64_t k = 0; k < need; ++k) out += (k == 0 && i == 0 ? "" : "\",\" ws ") + item + " ";
        const int64_t written = i + need;
        if (max < 0) {
          if (written > 0) out += "( \",\" ws " + item + " )*";
          else out += "( " + item + " ( \",\" ws " + item + " )* )?";
        } else if (max > written) {
          const int64_t more = max - written;
          if (written > 0) out += "( \",\" ws " + item + " ){0," + std::to_string(more) + "}";
          else out += "( " + item + " ( \",\" ws " + item + " ){0," + std::to_string(more - 1) + "} )?";
        }
        return out;
      }
      const std::string cur = sep + prefix[static_cast<size_t>(i)] + " " + elements(i + 1);
      if (i < min) return cur;
      return "( " + cur + " )?";
    };
    const std::string inner = elements(0);
    if (min == 0) return define_rule(hint, "\"[\" ws ( " + inner + " ws )? \"]\"");
    return define_rule(hint, "\"[\" ws " + inner + " ws \"]\"");
  }

  // ---- strings

  std::string visit_string(const json& s, const std::string& ptr, const std::string& hint) {
    if (s.contains("pattern")) {
      const std::string where = "JSON schema at '#" + ptr + "/pattern'";
      if (!s["pattern"].is_string()) fail(ptr + "/pattern", "pattern must be a string");
      for (const char* k : {"format", "minLength", "maxLength"})
        if (s.contains(k)) fail(ptr + "/" + k, std::string(k) + " together with pattern is not supported");
      prim("string");
      return define_rule(hint, "\"\\\"\" ( " + pattern_to_gbnf(s["pattern"].get<std::string>(), where) + " ) \"\\\"\"");
    }
    if (s.contains("format")) {
      if (!s["format"].is_string()) fail(ptr + "/format", "format must be a string");
      const std::string f = s["format"].get<std::string>();
      if (s.contains("minLength") || s.contains("maxLength"))
        fail(ptr + "/format", "format together with minLength/maxLength is not supported");
      if (f == "date") return define_rule(hint, "\"\\\"\" " + prim("date") + " \"\\\"\"");
      if (f == "time") return define_rule(hint, "\"\\\"\" " + prim("time") + " \"\\\"\"");
      if (f == "date-time")
        return define_rule(hint, "\"\\\"\" " + prim("date") + " \"T\" " + prim("time") + " \"\\\"\"");
      if (f == "uuid") return define_rule(hint, "\"\\\"\" " + prim("uuid") + " \"\\\"\"");
      fail(ptr + "/format", "format '" + f + "' is not supported (supported: date, time, date-time, uuid)");
    }
    const int64_t min = get_count(s, "minLength", ptr, 0);
    const int64_t max = get_count(s, "maxLength", ptr, -1);
    if (max >= 0 && max < min) fail(ptr + "/maxLength", "maxLength is less than minLength");
    if (min == 0 && max < 0) return prim("string");
    prim("char");
    const std::string rep = max < 0 ? "{" + std::to_string(min) + ",}"
                                    : "{" + std::to_string(min) + "," + std::to_string(max) + "}";
    return define_rule(hint, "\"\\\"\" char" + rep + " \"\\\"\"");
  }

  // ---- numbers

  std::string visit_number(const json& s, const std::string& ptr, bool integer) {
    if (s.contains("multipleOf")) fail(ptr + "/multipleOf", "multipleOf is not supported");
    bool bounded = false;
    // Integer bounds [lo, hi] that keep every produced number inside the
    // schema's bounds (for non-integer bounds the range is narrowed).
    double lo = -static_cast<double>(kMaxInt), hi = static_cast<double>(kMaxInt);
    for (const char* k : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
      if (!s.contains(k)) continue;
      const json& v = s[k];
      if (!v.is_number()) fail(ptr + "/" + k, std::string(k) + " must be a number");
      const double x = v.get<double>();
      if (std::fabs(x) > static_cast<double>(kMaxInt)) fail(ptr + "/" + k, "bounds beyond 1e15 are not supported");
      bounded = true;
      const std::string key = k;
      if (key == "minimum") lo = std::max(lo, std::ceil(x));
      else if (key == "exclusiveMinimum") lo = std::max(lo, std::floor(x) + 1);
      else if (key == "maximum") hi = std::min(hi, std::floor(x));
      else hi = std::min(hi, std::ceil(x) - 1);
    }
    if (!bounded) return prim(integer ? "integer" : "number");
    if (lo > hi)
      fail(ptr, "no " + std::string(integer ? "integer" : "number with an integer part") +
                    " fits between the bounds (number bounds are honoured in whole numbers)");
    const int64_t a = static_cast<int64_t>(lo), b = static_cast<int64_t>(hi);
    std::vector<std::string> alts;
    if (integer) {
      if (a < 0) alts.push_back("\"-\" " + uint_range(std::max<int64_t>(-b, 1), -a));
      if (b >= 0) alts.push_back(uint_range(std::max<int64_t>(a, 0), b));
    } else {
      // [x, y] written as x..y-1 with an optional fraction, or y exactly.
      auto nonneg = [&](int64_t x, int64_t y) {
        std::string out = "( ";
        if (y > x) out += uint_range(x, y - 1) + " ( \".\" [0-9]{1,15} )? | ";
        return out + gbnf_literal(std::to_string(y)) + " ( \".\" \"0\"{1,15} )? )";
      };
      if (a < 0) alts.push_back("\"-\" " + nonneg(std::max<int64_t>(-b, 0), -a));
      if (b >= 0) alts.push_back(nonneg(std::max<int64_t>(a, 0), b));
    }
    std::string body;
    for (size_t i = 0; i < alts.size(); ++i) body += (i ? " | " : "") + alts[i];
    return "( " + body + " )";
  }
};

}  // namespace

std::string Grammar::json_schema_to_gbnf(const nlohmann::ordered_json& schema) {
  try {
    return Converter(schema).convert();
  } catch (const nlohmann::json::exception& e) {
    // e.g. a $ref that is not a string inside allOf, or invalid UTF-8 in a
    // schema built in memory.
    throw Error(std::string("JSON schema: malformed: ") + e.what());
  }
}

std::shared_ptr<const Grammar> Grammar::from_json_schema(const nlohmann::ordered_json& schema) {
  const std::string text = json_schema_to_gbnf(schema);
  try {
    return parse_gbnf(text);
  } catch (const Error& e) {
    // A bug of the translation, not of the schema: say so with the text.
    throw Error(std::string("JSON schema: internal error, the generated grammar does not parse: ") + e.what() +
                "\n" + text);
  }
}

std::shared_ptr<const Grammar> Grammar::json_object() {
  static const std::shared_ptr<const Grammar> g = from_json_schema(nlohmann::ordered_json{{"type", "object"}});
  return g;
}

}  // namespace hai::grammar
