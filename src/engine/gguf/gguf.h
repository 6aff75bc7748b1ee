// GGUF files (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md),
// versions 2 and 3: a header, typed key/value metadata, a table of tensor
// infos, then the aligned tensor data.
//
// gguf::File maps a file read-only and validates everything before use:
// every offset and size lies inside the file, no count or size overflows,
// every tensor type is known and its byte size matches its shape. A truncated,
// corrupt or hostile file throws hai::Error naming the file and the problem;
// it never crashes and never reads out of bounds. Tensor data is used in place
// from the mapping (no copy).
//
// Decisions where the spec is silent: tensors may come in any order and with
// gaps between them, but their data must not overlap (ggml never writes
// overlapping tensors, and a copy tensor-by-tensor would change their
// meaning); every dimension is >= 1; 1 <= n_dims <= 4; names are non-empty
// UTF-8 of at most 64 bytes; general.alignment is a power of two; metadata
// keys are non-empty, valid UTF-8 and unique (string values are not checked:
// token strings need not be UTF-8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "engine/quant/types.h"

namespace hai::gguf {

// Limits the reader enforces.
constexpr size_t kDefaultAlignment = 32;  // when general.alignment is absent
constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr size_t kMaxTensorName = 64;     // bytes (GGML_MAX_NAME in the spec)
constexpr int kMaxArrayDepth = 8;         // arrays of arrays of ... (bounds recursion)
// Metadata array elements in one file, all arrays together. A parsed element
// takes ~50 bytes of memory against 1 in the file, so this bounds what a
// hostile file can make us allocate; real vocabularies have < 1M.
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 23;

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code
// points above U+10FFFF). Metadata keys and tensor names must be.
bool valid_utf8(std::string_view s);

// Metadata value types, numbered as in the file format.
enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

std::string_view value_type_name(ValueType t);

// One metadata value. Integers are held widened (unsigned in `u`, signed in
// `i`), floats as double; `type` remembers the type in the file so a writer
// can write it back unchanged.
struct Value {
  ValueType type = ValueType::UINT8;
  ValueType elem_type = ValueType::UINT8;  // arrays: the element type
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<Value>> v;

  bool is_int() const;     // any integer type
  bool is_float() const;   // FLOAT32 / FLOAT64
  bool is_string() const { return type == ValueType::STRING; }
  bool is_array() const { return type == ValueType::ARRAY; }

  // Checked accessors: throw hai::Error (naming `what`, usually the key) when
  // the value has another type or does not fit.
  int64_t as_int(std::string_view what = "value") const;     // any integer type (uint64 > INT64_MAX throws)
  uint64_t as_uint(std::string_view what = "value") const;   // any non-negative integer
  double as_float(std::string_view what = "value") const;    // floats and integers
  bool as_bool(std::string_view what = "value") const;
  const std::string& as_string(std::string_view what = "value") const;
  const std::vector<Value>& as_array(std::string_view what = "value") const;

  static Value make_uint(ValueType t, uint64_t x);
  static Value make_int(ValueType t, int64_t x);
  static Value make_float(ValueType t, double x);
  static Value make_bool(bool b);
  static Value make_string(std::string s);
  static Value make_array(ValueType elem_type, std::vector<Value> items);
};

// One tensor of the file. `shape` is in ggml order: shape[0] is the number of
// values in a row (the fastest-varying dimension).
struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;           // relative to the start of the data section
  const uint8_t* data = nullptr;  // points into the mapping
  size_t nbytes = 0;

  int64_t n_elements() const;
};

class File {
 public:
  // Maps and parses `path`. Throws hai::Error("PATH: ...") on any problem.
  // The weights are used in place from the mapping (read-only, private);
  // files of 4 MiB and more are mapped at a 2 MiB-aligned address with
  // MADV_HUGEPAGE, so the kernel may map them with huge pages.
  static File open(const std::string& path);
  // Parses a buffer that the caller keeps alive (used by the fuzzer and tests).
  // `name` is used in error messages.
  static File parse(const uint8_t* data, size_t size, std::string name = "<buffer>");

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }
  size_t file_size() const { return size_; }
  // The share (0..1) of the file's resident pages in this process that the
  // kernel maps with 2 MiB pages (files of 4 MiB and more are mapped for
  // that: see open()); -1 when unknown (a parsed buffer, no /proc). Read
  // from /proc/self/smaps, so it costs a few milliseconds: for reports such
  // as `hai bench`, not for hot paths.
  double huge_page_share() const;
  // For a model about to run: pages the whole file in (like MAP_POPULATE)
  // and, when some but less than `min_share` of it is then mapped with
  // 2 MiB pages (some: the kernel can cache this file in huge pages), maps
  // it again after dropping its page-cache pages (posix_fadvise DONTNEED;
  // only pages no process maps), so that it is read back in 2 MiB units. A file that came
  // into the page cache in 4 KiB pieces (faulted in by a program that did
  // not ask for huge pages) otherwise stays that way, and decoding, which
  // streams every weight per token, reads it markedly slower. Tensor data
  // pointers move with the mapping: call it before handing them out.
  // Returns whether it mapped the file again. Does nothing for files under
  // 64 MiB, for files larger than 80% of the available memory, when the
  // file changed on disk since open(), or with HAI_HUGE_PAGES=0 in the
  // environment. Throws hai::Error if the second mapping fails.
  bool prefer_huge_pages(double min_share = 0.9);

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;  // nullptr if absent
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // Typed getters: throw hai::Error naming the key if it is absent or has the
  // wrong type; the *_or forms return `def` when the key is absent.
  const Value& get(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::string get_string_or(std::string_view key, std::string def) const;
  int64_t get_int(std::string_view key) const;
  int64_t get_int_or(std::string_view key, int64_t def) const;
  double get_float(std::string_view key) const;
  double get_float_or(std::string_view key, double def) const;
  bool get_bool_or(std::string_view key, bool def) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;  // nullptr if absent
  const TensorInfo& tensor(std::string_view name) const;       // throws if absent

 private:
  File() = default;
  void parse_all();

  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;  // non-null when we own an mmap
  // Identity of the mapped file (prefer_huge_pages maps it again only if unchanged).
  uint64_t dev_ = 0, ino_ = 0;
  int64_t mtime_s_ = 0, mtime_ns_ = 0;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Writes a GGUF v3 file. Metadata keeps insertion order; tensors are written
// aligned to `general.alignment` (default 32). The file is written to a
// temporary name and renamed into place, so a killed process leaves no
// half-written OUT.
class Writer {
 public:
  void set(std::string key, Value value);  // replaces an existing key in place
  void remove(std::string_view key);
  // `data` must hold row_size(type, shape[0]) * rows bytes and stay alive
  // until write() returns.
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape, const void* data, size_t nbytes);
  // Streaming form: `produce` is called once during write(), in tensor order,
  // and must fill exactly `out.size()` (= the tensor's byte size) bytes. Only
  // one tensor's bytes are held at a time, so a large model can be converted
  // without holding the whole output in memory.
  using Producer = std::function<void(std::vector<uint8_t>& out)>;
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape, Producer produce);
  // Throws hai::Error naming `path` if it cannot be written (the temporary
  // file is removed).
  void write(const std::string& path) const;

  size_t n_tensors() const { return tensors_.size(); }

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> shape;
    const void* data;
    size_t nbytes;
    Producer produce;  // set instead of data for streamed tensors
  };
  void check_new_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape, size_t* nbytes) const;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace hai::gguf
