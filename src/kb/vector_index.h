// VectorIndex: approximate nearest-neighbour search over unit vectors by
// inner product (= cosine similarity), an HNSW graph from hnswlib. Each
// vector carries a 64-bit id (the chunk id). The index is a cache: the
// vectors themselves live in SQLite, and the knowledge base rebuilds the
// index from them whenever the saved file does not match (see
// knowledge_base.h), so the index can never disagree with the database.
//
// Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace hai::kb {

class VectorIndex {
 public:
  // An empty index for vectors of `dim` floats. Throws hai::Error for dim < 1.
  explicit VectorIndex(int dim);
  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  // Adds (or replaces) the vector with this id. `v` has dim() floats and
  // should be L2-normalised (see Normalize).
  void Add(int64_t id, const float* v);
  // Removes an id; unknown ids are ignored.
  void Remove(int64_t id);
  // The `k` nearest live vectors: (similarity, id), most similar first.
  std::vector<std::pair<float, int64_t>> Search(const float* q, int k) const;

  // Writes the index to `path` (atomically: a temporary file renamed).
  // Throws hai::Error naming the file.
  void Save(const std::string& path) const;
  // Reads an index saved by Save(). Throws hai::Error naming the file when
  // it is unreadable or not an index of `dim`-float vectors.
  static std::unique_ptr<VectorIndex> Load(const std::string& path, int dim);

  int dim() const { return dim_; }
  // Live (not removed) vectors.
  size_t size() const { return live_; }

 private:
  struct Impl;
  int dim_;
  size_t live_ = 0;
  std::unique_ptr<Impl> impl_;
};

// Scales `v` to unit length (a zero vector stays zero).
void Normalize(std::vector<float>* v);
// Inner product of two vectors of equal length.
float Dot(const float* a, const float* b, int n);

}  // namespace hai::kb
