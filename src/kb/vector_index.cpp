#include "kb/vector_index.h"

// hnswlib 0.6's SSE path prefetches one link past the end of a node's
// upper-layer link list (a heap over-read that AddressSanitizer reports);
// without it the library uses the distance function it is given, which
// here is our own (InnerProductDistance below).
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/common/error.h"

namespace hai::kb {

namespace {

// Graph parameters: M = 16 links per node and ef_construction = 100 build
// a graph with > 0.95 recall@10 on embedding-like data; searches use
// ef = max(64, k).
constexpr size_t kM = 16;
constexpr size_t kEfConstruction = 100;
constexpr size_t kEfSearch = 64;
constexpr size_t kInitialCapacity = 1024;

}  // namespace

namespace {

// 1 - <a, b>: hnswlib's inner-product "distance" (smaller is closer).
// Eight independent partial sums let the CPU overlap the multiply-adds.
float InnerProductDistance(const void* pa, const void* pb, const void* param) {
  const float* a = static_cast<const float*>(pa);
  const float* b = static_cast<const float*>(pb);
  const size_t n = *static_cast<const size_t*>(param);
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return 1.0f - sum;
}

class InnerProductSpace : public hnswlib::SpaceInterface<float> {
 public:
  explicit InnerProductSpace(size_t dim) : dim_(dim) {}
  size_t get_data_size() override { return dim_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return InnerProductDistance; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  size_t dim_;
};

}  // namespace

struct VectorIndex::Impl {
  explicit Impl(int dim) : space(static_cast<size_t>(dim)) {}
  InnerProductSpace space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;
};

void Normalize(std::vector<float>* v) {
  double s = 0;
  for (float x : *v) s += static_cast<double>(x) * x;
  if (s <= 0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(s));
  for (float& x : *v) x *= inv;
}

float Dot(const float* a, const float* b, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

VectorIndex::VectorIndex(int dim) : dim_(dim) {
  if (dim < 1) throw Error("vector index: invalid dimension " + std::to_string(dim));
  impl_ = std::make_unique<Impl>(dim);
  impl_->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(&impl_->space, kInitialCapacity, kM,
                                                                   kEfConstruction, /*random_seed=*/100);
}

VectorIndex::~VectorIndex() = default;

void VectorIndex::Add(int64_t id, const float* v) {
  auto& h = *impl_->hnsw;
  bool existed = h.label_lookup_.count(static_cast<hnswlib::labeltype>(id)) > 0;
  bool was_deleted = existed && h.isMarkedDeleted(h.label_lookup_[static_cast<hnswlib::labeltype>(id)]);
  if (!existed && h.cur_element_count >= h.max_elements_) h.resizeIndex(h.max_elements_ * 2);
  h.addPoint(v, static_cast<hnswlib::labeltype>(id));
  if (!existed || was_deleted) ++live_;
}

void VectorIndex::Remove(int64_t id) {
  auto& h = *impl_->hnsw;
  auto it = h.label_lookup_.find(static_cast<hnswlib::labeltype>(id));
  if (it == h.label_lookup_.end() || h.isMarkedDeleted(it->second)) return;
  h.markDelete(static_cast<hnswlib::labeltype>(id));
  --live_;
}

std::vector<std::pair<float, int64_t>> VectorIndex::Search(const float* q, int k) const {
  std::vector<std::pair<float, int64_t>> out;
  if (live_ == 0 || k < 1) return out;
  auto& h = *impl_->hnsw;
  h.setEf(std::max(kEfSearch, static_cast<size_t>(k)));
  auto pq = h.searchKnn(q, std::min(static_cast<size_t>(k), live_));
  // hnswlib's inner-product "distance" is 1 - dot; the queue pops the worst first.
  while (!pq.empty()) {
    out.emplace_back(1.0f - pq.top().first, static_cast<int64_t>(pq.top().second));
    pq.pop();
  }
  std::reverse(out.begin(), out.end());
  return out;
}

void VectorIndex::Save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  try {
    impl_->hnsw->saveIndex(tmp);
  } catch (const std::exception& e) {
    throw Error("cannot write vector index " + tmp + ": " + e.what());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error("cannot write vector index " + path + ": " + ec.message());
}

namespace {

template <typename T>
bool ReadPod(std::ifstream& in, T* v) {
  return static_cast<bool>(in.read(reinterpret_cast<char*>(v), sizeof(T)));
}

// Checks an hnswlib file before hnswlib reads it (hnswlib 0.6 trusts the
// sizes it reads and cannot recover from a throw halfway): the header's
// layout must be the one of `dim`-float vectors, and the element records
// must add up to the file size. Returns "" when fine, else what is wrong.
std::string CheckIndexFile(const std::string& path, int dim) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open file";
  in.seekg(0, std::ios::end);
  const uint64_t total = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  size_t offset_level0, max_elements, count, per_element, label_offset, offset_data, max_m, max_m0, m, ef_c;
  int max_level;
  unsigned enter;
  double mult;
  if (!ReadPod(in, &offset_level0) || !ReadPod(in, &max_elements) || !ReadPod(in, &count) ||
      !ReadPod(in, &per_element) || !ReadPod(in, &label_offset) || !ReadPod(in, &offset_data) ||
      !ReadPod(in, &max_level) || !ReadPod(in, &enter) || !ReadPod(in, &max_m) || !ReadPod(in, &max_m0) ||
      !ReadPod(in, &m) || !ReadPod(in, &mult) || !ReadPod(in, &ef_c))
    return "truncated header";
  const size_t data = static_cast<size_t>(dim) * sizeof(float);
  if (max_m0 == 0 || max_m0 > 4096 || max_m == 0 || max_m > 4096 || max_level < 0 || max_level > 64)
    return "invalid graph parameters";
  const size_t links0 = max_m0 * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  if (offset_data != links0 || label_offset != links0 + data ||
      per_element != links0 + data + sizeof(hnswlib::labeltype))
    return "not an index of vectors of dimension " + std::to_string(dim);
  if (count > max_elements || count > (uint64_t{1} << 34) || (count > 0 && enter >= count))
    return "invalid element count";
  const size_t links = max_m * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  uint64_t pos = static_cast<uint64_t>(in.tellg()) + static_cast<uint64_t>(count) * per_element;
  for (size_t i = 0; i < count; ++i) {
    if (pos + sizeof(unsigned) > total) return "truncated";
    in.seekg(static_cast<std::streamoff>(pos));
    unsigned size = 0;
    if (!ReadPod(in, &size)) return "truncated";
    if (size % links != 0 || size / links > 64) return "invalid link list";
    pos += sizeof(unsigned) + size;
  }
  if (pos != total) return "file size does not match its contents";
  return "";
}

}  // namespace

std::unique_ptr<VectorIndex> VectorIndex::Load(const std::string& path, int dim) {
  auto idx = std::make_unique<VectorIndex>(dim);
  if (std::string why = CheckIndexFile(path, dim); !why.empty())
    throw Error("cannot read vector index " + path + ": " + why);
  auto& h = *idx->impl_->hnsw;
  // Reuse the fully initialised empty index: free what loadIndex replaces.
  free(h.data_level0_memory_);
  free(h.linkLists_);
  delete h.visited_list_pool_;
  h.data_level0_memory_ = nullptr;
  h.linkLists_ = nullptr;
  h.visited_list_pool_ = nullptr;
  h.num_deleted_ = 0;
  try {
    h.loadIndex(path, &idx->impl_->space);
  } catch (const std::exception& e) {
    // Only on memory exhaustion after the check above; the object may be
    // half-loaded, so it is leaked rather than destroyed.
    idx->impl_.release();
    throw Error("cannot read vector index " + path + ": " + e.what());
  }
  idx->live_ = h.cur_element_count - h.num_deleted_;
  return idx;
}

}  // namespace hai::kb
