// kb::KnowledgeBase: the interface the CLI (and later the HTTP server and
// agents) use. A knowledge base is one SQLite file, <data-dir>/kb/NAME.sqlite,
// holding its documents (with their cleaned text), their chunks (text, page,
// heading, character offsets) and a BM25 inverted index.
//
// Ingest is transactional per document: a document is either fully indexed
// or absent, even if the process is killed halfway. Re-adding an unchanged
// file does nothing (content hash); a changed file replaces its chunks.
//
// Retrieval today is lexical: BM25 (k1 = 1.2, b = 0.75) over analysed terms
// (Chinese words by jieba-style segmentation, stemmed English). A dense
// retriever (embeddings + HNSW) can be added beside it: Search() is the one
// entry point, and hits carry everything a citation needs.
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

// The data directory: $HAI_HOME, else ~/.hai.
std::string DefaultDataDir();

// Checks a knowledge-base name (letters, digits, '_', '-', '.', not
// starting with '.', at most 64 bytes); throws hai::Error naming it.
void ValidateName(const std::string& name);

struct KbSummary {
  std::string name;
  int64_t documents = 0;
  int64_t chunks = 0;
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

struct SearchOptions {
  int top_k = 5;
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
  double score = 0;
};

struct Answer {
  std::string text;          // extractive answer with [n] citation marks
  std::vector<Hit> sources;  // sources[n-1] is cited as [n]
};

class KnowledgeBase {
 public:
  // Creates an empty knowledge base; throws when it exists or the name is bad.
  static void Create(const std::string& data_dir, const std::string& name, const ChunkerOptions& chunking = {});
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
  AddResult AddBytes(const std::string& name, const std::string& bytes);

  std::vector<DocumentInfo> Documents();
  // Removes a document (by file name or path) and all its chunks. Throws
  // when none matches or a file name is ambiguous. Returns the chunks removed.
  int64_t Remove(const std::string& doc);

  // BM25 search. Throws hai::Error for invalid options (top_k < 1, bad date).
  std::vector<Hit> Search(const std::string& query, const SearchOptions& opt = {});
  // Extractive answer: the best sentences of the best passages, cited.
  Answer Ask(const std::string& question, const SearchOptions& opt = {});

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
  void DeleteDocument(int64_t doc_id);
  std::vector<int64_t> AllowedDocs(const SearchOptions& opt, bool* filtered);
  void Rerank(const std::string& query, std::vector<std::pair<double, int64_t>>* ranked);

  std::string name_;
  std::unique_ptr<Db> db_;
  std::unique_ptr<Analyzer> analyzer_;
  ChunkerOptions chunking_;
  int ingested_ = 0;  // documents committed by this process (test hook)
};

}  // namespace hai::kb
