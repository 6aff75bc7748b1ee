// hai gguf info FILE [--json] [--no-arrays]: the header, metadata and tensor
// table of a GGUF file, as text (long arrays shortened like gguf-dump) or JSON.
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/command.h"
#include "engine/gguf/gguf.h"

namespace {

using hai::gguf::Value;
using hai::gguf::ValueType;

constexpr size_t kShownArrayItems = 8;  // text output: first items of a long array

// A string for the terminal: printable ASCII and valid UTF-8 kept, control
// characters and invalid bytes escaped, quoted, cut after `max` bytes.
std::string quote(const std::string& s, size_t max = 120) {
  std::string out = "\"";
  bool utf8 = hai::gguf::valid_utf8(s);
  size_t n = std::min(s.size(), max);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "\"";
  if (s.size() > max) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string scalar_text(const Value& v) {
  switch (v.type) {
    case ValueType::STRING: return quote(v.as_string());
    case ValueType::BOOL: return v.as_bool() ? "true" : "false";
    case ValueType::FLOAT32:
    case ValueType::FLOAT64: {
      std::ostringstream os;
      os.precision(v.type == ValueType::FLOAT32 ? 9 : 17);
      os << v.as_float();
      return os.str();
    }
    case ValueType::ARRAY: return "";
    default:
      if (auto* u = std::get_if<uint64_t>(&v.v)) return std::to_string(*u);
      return std::to_string(std::get<int64_t>(v.v));
  }
}

std::string type_text(const Value& v) {
  if (!v.is_array()) return std::string(hai::gguf::value_type_name(v.type));
  const auto& items = v.as_array();
  std::string inner = v.elem_type == ValueType::ARRAY && !items.empty() ? type_text(items[0])
                                                                         : std::string(hai::gguf::value_type_name(v.elem_type));
  return "[" + inner + "; " + std::to_string(items.size()) + "]";
}

std::string value_text(const Value& v) {
  if (!v.is_array()) return scalar_text(v);
  const auto& items = v.as_array();
  std::string out = "[";
  size_t shown = std::min(items.size(), kShownArrayItems);
  for (size_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    out += value_text(items[i]);
  }
  if (items.size() > shown) out += ", ... (" + std::to_string(items.size()) + " total)";
  return out + "]";
}

nlohmann::json value_json(const Value& v, bool arrays) {
  switch (v.type) {
    case ValueType::STRING: return v.as_string();
    case ValueType::BOOL: return v.as_bool();
    case ValueType::FLOAT32:
    case ValueType::FLOAT64: return v.as_float();
    case ValueType::ARRAY: {
      nlohmann::json a = nlohmann::json::array();
      if (!arrays) return a;
      for (const Value& item : v.as_array()) a.push_back(value_json(item, arrays));
      return a;
    }
    default:
      if (auto* u = std::get_if<uint64_t>(&v.v)) return *u;
      return std::get<int64_t>(v.v);
  }
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void print_text(const hai::gguf::File& f, bool arrays) {
  std::printf("file: %s\n", f.path().c_str());
  std::printf("version: %u\n", f.version());
  std::printf("tensors: %zu\n", f.tensors().size());
  std::printf("metadata: %zu\n", f.metadata().size());
  std::printf("alignment: %zu\n", f.alignment());
  std::printf("data offset: %zu\n", f.data_offset());
  std::printf("file size: %zu\n", f.file_size());
  std::printf("\nmetadata:\n");
  size_t i = 0;
  for (const auto& [key, v] : f.metadata()) {
    std::string value = v.is_array() && !arrays ? "" : " = " + value_text(v);
    std::printf("%4zu: %-44s %-14s%s\n", ++i, key.c_str(), type_text(v).c_str(), value.c_str());
  }
  std::printf("\ntensors:\n");
  std::printf("%5s  %-40s %-8s %-26s %14s %14s\n", "index", "name", "type", "shape", "bytes", "offset");
  i = 0;
  for (const auto& t : f.tensors())
    std::printf("%5zu  %-40s %-8s %-26s %14zu %14" PRIu64 "\n", i++, t.name.c_str(),
                std::string(hai::type_name(t.type)).c_str(), shape_text(t.shape).c_str(), t.nbytes,
                f.data_offset() + t.offset);
}

void print_json(const hai::gguf::File& f, bool arrays) {
  nlohmann::json j;
  j["file"] = f.path();
  j["version"] = f.version();
  j["tensor_count"] = f.tensors().size();
  j["kv_count"] = f.metadata().size();
  j["alignment"] = f.alignment();
  j["data_offset"] = f.data_offset();
  j["file_size"] = f.file_size();
  nlohmann::json md = nlohmann::json::array();
  for (const auto& [key, v] : f.metadata()) {
    nlohmann::json e = {{"key", key}, {"type", std::string(hai::gguf::value_type_name(v.type))}};
    if (v.is_array()) {
      e["elem_type"] = std::string(hai::gguf::value_type_name(v.elem_type));
      e["count"] = v.as_array().size();
      if (arrays) e["value"] = value_json(v, true);
    } else {
      e["value"] = value_json(v, true);
    }
    md.push_back(std::move(e));
  }
  j["metadata"] = std::move(md);
  nlohmann::json ts = nlohmann::json::array();
  size_t i = 0;
  for (const auto& t : f.tensors())
    ts.push_back({{"index", i++},
                  {"name", t.name},
                  {"type", std::string(hai::type_name(t.type))},
                  {"shape", t.shape},
                  {"n_elements", t.n_elements()},
                  {"nbytes", t.nbytes},
                  {"offset", t.offset},
                  {"file_offset", f.data_offset() + t.offset}});
  j["tensors"] = std::move(ts);
  // Token strings need not be valid UTF-8: replace bad bytes rather than fail.
  std::cout << j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

struct InfoOptions {
  std::string file;
  bool json = false;
  bool no_arrays = false;
};

hai::cli::Register reg([](CLI::App& app) {
  auto* gguf = app.add_subcommand("gguf", "Inspect GGUF model files");
  gguf->require_subcommand(1);
  auto opt = std::make_shared<InfoOptions>();
  auto* info = gguf->add_subcommand("info", "Print the header, metadata and tensor table of a GGUF file");
  info->add_option("FILE", opt->file, "GGUF file")->required();
  info->add_flag("--json", opt->json, "Machine-readable JSON output (arrays in full)");
  info->add_flag("--no-arrays", opt->no_arrays, "Leave out the contents of array values");
  info->callback([opt] {
    hai::gguf::File f = hai::gguf::File::open(opt->file);
    if (opt->json)
      print_json(f, !opt->no_arrays);
    else
      print_text(f, !opt->no_arrays);
  });
});

}  // namespace
