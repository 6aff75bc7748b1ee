// GGUF reader: a bounds-checked cursor over the mapped bytes, then validation
// of the tensor table against the data section. See gguf.h for the contract.
#include "engine/gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/common/error.h"

namespace hai::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32

// Smallest encoded size of one value of type `t` (used to bound counts read
// from the file by the bytes that remain, before anything is allocated).
size_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL: return 1;
    case ValueType::UINT16:
    case ValueType::INT16: return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32: return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64: return 8;
    case ValueType::STRING: return 8;   // u64 length
    case ValueType::ARRAY: return 12;   // u32 type + u64 count
  }
  return 1;
}

// Reads little-endian values from [base, base+size), throwing a hai::Error
// that names the file on any read past the end.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, const std::string& name) : base_(base), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& what) const { throw Error(name_ + ": " + what); }

  void need(size_t n, const char* what) const {
    if (n > remaining())
      fail("unexpected end of file reading " + std::string(what) + " at offset " + std::to_string(pos_) + " (" +
           std::to_string(n) + " bytes needed, " + std::to_string(remaining()) + " left)");
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T x;
    std::memcpy(&x, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }

  std::string read_string(const char* what) {
    uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail(std::string(what) + " at offset " + std::to_string(pos_ - 8) + " has length " + std::to_string(len) +
           ", more than the " + std::to_string(remaining()) + " bytes left in the file");
    std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

Value read_value(Cursor& c, ValueType type, int depth, const std::string& key, uint64_t& n_elements) {
  switch (type) {
    case ValueType::UINT8: return Value::make_uint(type, c.read<uint8_t>("metadata value"));
    case ValueType::UINT16: return Value::make_uint(type, c.read<uint16_t>("metadata value"));
    case ValueType::UINT32: return Value::make_uint(type, c.read<uint32_t>("metadata value"));
    case ValueType::UINT64: return Value::make_uint(type, c.read<uint64_t>("metadata value"));
    case ValueType::INT8: return Value::make_int(type, c.read<int8_t>("metadata value"));
    case ValueType::INT16: return Value::make_int(type, c.read<int16_t>("metadata value"));
    case ValueType::INT32: return Value::make_int(type, c.read<int32_t>("metadata value"));
    case ValueType::INT64: return Value::make_int(type, c.read<int64_t>("metadata value"));
    case ValueType::FLOAT32: return Value::make_float(type, c.read<float>("metadata value"));
    case ValueType::FLOAT64: return Value::make_float(type, c.read<double>("metadata value"));
    case ValueType::BOOL: {
      uint8_t b = c.read<uint8_t>("metadata value");
      if (b > 1) c.fail("key '" + key + "': bool value " + std::to_string(b) + " is neither 0 nor 1");
      return Value::make_bool(b != 0);
    }
    case ValueType::STRING: return Value::make_string(c.read_string("string value"));
    case ValueType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        c.fail("key '" + key + "': arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
      uint32_t et = c.read<uint32_t>("array element type");
      if (!valid_value_type(et))
        c.fail("key '" + key + "': unknown array element type " + std::to_string(et));
      ValueType elem = static_cast<ValueType>(et);
      uint64_t count = c.read<uint64_t>("array length");
      size_t min = min_encoded_size(elem);
      if (count > c.remaining() / min)
        c.fail("key '" + key + "': array of " + std::to_string(count) + " " + std::string(value_type_name(elem)) +
               " values cannot fit in the " + std::to_string(c.remaining()) + " bytes left in the file");
      n_elements += count;
      if (n_elements > kMaxArrayElements)
        c.fail("key '" + key + "': more than " + std::to_string(kMaxArrayElements) +
               " metadata array elements in the file");
      std::vector<Value> items;
      items.reserve(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i) items.push_back(read_value(c, elem, depth + 1, key, n_elements));
      return Value::make_array(elem, std::move(items));
    }
  }
  c.fail("key '" + key + "': unknown value type " + std::to_string(static_cast<uint32_t>(type)));
}

}  // namespace

// ---------------------------------------------------------------- Value

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8: return "u8";
    case ValueType::INT8: return "i8";
    case ValueType::UINT16: return "u16";
    case ValueType::INT16: return "i16";
    case ValueType::UINT32: return "u32";
    case ValueType::INT32: return "i32";
    case ValueType::FLOAT32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "u64";
    case ValueType::INT64: return "i64";
    case ValueType::FLOAT64: return "f64";
  }
  return "unknown";
}

bool Value::is_int() const {
  switch (type) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::UINT16:
    case ValueType::INT16:
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::UINT64:
    case ValueType::INT64: return true;
    default: return false;
  }
}

bool Value::is_float() const { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }

namespace {
[[noreturn]] void wrong_type(std::string_view what, const Value& v, const char* wanted) {
  throw Error(std::string(what) + ": expected " + wanted + ", found " + std::string(value_type_name(v.type)));
}
}  // namespace

int64_t Value::as_int(std::string_view what) const {
  if (!is_int()) wrong_type(what, *this, "an integer");
  if (auto* u = std::get_if<uint64_t>(&v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(std::string(what) + ": value " + std::to_string(*u) + " does not fit in int64");
    return static_cast<int64_t>(*u);
  }
  return std::get<int64_t>(v);
}

uint64_t Value::as_uint(std::string_view what) const {
  if (!is_int()) wrong_type(what, *this, "an integer");
  if (auto* i = std::get_if<int64_t>(&v)) {
    if (*i < 0) throw Error(std::string(what) + ": value " + std::to_string(*i) + " is negative");
    return static_cast<uint64_t>(*i);
  }
  return std::get<uint64_t>(v);
}

double Value::as_float(std::string_view what) const {
  if (is_float()) return std::get<double>(v);
  if (is_int()) {
    if (auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
    return static_cast<double>(std::get<int64_t>(v));
  }
  wrong_type(what, *this, "a number");
}

bool Value::as_bool(std::string_view what) const {
  if (type != ValueType::BOOL) wrong_type(what, *this, "a bool");
  return std::get<bool>(v);
}

const std::string& Value::as_string(std::string_view what) const {
  if (type != ValueType::STRING) wrong_type(what, *this, "a string");
  return std::get<std::string>(v);
}

const std::vector<Value>& Value::as_array(std::string_view what) const {
  if (type != ValueType::ARRAY) wrong_type(what, *this, "an array");
  return std::get<std::vector<Value>>(v);
}

Value Value::make_uint(ValueType t, uint64_t x) {
  uint64_t max = 0;
  switch (t) {
    case ValueType::UINT8: max = UINT8_MAX; break;
    case ValueType::UINT16: max = UINT16_MAX; break;
    case ValueType::UINT32: max = UINT32_MAX; break;
    case ValueType::UINT64: max = UINT64_MAX; break;
    default: throw Error("make_uint: " + std::string(value_type_name(t)) + " is not an unsigned integer type");
  }
  if (x > max)
    throw Error("value " + std::to_string(x) + " does not fit in " + std::string(value_type_name(t)));
  Value r;
  r.type = t;
  r.v = x;
  return r;
}

Value Value::make_int(ValueType t, int64_t x) {
  int64_t lo = 0, hi = 0;
  switch (t) {
    case ValueType::INT8: lo = INT8_MIN, hi = INT8_MAX; break;
    case ValueType::INT16: lo = INT16_MIN, hi = INT16_MAX; break;
    case ValueType::INT32: lo = INT32_MIN, hi = INT32_MAX; break;
    case ValueType::INT64: lo = INT64_MIN, hi = INT64_MAX; break;
    default: throw Error("make_int: " + std::string(value_type_name(t)) + " is not a signed integer type");
  }
  if (x < lo || x > hi)
    throw Error("value " + std::to_string(x) + " does not fit in " + std::string(value_type_name(t)));
  Value r;
  r.type = t;
  r.v = x;
  return r;
}

Value Value::make_float(ValueType t, double x) {
  if (t != ValueType::FLOAT32 && t != ValueType::FLOAT64)
    throw Error("make_float: " + std::string(value_type_name(t)) + " is not a float type");
  Value r;
  r.type = t;
  r.v = t == ValueType::FLOAT32 ? static_cast<double>(static_cast<float>(x)) : x;
  return r;
}

Value Value::make_bool(bool b) {
  Value r;
  r.type = ValueType::BOOL;
  r.v = b;
  return r;
}

Value Value::make_string(std::string s) {
  Value r;
  r.type = ValueType::STRING;
  r.v = std::move(s);
  return r;
}

Value Value::make_array(ValueType elem_type, std::vector<Value> items) {
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i].type != elem_type)
      throw Error("array element " + std::to_string(i) + " has type " + std::string(value_type_name(items[i].type)) +
                  ", the array holds " + std::string(value_type_name(elem_type)));
  Value r;
  r.type = ValueType::ARRAY;
  r.elem_type = elem_type;
  r.v = std::move(items);
  return r;
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated against overflow when parsed
  return n;
}

// ---------------------------------------------------------------- File

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

// Maps the whole file read-only. A file of at least two huge pages is mapped
// at a 2 MiB-aligned address and marked MADV_HUGEPAGE: where the kernel's
// page cache holds the file in 2 MiB folios (ext4/xfs with large folios,
// Linux 6.x; MADV_HUGEPAGE makes the faults read ahead in 2 MiB units), a
// 2 MiB page of the file is then mapped by one page-table entry, and
// streaming the weights through it needs 512x fewer TLB entries. Measured on
// the development machine (one thread reading a 336 MiB model): 31.5 GB/s
// against 20 GB/s with 4 KiB pages. Only a hint: nothing changes where the
// kernel or file system cannot do it.
// HAI_HUGE_PAGES=0 in the environment turns this off (a plain mapping).
bool huge_pages_off() {
  const char* env = std::getenv("HAI_HUGE_PAGES");
  return env != nullptr && std::strcmp(env, "0") == 0;
}

void* map_file(int fd, size_t size) {
  if (size < 2 * kHugePage || huge_pages_off()) return ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  // Reserve size + 2 MiB of address space, place the file at the first
  // aligned address inside it, give back the rest.
  const size_t span = size + kHugePage;
  void* r = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const uintptr_t lo = reinterpret_cast<uintptr_t>(r);
  const uintptr_t at = (lo + kHugePage - 1) & ~(uintptr_t(kHugePage) - 1);
  void* map = ::mmap(reinterpret_cast<void*>(at), size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
  if (map == MAP_FAILED) {
    const int e = errno;
    ::munmap(r, span);
    errno = e;
    return MAP_FAILED;
  }
  // The slack before and after the file (page-granular; the tail of the
  // file's last page belongs to the file mapping).
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t end = (at + size + page - 1) & ~(page - 1);
  if (at > lo) ::munmap(r, at - lo);
  if (lo + span > end) ::munmap(reinterpret_cast<void*>(end), lo + span - end);
#ifdef MADV_HUGEPAGE
  ::madvise(map, size, MADV_HUGEPAGE);  // a hint: EINVAL where THP is compiled out
#endif
  return map;
}

// "MemAvailable:" of /proc/meminfo in bytes, or 0 if unknown.
size_t mem_available() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "MemAvailable: %lu kB", &kb) == 1) break;
  std::fclose(f);
  return static_cast<size_t>(kb) * 1024;
}

// Faults every page of the mapping in (read), as MAP_POPULATE would.
void populate(void* p, size_t size) {
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
  if (::madvise(p, size, MADV_POPULATE_READ) == 0) return;
  const long page = ::sysconf(_SC_PAGESIZE);  // older kernels: touch one byte a page
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < size; i += static_cast<size_t>(page)) sink = sink + static_cast<const uint8_t*>(p)[i];
}

}  // namespace

bool File::prefer_huge_pages(double min_share) {
  constexpr size_t kMinSize = size_t(64) << 20;
  if (map_ == nullptr || size_ < kMinSize) return false;
  if (huge_pages_off()) return false;
  const size_t avail = mem_available();
  if (avail != 0 && size_ > avail / 10 * 8) return false;  // would push other memory out
  populate(map_, size_);
  const double share = huge_page_share();
  // Only where some of this very file is in huge pages already: the kernel
  // and file system can cache it so, and reading it again gains something
  // (a file system without large folios, tmpfs, a network file system: 0,
  // and no second read).
  if (share <= 0 || share >= min_share) return false;

  // The same file still (not replaced since it was opened)?
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_dev) != dev_ || static_cast<uint64_t>(st.st_ino) != ino_ ||
      static_cast<size_t>(st.st_size) != size_ || st.st_mtim.tv_sec != mtime_s_ || st.st_mtim.tv_nsec != mtime_ns_) {
    ::close(fd);
    return false;
  }
  // Unmap, drop the file's unmapped pages from the page cache, map again:
  // the faults read it back with MADV_HUGEPAGE's 2 MiB read-ahead. Pages that
  // another process maps stay as they are.
  ::munmap(map_, size_);
  map_ = nullptr;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  void* map = map_file(fd, size_);
  const int e = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    base_ = nullptr;
    for (auto& t : tensors_) t.data = nullptr;
    throw Error(path_ + ": cannot map again: " + std::strerror(e));
  }
  const uint8_t* old_base = base_;
  base_ = static_cast<const uint8_t*>(map);
  map_ = map;
  for (auto& t : tensors_) t.data = base_ + (t.data - old_base);
  populate(map_, size_);
  return true;
}

double File::huge_page_share() const {
  if (map_ == nullptr) return -1.0;
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return -1.0;
  const uintptr_t start = reinterpret_cast<uintptr_t>(map_);
  char line[512];
  bool in_vma = false;
  double rss = -1.0, pmd = 0.0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    // A VMA header: "lo-hi perms offset dev inode path"; no key line below
    // it ("Rss:       123 kB", "FilePmdMapped: ...") reads as hex-hex.
    if (std::sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
      if (in_vma) break;
      in_vma = lo == start;
      continue;
    }
    if (!in_vma) continue;
    unsigned long kb = 0;
    if (std::sscanf(line, "Rss: %lu kB", &kb) == 1) rss = static_cast<double>(kb);
    if (std::sscanf(line, "FilePmdMapped: %lu kB", &kb) == 1) pmd = static_cast<double>(kb);
  }
  std::fclose(f);
  if (rss <= 0.0) return rss < 0.0 ? -1.0 : 0.0;
  return pmd / rss;
}

File File::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    throw Error(path + ": empty file (not a GGUF file)");
  }
  void* map = map_file(fd, size);
  int e = errno;
  ::close(fd);
  if (map == MAP_FAILED) throw Error(path + ": cannot map: " + std::strerror(e));

  File f;
  f.path_ = path;
  f.base_ = static_cast<const uint8_t*>(map);
  f.size_ = size;
  f.map_ = map;
  f.dev_ = static_cast<uint64_t>(st.st_dev);
  f.ino_ = static_cast<uint64_t>(st.st_ino);
  f.mtime_s_ = st.st_mtim.tv_sec;
  f.mtime_ns_ = st.st_mtim.tv_nsec;
  f.parse_all();  // on throw, ~File unmaps
  return f;
}

File File::parse(const uint8_t* data, size_t size, std::string name) {
  File f;
  f.path_ = std::move(name);
  f.base_ = data;
  f.size_ = size;
  f.parse_all();
  return f;
}

File::File(File&& o) noexcept { *this = std::move(o); }

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, size_);
    path_ = std::move(o.path_);
    base_ = o.base_;
    size_ = o.size_;
    map_ = o.map_;
    dev_ = o.dev_;
    ino_ = o.ino_;
    mtime_s_ = o.mtime_s_;
    mtime_ns_ = o.mtime_ns_;
    version_ = o.version_;
    alignment_ = o.alignment_;
    data_offset_ = o.data_offset_;
    kv_ = std::move(o.kv_);
    kv_index_ = std::move(o.kv_index_);
    tensors_ = std::move(o.tensors_);
    tensor_index_ = std::move(o.tensor_index_);
    o.map_ = nullptr;
    o.base_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

File::~File() {
  if (map_) ::munmap(map_, size_);
}

void File::parse_all() {
  Cursor c(base_, size_, path_);

  // Header.
  if (size_ < 4) c.fail("file of " + std::to_string(size_) + " bytes is too short to be a GGUF file");
  uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) c.fail("not a GGUF file (bad magic)");
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) c.fail("unsupported GGUF version 1 (only versions 2 and 3 are supported)");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xFFFF) == 0 && version_ != 0)
      c.fail("unsupported GGUF version " + std::to_string(version_) + " (a big-endian file?)");
    c.fail("unsupported GGUF version " + std::to_string(version_) + " (only versions 2 and 3 are supported)");
  }
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");

  // Metadata. A key/value takes at least 8 (key length) + 4 (type) + 1 bytes.
  if (n_kv > c.remaining() / 13)
    c.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " + std::to_string(c.remaining()) +
           " bytes left in the file");
  kv_.reserve(static_cast<size_t>(n_kv));
  uint64_t n_array_elements = 0;
  for (uint64_t i = 0; i < n_kv; ++i) {
    size_t key_at = c.pos();
    std::string key = c.read_string("metadata key");
    if (key.empty()) c.fail("metadata key " + std::to_string(i) + " at offset " + std::to_string(key_at) + " is empty");
    if (!valid_utf8(key))
      c.fail("metadata key " + std::to_string(i) + " at offset " + std::to_string(key_at) + " is not valid UTF-8");
    uint32_t t = c.read<uint32_t>("metadata value type");
    if (!valid_value_type(t)) c.fail("key '" + key + "': unknown value type " + std::to_string(t));
    Value v = read_value(c, static_cast<ValueType>(t), 0, key, n_array_elements);
    if (kv_index_.count(key)) c.fail("duplicate metadata key '" + key + "'");
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(v));
  }

  // Alignment of the data section and of every tensor in it.
  if (const Value* a = find("general.alignment")) {
    if (!a->is_int()) c.fail("general.alignment must be an integer, found " + std::string(value_type_name(a->type)));
    int64_t al = a->as_int("general.alignment");
    if (al <= 0 || (al & (al - 1)) != 0 || al > (int64_t{1} << 30))
      c.fail("general.alignment " + std::to_string(al) + " is not a power of two (1 .. 2^30)");
    alignment_ = static_cast<size_t>(al);
  } else {
    alignment_ = kDefaultAlignment;
  }

  // Tensor infos. Each takes at least 8 (name length) + 4 + 8 + 4 + 8 bytes.
  if (n_tensors > c.remaining() / 32)
    c.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " + std::to_string(c.remaining()) +
           " bytes left in the file");
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    size_t at = c.pos();
    t.name = c.read_string("tensor name");
    const std::string where = "tensor " + std::to_string(i) + " '" + t.name + "'";
    if (t.name.empty()) c.fail("tensor " + std::to_string(i) + " at offset " + std::to_string(at) + " has an empty name");
    if (t.name.size() > kMaxTensorName)
      c.fail("tensor " + std::to_string(i) + " at offset " + std::to_string(at) + ": name of " +
             std::to_string(t.name.size()) + " bytes is longer than " + std::to_string(kMaxTensorName));
    if (!valid_utf8(t.name))
      c.fail("tensor " + std::to_string(i) + " at offset " + std::to_string(at) + ": name is not valid UTF-8");
    uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims)
      c.fail(where + " has " + std::to_string(n_dims) + " dimensions (1 .. " + std::to_string(kMaxDims) + " allowed)");
    int64_t n_elem = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = c.read<uint64_t>("tensor dimension");
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        c.fail(where + ": dimension " + std::to_string(d) + " is " +
               (dim == 0 ? std::string("0") : std::to_string(static_cast<int64_t>(dim)) + " (negative)"));
      int64_t di = static_cast<int64_t>(dim);
      if (__builtin_mul_overflow(n_elem, di, &n_elem)) c.fail(where + ": element count overflows int64");
      t.shape.push_back(di);
    }
    uint32_t type = c.read<uint32_t>("tensor type");
    auto tt = type_traits(type);
    if (!tt) c.fail(where + " has unknown type " + std::to_string(type));
    t.type = static_cast<GgmlType>(type);
    if (t.shape[0] % tt->block_size != 0)
      c.fail(where + ": row length " + std::to_string(t.shape[0]) + " is not a multiple of the " +
             std::string(tt->name) + " block size " + std::to_string(tt->block_size));
    uint64_t nbytes = 0;
    uint64_t blocks = static_cast<uint64_t>(n_elem / tt->block_size);
    if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(tt->type_size), &nbytes) ||
        nbytes > std::numeric_limits<size_t>::max())
      c.fail(where + ": byte size overflows");
    t.nbytes = static_cast<size_t>(nbytes);
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0)
      c.fail(where + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(alignment_));
    if (tensor_index_.count(t.name)) c.fail("duplicate tensor name '" + t.name + "'");
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  size_t pos = c.pos();
  size_t pad = (alignment_ - pos % alignment_) % alignment_;
  data_offset_ = pos + pad;
  if (tensors_.empty()) return;
  if (data_offset_ > size_)
    c.fail("data section at offset " + std::to_string(data_offset_) + " starts past end of file (size " +
           std::to_string(size_) + ")");
  const uint64_t data_size = size_ - data_offset_;
  for (TensorInfo& t : tensors_) {
    uint64_t end = 0;
    if (__builtin_add_overflow(t.offset, static_cast<uint64_t>(t.nbytes), &end) || end > data_size)
      c.fail("tensor '" + t.name + "' data [offset " + std::to_string(data_offset_ + t.offset) + ", " +
             std::to_string(t.nbytes) + " bytes] runs past end of file (size " + std::to_string(size_) + ")");
    t.data = base_ + data_offset_ + t.offset;
  }

  // Tensors may appear in any order and with gaps, but must not overlap:
  // overlapping data is never written by ggml, and a writer that copies the
  // tensors one by one would silently change their meaning.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo* a = by_offset[i - 1];
    const TensorInfo* b = by_offset[i];
    if (a->offset + a->nbytes > b->offset)
      c.fail("tensor '" + b->name + "' data at offset " + std::to_string(b->offset) + " overlaps tensor '" + a->name +
             "' [" + std::to_string(a->offset) + ", " + std::to_string(a->offset + a->nbytes) + ")");
  }
}

const Value* File::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const Value& File::get(std::string_view key) const {
  const Value* v = find(key);
  if (!v) throw Error(path_ + ": missing metadata key '" + std::string(key) + "'");
  return *v;
}

namespace {
std::string what(const std::string& path, std::string_view key) { return path + ": key '" + std::string(key) + "'"; }
}  // namespace

std::string File::get_string(std::string_view key) const { return get(key).as_string(what(path_, key)); }

std::string File::get_string_or(std::string_view key, std::string def) const {
  const Value* v = find(key);
  return v ? v->as_string(what(path_, key)) : def;
}

int64_t File::get_int(std::string_view key) const { return get(key).as_int(what(path_, key)); }

int64_t File::get_int_or(std::string_view key, int64_t def) const {
  const Value* v = find(key);
  return v ? v->as_int(what(path_, key)) : def;
}

double File::get_float(std::string_view key) const { return get(key).as_float(what(path_, key)); }

double File::get_float_or(std::string_view key, double def) const {
  const Value* v = find(key);
  return v ? v->as_float(what(path_, key)) : def;
}

bool File::get_bool_or(std::string_view key, bool def) const {
  const Value* v = find(key);
  return v ? v->as_bool(what(path_, key)) : def;
}

std::vector<std::string> File::get_string_array(std::string_view key) const {
  const auto& a = get(key).as_array(what(path_, key));
  std::vector<std::string> out;
  out.reserve(a.size());
  for (const Value& v : a) out.push_back(v.as_string(what(path_, key) + " element"));
  return out;
}

std::vector<float> File::get_float_array(std::string_view key) const {
  const auto& a = get(key).as_array(what(path_, key));
  std::vector<float> out;
  out.reserve(a.size());
  for (const Value& v : a) out.push_back(static_cast<float>(v.as_float(what(path_, key) + " element")));
  return out;
}

std::vector<int64_t> File::get_int_array(std::string_view key) const {
  const auto& a = get(key).as_array(what(path_, key));
  std::vector<int64_t> out;
  out.reserve(a.size());
  for (const Value& v : a) out.push_back(v.as_int(what(path_, key) + " element"));
  return out;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) throw Error(path_ + ": missing tensor '" + std::string(name) + "'");
  return *t;
}

}  // namespace hai::gguf
