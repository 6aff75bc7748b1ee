// kb::KnowledgeBase: the interface the CLI (and later the HTTP server and
// agents) use. A knowledge base is one SQLite file, <data-dir>/kb/NAME.sqlite,
// holding its documents (with their cleaned text), their chunks (text, page,
// heading, character offsets) and a BM25 inverted index.
//
// Ingest is transactional per document: a document is either fully indexed
// or absent, even if the process is killed halfway. Re-adding an unchanged
// file does nothing (content hash); a changed file replaces its chunks.
//
// Retrieval has three modes (SearchOptions::mode):
//  - bm25: lexical, BM25 (k1 = 1.2, b = 0.75) over analysed terms (Chinese
//    words by jieba-style segmentation, stemmed English, question words
//    dropped, synonym expansion) plus Han character bigrams indexed beside
//    the words (a second, low-weight field that matches where the segmenter
//    cut query and passage differently), then a verbatim-overlap bonus on the
//    best candidates. Always available; the default without a model.
//  - dense: cosine similarity of embeddings. A knowledge base created with an
//    embedding model (Create(..., embed_model)) stores one vector per chunk in
//    SQLite, in the same transaction as the chunk, and keeps an HNSW index of
//    them in NAME.hnsw next to the database. The index is a cache: the
//    database records which write generation it reflects, and an index that
//    does not match (a process killed after a commit, before saving the
//    index) is rebuilt from the stored vectors. So a kill never leaves the
//    index disagreeing with SQLite.
//  - hybrid: reciprocal-rank fusion of both lists (score = sum over lists of
//    1 / (60 + rank)); the default when the knowledge base has a model.
// The embedding function is injected (AttachEmbedder), so the knowledge base
// does not depend on how vectors are made; the CLI attaches model::Embedder.
// Search() is the one entry point, and hits carry everything a citation needs.
//
// Not thread-safe: use one KnowledgeBase per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kb/chunker.h"

namespace hai::kb {

class Analyzer;
class Db;
class VectorIndex;

// The data directory: $HAI_HOME, else ~/.hai.
std::string DefaultDataDir();

// Checks a knowledge-base name (letters, digits, '_', '-', '.', not
// starting with '.', at most 64 bytes); throws hai::Error naming it.
void ValidateName(const std::string& name);

struct KbSummary {
  std::string name;
  int64_t documents = 0;
  int64_t chunks = 0;
  std::string embed_model;  // "" when BM25 only
};

struct DocumentInfo {
  int64_t id = 0;
  std::string name;  // file name
  std::string path;  // absolute path when added
  std::string type;  // txt, md, html, pdf, docx, csv, xlsx
  std::string hash;
  int64_t bytes = 0;
  int64_t chunks = 0;
  int64_t chars = 0;   // length of the cleaned text in code points
  int64_t mtime = 0;   // file modification time (Unix seconds)
  int64_t added = 0;   // when it was indexed (Unix seconds)
};

// What happened to one path given to Add().
struct AddResult {
  enum Status { kAdded, kUpdated, kUnchanged, kSkipped, kFailed };
  std::string path;
  Status status = kFailed;
  std::string message;  // why it failed or was skipped
  int64_t chunks = 0;
  int64_t bytes = 0;
};
const char* StatusName(AddResult::Status s);

// Turns texts into vectors (one per text, all of the same dimension).
using EmbedFn = std::function<std::vector<std::vector<float>>(const std::vector<std::string>&)>;

enum class SearchMode { kAuto, kBm25, kDense, kHybrid };
// "auto", "bm25", "dense", "hybrid"; throws hai::Error naming the value.
SearchMode ParseSearchMode(const std::string& s);
const char* SearchModeName(SearchMode m);

struct SearchOptions {
  int top_k = 5;
  SearchMode mode = SearchMode::kAuto;  // auto: hybrid when the KB has a model, else bm25
  std::vector<std::string> docs;   // only these documents (name or path)
  std::vector<std::string> types;  // only these types
  std::string after;               // only documents modified on/after YYYY-MM-DD
  std::string before;              // only documents modified before YYYY-MM-DD
};

struct Hit {
  int64_t chunk_id = 0;
  std::string doc;  // file name
  std::string path;
  std::string type;
  int page = 0;
  int row = 0;
  std::string heading;
  int64_t start = 0;  // code point offsets in the document text
  int64_t end = 0;
  std::string text;
  double score = 0;      // the score of the mode used (BM25, cosine, or fused RRF)
  int bm25_rank = 0;     // 1-based rank in the BM25 list (0: not in it / not run)
  int dense_rank = 0;    // 1-based rank in the dense list (0: not in it / not run)
  double dense_score = 0;  // cosine similarity when the dense list has it
};

struct Answer {
  std::string text;          // extractive answer with [n] citation marks
  std::vector<Hit> sources;  // sources[n-1] is cited as [n]
};

class KnowledgeBase {
 public:
  // Creates an empty knowledge base; throws when it exists or the name is bad.
  // With `embed_model` (an identifier, usually the GGUF path) the knowledge
  // base keeps dense vectors: an embedder must then be attached before
  // adding documents or searching in dense/hybrid mode.
  static void Create(const std::string& data_dir, const std::string& name, const ChunkerOptions& chunking = {},
                     const std::string& embed_model = "");
  // Knowledge bases in `data_dir`, sorted by name.
  static std::vector<KbSummary> List(const std::string& data_dir);
  // Opens an existing knowledge base; throws hai::Error when missing.
  static std::unique_ptr<KnowledgeBase> Open(const std::string& data_dir, const std::string& name);
  // Removes a knowledge base entirely.
  static void Drop(const std::string& data_dir, const std::string& name);

  ~KnowledgeBase();

  // Adds files and folders (recursively). Every file gets one result;
  // `progress` (optional) is called after each. Never throws for a bad
  // file: that is a kFailed result, and the rest goes on.
  std::vector<AddResult> Add(const std::vector<std::string>& paths,
                             const std::function<void(const AddResult&)>& progress = nullptr);
  // Adds one document from memory under `name` (type from its extension).
  // The vector index file is saved by Flush() or the destructor (Add()
  // saves it at its end); a crash before that only costs a rebuild.
  AddResult AddBytes(const std::string& name, const std::string& bytes);
  // Writes the vector index file if it changed since it was last saved.
  void Flush();

  std::vector<DocumentInfo> Documents();
  // Removes a document (by file name or path) and all its chunks. Throws
  // when none matches or a file name is ambiguous. Returns the chunks removed.
  int64_t Remove(const std::string& doc);

  // BM25 search. Throws hai::Error for invalid options (top_k < 1, bad date).
  // Dense/hybrid mode without an attached embedder, or on a knowledge base
  // without a model, throws hai::Error saying so.
  std::vector<Hit> Search(const std::string& query, const SearchOptions& opt = {});
  // Extractive answer: the best sentences of the best passages, cited.
  Answer Ask(const std::string& question, const SearchOptions& opt = {});
  // The extractive answer over the given passages (which become the
  // sources, [n] = sources[n-1]): from each, the (at most two) sentences
  // sharing the most query terms, in passage order.
  Answer AnswerFrom(const std::string& question, std::vector<Hit> sources) const;

  // The embedding model recorded at creation (or by Reembed); "" for none.
  std::string embed_model();
  // Attaches the function that embeds this knowledge base's model. Vectors
  // it returns must have the recorded dimension (checked on first use).
  void AttachEmbedder(EmbedFn fn);
  bool has_embedder() const { return static_cast<bool>(embed_); }
  // Records `model` as the knowledge base's embedding model and re-embeds
  // every chunk with `fn` (one transaction per document; the index is
  // rebuilt). Returns the chunks embedded. This is the explicit step when
  // the model changes, or to give a BM25-only knowledge base vectors.
  int64_t Reembed(const std::string& model, EmbedFn fn,
                  const std::function<void(int64_t done, int64_t total)>& progress = nullptr);
  // Stored vectors, and live vectors in the HNSW index (loading or
  // rebuilding it as a search would); for tests and statistics.
  int64_t VectorCount();
  int64_t DenseIndexSize();

  // The cleaned text of a document (what chunk offsets refer to).
  std::string DocumentText(int64_t doc_id);
  ChunkerOptions chunking() const { return chunking_; }
  const std::string& name() const { return name_; }
  int64_t chunk_count();
  // Length in code points of every chunk (for statistics).
  std::vector<int64_t> ChunkLengths();

 private:
  KnowledgeBase(std::string name, std::unique_ptr<Db> db);
  AddResult AddOne(const std::string& path, const std::string& display_name, const std::string& bytes,
                   int64_t mtime);
  std::vector<int64_t> DeleteDocument(int64_t doc_id);  // returns the chunk ids removed
  std::vector<int64_t> AllowedDocs(const SearchOptions& opt, bool* filtered);
  void Rerank(const std::string& query, std::vector<std::pair<double, int64_t>>* ranked);
  // Ranked (score, chunk id) lists of each retriever, best first, at most n.
  std::vector<std::pair<double, int64_t>> Bm25Ranked(const std::string& query, const SearchOptions& opt, size_t n);
  std::vector<std::pair<double, int64_t>> DenseRanked(const std::string& query, const SearchOptions& opt, size_t n);
  std::vector<std::vector<float>> Embed(const std::vector<std::string>& texts);
  void EnsureIndex();
  void SaveIndex();
  std::string IndexPath() const;

  std::string name_;
  std::unique_ptr<Db> db_;
  std::unique_ptr<Analyzer> analyzer_;
  ChunkerOptions chunking_;
  int ingested_ = 0;  // documents committed by this process (test hook)
  std::string path_;  // the SQLite file
  EmbedFn embed_;
  int dim_ = 0;  // vector dimension; 0 until known
  std::unique_ptr<VectorIndex> index_;
  int64_t index_gen_ = -1;  // the write generation the in-memory index reflects
  bool index_dirty_ = false;
  bool bigrams_ = false;  // Han bigrams indexed beside words (knowledge bases made since session 2)
};

}  // namespace hai::kb
