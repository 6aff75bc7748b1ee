// Test helper: builds GGUF files byte by byte, so tests can write valid v2
// files and every kind of malformed file the writer would refuse to produce.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace hai::test {

struct Bytes {
  std::vector<uint8_t> b;

  template <typename T>
  Bytes& put(T x) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &x, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  Bytes& u8(uint8_t x) { return put(x); }
  Bytes& u32(uint32_t x) { return put(x); }
  Bytes& u64(uint64_t x) { return put(x); }
  Bytes& f32(float x) { return put(x); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::string& s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  Bytes& pad_to(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    raw("GGUF");
    u32(version);
    u64(n_tensors);
    u64(n_kv);
    return *this;
  }
  // kv with a u32 value
  Bytes& kv_u32(const std::string& key, uint32_t v) {
    str(key);
    u32(4);
    u32(v);
    return *this;
  }
  Bytes& kv_str(const std::string& key, const std::string& v) {
    str(key);
    u32(8);
    str(v);
    return *this;
  }
  // tensor info
  Bytes& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    u64(offset);
    return *this;
  }
  size_t size() const { return b.size(); }
  const uint8_t* data() const { return b.data(); }
};

}  // namespace hai::test
