// GGUF v3 writer. Layout (little-endian):
//   magic "GGUF", u32 version, u64 tensor count, u64 kv count,
//   kv: string key, u32 type, value   (string = u64 length + bytes;
//                                      array = u32 elem type + u64 count + elems)
//   tensor infos: string name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset
//   padding to the alignment, then the tensor data, each tensor padded to the
//   alignment (offsets are relative to the start of the data section).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <unordered_set>

#include "engine/common/error.h"
#include "engine/gguf/gguf.h"

namespace hai::gguf {
namespace {

// Buffered output to a FILE*, checking every write.
class Out {
 public:
  Out(FILE* f, const std::string& path) : f_(f), path_(path) {}

  void bytes(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) throw Error(path_ + ": write failed: " + std::strerror(errno));
    pos_ += n;
  }
  template <typename T>
  void put(T x) {
    bytes(&x, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(size_t alignment) {
    static const uint8_t zeros[256] = {};
    size_t pad = (alignment - pos_ % alignment) % alignment;
    while (pad > 0) {
      size_t n = std::min(pad, sizeof(zeros));
      bytes(zeros, n);
      pad -= n;
    }
  }
  size_t pos() const { return pos_; }

 private:
  FILE* f_;
  const std::string& path_;
  size_t pos_ = 0;
};

// Writes the payload of `v` (no type tag: the caller wrote it).
void write_value(Out& o, const Value& v, const std::string& key) {
  switch (v.type) {
    case ValueType::UINT8: o.put<uint8_t>(static_cast<uint8_t>(v.as_uint(key))); break;
    case ValueType::UINT16: o.put<uint16_t>(static_cast<uint16_t>(v.as_uint(key))); break;
    case ValueType::UINT32: o.put<uint32_t>(static_cast<uint32_t>(v.as_uint(key))); break;
    case ValueType::UINT64: o.put<uint64_t>(std::get<uint64_t>(v.v)); break;
    case ValueType::INT8: o.put<int8_t>(static_cast<int8_t>(v.as_int(key))); break;
    case ValueType::INT16: o.put<int16_t>(static_cast<int16_t>(v.as_int(key))); break;
    case ValueType::INT32: o.put<int32_t>(static_cast<int32_t>(v.as_int(key))); break;
    case ValueType::INT64: o.put<int64_t>(v.as_int(key)); break;
    case ValueType::FLOAT32: o.put<float>(static_cast<float>(v.as_float(key))); break;
    case ValueType::FLOAT64: o.put<double>(v.as_float(key)); break;
    case ValueType::BOOL: o.put<uint8_t>(v.as_bool(key) ? 1 : 0); break;
    case ValueType::STRING: o.str(v.as_string(key)); break;
    case ValueType::ARRAY: {
      const auto& items = v.as_array(key);
      o.put<uint32_t>(static_cast<uint32_t>(v.elem_type));
      o.put<uint64_t>(items.size());
      for (const Value& item : items) {
        if (item.type != v.elem_type)
          throw Error("key '" + key + "': array element of type " + std::string(value_type_name(item.type)) +
                      " in an array of " + std::string(value_type_name(v.elem_type)));
        write_value(o, item, key);
      }
      break;
    }
  }
}

// Checks a value before anything is written: variant alternative matches the
// type, arrays are homogeneous and not nested too deep.
void check_value(const Value& v, const std::string& key, int depth) {
  bool ok = false;
  switch (v.type) {
    case ValueType::UINT8:
    case ValueType::UINT16:
    case ValueType::UINT32:
    case ValueType::UINT64: ok = std::holds_alternative<uint64_t>(v.v); break;
    case ValueType::INT8:
    case ValueType::INT16:
    case ValueType::INT32:
    case ValueType::INT64: ok = std::holds_alternative<int64_t>(v.v); break;
    case ValueType::FLOAT32:
    case ValueType::FLOAT64: ok = std::holds_alternative<double>(v.v); break;
    case ValueType::BOOL: ok = std::holds_alternative<bool>(v.v); break;
    case ValueType::STRING: ok = std::holds_alternative<std::string>(v.v); break;
    case ValueType::ARRAY: ok = std::holds_alternative<std::vector<Value>>(v.v); break;
  }
  if (!ok) throw Error("key '" + key + "': value does not hold a " + std::string(value_type_name(v.type)));
  if (v.type == ValueType::ARRAY) {
    if (depth + 1 > kMaxArrayDepth)
      throw Error("key '" + key + "': arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
    for (const Value& item : std::get<std::vector<Value>>(v.v)) {
      if (item.type != v.elem_type)
        throw Error("key '" + key + "': array element of type " + std::string(value_type_name(item.type)) +
                    " in an array of " + std::string(value_type_name(v.elem_type)));
      check_value(item, key, depth + 1);
    }
  }
}

}  // namespace

void Writer::set(std::string key, Value value) {
  if (key.empty()) throw Error("metadata key is empty");
  if (!valid_utf8(key)) throw Error("metadata key is not valid UTF-8");
  check_value(value, key, 0);
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  kv_.emplace_back(std::move(key), std::move(value));
}

void Writer::remove(std::string_view key) {
  for (auto it = kv_.begin(); it != kv_.end(); ++it)
    if (it->first == key) {
      kv_.erase(it);
      return;
    }
}

void Writer::check_new_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape,
                              size_t* nbytes) const {
  if (name.empty()) throw Error("tensor name is empty");
  if (name.size() > kMaxTensorName)
    throw Error("tensor name '" + name + "' is longer than " + std::to_string(kMaxTensorName) + " bytes");
  if (!valid_utf8(name)) throw Error("tensor name is not valid UTF-8");
  for (const auto& t : tensors_)
    if (t.name == name) throw Error("duplicate tensor name '" + name + "'");
  if (!type_traits(static_cast<uint32_t>(type)))
    throw Error("tensor '" + name + "': unknown type " + std::to_string(static_cast<uint32_t>(type)));
  if (shape.empty() || shape.size() > kMaxDims)
    throw Error("tensor '" + name + "' has " + std::to_string(shape.size()) + " dimensions (1 .. " +
                std::to_string(kMaxDims) + " allowed)");
  int64_t rows = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] <= 0) throw Error("tensor '" + name + "': dimension " + std::to_string(i) + " is " + std::to_string(shape[i]));
    if (i > 0 && __builtin_mul_overflow(rows, shape[i], &rows))
      throw Error("tensor '" + name + "': element count overflows");
  }
  size_t row = 0;
  try {
    row = row_size(type, shape[0]);
  } catch (const Error& e) {
    throw Error("tensor '" + name + "': " + e.what());
  }
  size_t total = 0;
  if (__builtin_mul_overflow(row, static_cast<size_t>(rows), &total))
    throw Error("tensor '" + name + "': byte size overflows");
  *nbytes = total;
}

void Writer::add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape, const void* data,
                        size_t nbytes) {
  size_t expect = 0;
  check_new_tensor(name, type, shape, &expect);
  if (nbytes != expect)
    throw Error("tensor '" + name + "': " + std::to_string(nbytes) + " bytes given, its shape and type need " +
                std::to_string(expect));
  if (!data && nbytes) throw Error("tensor '" + name + "': no data");
  tensors_.push_back({std::move(name), type, std::move(shape), data, nbytes, nullptr});
}

void Writer::add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape, Producer produce) {
  size_t expect = 0;
  check_new_tensor(name, type, shape, &expect);
  if (!produce) throw Error("tensor '" + name + "': no producer");
  tensors_.push_back({std::move(name), type, std::move(shape), nullptr, expect, std::move(produce)});
}

void Writer::write(const std::string& path) const {
  size_t alignment = kDefaultAlignment;
  for (const auto& kv : kv_)
    if (kv.first == "general.alignment") {
      int64_t a = kv.second.as_int("general.alignment");
      if (kv.second.type != ValueType::UINT32 || a <= 0 || (a & (a - 1)) != 0 || a > (int64_t{1} << 30))
        throw Error("general.alignment must be a u32 power of two, got " + std::to_string(a));
      alignment = static_cast<size_t>(a);
    }

  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(path + ": cannot create: " + std::strerror(errno));
  std::unique_ptr<FILE, int (*)(FILE*)> guard(f, &std::fclose);
  std::vector<char> buf(1 << 20);
  std::setvbuf(f, buf.data(), _IOFBF, buf.size());

  try {
    Out o(f, path);
    o.put<uint32_t>(0x46554747);  // "GGUF"
    o.put<uint32_t>(3);
    o.put<uint64_t>(tensors_.size());
    o.put<uint64_t>(kv_.size());
    for (const auto& [key, value] : kv_) {
      o.str(key);
      o.put<uint32_t>(static_cast<uint32_t>(value.type));
      write_value(o, value, key);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
      o.str(t.name);
      o.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
      for (int64_t d : t.shape) o.put<uint64_t>(static_cast<uint64_t>(d));
      o.put<uint32_t>(static_cast<uint32_t>(t.type));
      o.put<uint64_t>(offset);
      offset += (t.nbytes + alignment - 1) / alignment * alignment;
    }
    o.pad_to(alignment);
    std::vector<uint8_t> scratch;
    for (const auto& t : tensors_) {
      if (t.produce) {
        scratch.assign(t.nbytes, 0);
        t.produce(scratch);
        if (scratch.size() != t.nbytes)
          throw Error("tensor '" + t.name + "': producer gave " + std::to_string(scratch.size()) + " bytes, expected " +
                      std::to_string(t.nbytes));
        o.bytes(scratch.data(), scratch.size());
      } else {
        o.bytes(t.data, t.nbytes);
      }
      o.pad_to(alignment);
    }
    if (std::fflush(f) != 0) throw Error(path + ": write failed: " + std::strerror(errno));
    guard.reset();
    f = nullptr;
  } catch (...) {
    guard.reset();
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename temporary file into place: " + std::strerror(e));
  }
}

// ---------------------------------------------------------------- UTF-8

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace hai::gguf
