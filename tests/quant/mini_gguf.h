// A minimal GGUF reader for the quant tests: just enough to find tensors and
// their bytes in the fixture models, independent of the engine's own reader
// (so a bug there cannot hide one here).
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/test_util.h"

namespace hai::test {

struct MiniTensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type = 0;
  uint64_t offset = 0;  // from the start of the data section
  const uint8_t* data = nullptr;
};

class MiniGguf {
 public:
  explicit MiniGguf(const std::string& path) : bytes_(read_file(path)) {
    if (bytes_.size() < 24 || std::memcmp(bytes_.data(), "GGUF", 4) != 0) throw std::runtime_error("not GGUF: " + path);
    pos_ = 4;
    get<uint32_t>();  // version
    const uint64_t n_tensors = get<uint64_t>();
    const uint64_t n_kv = get<uint64_t>();
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key = str();
      uint32_t type = get<uint32_t>();
      if (key == "general.alignment" && type == 4) {
        alignment = get<uint32_t>();
        continue;
      }
      skip_value(type);
    }
    for (uint64_t i = 0; i < n_tensors; ++i) {
      MiniTensor t;
      t.name = str();
      uint32_t n_dims = get<uint32_t>();
      for (uint32_t d = 0; d < n_dims; ++d) t.dims.push_back(get<uint64_t>());
      t.type = get<uint32_t>();
      t.offset = get<uint64_t>();
      tensors_.push_back(t);
    }
    size_t data_start = (pos_ + alignment - 1) / alignment * alignment;
    for (auto& t : tensors_) {
      if (data_start + t.offset > bytes_.size()) throw std::runtime_error("tensor out of file: " + t.name);
      t.data = reinterpret_cast<const uint8_t*>(bytes_.data()) + data_start + t.offset;
    }
  }

  const std::vector<MiniTensor>& tensors() const { return tensors_; }
  const MiniTensor* find(const std::string& name) const {
    for (const auto& t : tensors_)
      if (t.name == name) return &t;
    return nullptr;
  }

 private:
  template <typename T>
  T get() {
    if (pos_ + sizeof(T) > bytes_.size()) throw std::runtime_error("truncated GGUF");
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    uint64_t n = get<uint64_t>();
    if (pos_ + n > bytes_.size()) throw std::runtime_error("truncated GGUF string");
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void skip_value(uint32_t type) {
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      str();
    } else if (type == 9) {
      uint32_t et = get<uint32_t>();
      uint64_t n = get<uint64_t>();
      for (uint64_t i = 0; i < n; ++i) skip_value(et);
    } else if (type < 13) {
      pos_ += sizes[type];
    } else {
      throw std::runtime_error("bad GGUF value type");
    }
  }

  std::string bytes_;
  size_t pos_ = 0;
  std::vector<MiniTensor> tensors_;
};

}  // namespace hai::test
