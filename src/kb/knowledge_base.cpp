#include "kb/knowledge_base.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "engine/common/error.h"
#include "kb/analyzer.h"
#include "kb/sqlite_db.h"
#include "kb/text.h"
#include "kb/vector_index.h"

namespace fs = std::filesystem;

namespace hai::kb {

namespace {

constexpr int kSchemaVersion = 2;
constexpr double kK1 = 1.2;
constexpr double kB = 0.75;
// Character bigrams of Han text are indexed beside the words (terms "~ab"):
// they match where the segmenter cut query and passage differently. Query
// bigrams weigh kBigramWeight (a word weighs 1).
constexpr double kBigramWeight = 0.2;

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents(
  id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, name TEXT NOT NULL, type TEXT NOT NULL,
  hash TEXT NOT NULL, bytes INTEGER NOT NULL, mtime INTEGER NOT NULL, added INTEGER NOT NULL,
  n_chunks INTEGER NOT NULL, n_chars INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS documents_name ON documents(name);
CREATE TABLE IF NOT EXISTS chunks(
  id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id), seq INTEGER NOT NULL,
  page INTEGER NOT NULL, row INTEGER NOT NULL, heading TEXT NOT NULL, start INTEGER NOT NULL,
  end INTEGER NOT NULL, text TEXT NOT NULL, n_terms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
-- One row per (term, document): the document's postings for the term, as
-- varints (chunk id delta, 2 x term frequency, 2 x chunk length in terms).
CREATE TABLE IF NOT EXISTS postings(
  term TEXT NOT NULL, doc_id INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY(term, doc_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_doc ON postings(doc_id);
)sql";

// Dense vectors (float32, L2-normalised), written with their chunk. Created
// on open as well, so knowledge bases made before dense retrieval gain it.
const char* kVectorSchema = R"sql(
CREATE TABLE IF NOT EXISTS vectors(
  chunk_id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, vec BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS vectors_doc ON vectors(doc_id);
)sql";

// Reciprocal-rank fusion constant (Cormack et al. 2009) and the depth of
// each list that is fused.
constexpr double kRrfK = 60.0;
constexpr size_t kFusionDepth = 50;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  uint64_t r = 0;
  int shift = 0;
  while (!in->empty() && shift < 64) {
    auto b = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    r |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
    shift += 7;
  }
  return false;
}

// 128-bit content hash (two independent 64-bit FNV-1a variants): enough to
// tell whether a file changed, not a security measure.
std::string ContentHash(std::string_view bytes) {
  uint64_t h1 = 1469598103934665603ULL, h2 = 0x9E3779B97F4A7C15ULL;
  for (unsigned char c : bytes) {
    h1 = (h1 ^ c) * 1099511628211ULL;
    h2 = (h2 ^ c) * 0x100000001B3ULL;
    h2 ^= h2 >> 29;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h1),
                static_cast<unsigned long long>(h2));
  return buf;
}

std::string KbPath(const std::string& data_dir, const std::string& name) { return data_dir + "/kb/" + name + ".sqlite"; }

std::string GetMeta(Db& db, const char* key, const std::string& def = "") {
  Stmt s(db, "SELECT value FROM meta WHERE key=?");
  s.Bind(1, std::string_view(key));
  return s.Step() ? s.Text(0) : def;
}

void SetMeta(Db& db, const char* key, const std::string& value) {
  Stmt s(db, "INSERT INTO meta(key,value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  s.Bind(1, std::string_view(key)).Bind(2, std::string_view(value)).Run();
}

void AddToStat(Db& db, const char* key, int64_t delta) {
  int64_t v = std::stoll(GetMeta(db, key, "0"));
  SetMeta(db, key, std::to_string(v + delta));
}

// Parses YYYY-MM-DD (UTC midnight); throws naming the option.
int64_t ParseDate(const std::string& s, const char* option) {
  int y, m, d;
  char extra;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || m < 1 || m > 12 || d < 1 || d > 31 ||
      s.size() != 10)
    throw Error(std::string(option) + ": invalid date '" + s + "' (expected YYYY-MM-DD)");
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  return static_cast<int64_t>(timegm(&tm));
}

// Test hook: HAI_KB_TEST_PAUSE_AT=N makes the N-th document of this process
// stop inside its transaction, after all its rows are written and before
// COMMIT, having created the file $HAI_KB_TEST_PAUSE_FILE; it then waits
// (to be killed). Lets a test kill ingest at a known point.
void MaybePauseForTest(int n) {
  const char* at = std::getenv("HAI_KB_TEST_PAUSE_AT");
  if (!at || std::atoi(at) != n) return;
  if (const char* f = std::getenv("HAI_KB_TEST_PAUSE_FILE")) std::ofstream(f) << n << "\n";
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace

const char* StatusName(AddResult::Status s) {
  switch (s) {
    case AddResult::kAdded: return "added";
    case AddResult::kUpdated: return "updated";
    case AddResult::kUnchanged: return "unchanged";
    case AddResult::kSkipped: return "skipped";
    case AddResult::kFailed: return "failed";
  }
  return "?";
}

std::string DefaultDataDir() {
  if (const char* h = std::getenv("HAI_HOME"); h && *h) return h;
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.hai";
  throw Error("no data directory: set HAI_HOME or HOME, or pass --data-dir");
}

void ValidateName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.';
  for (char c : name)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  if (!ok)
    throw Error("invalid knowledge base name '" + name +
                "' (use letters, digits, '_', '-', '.'; at most 64; not starting with '.')");
}

KnowledgeBase::KnowledgeBase(std::string name, std::unique_ptr<Db> db)
    : name_(std::move(name)), db_(std::move(db)), analyzer_(std::make_unique<Analyzer>()) {
  analyzer_->LoadDefaultSynonyms();
}

KnowledgeBase::~KnowledgeBase() {
  try {
    SaveIndex();
  } catch (const std::exception&) {
    // Not saved: the index is rebuilt from SQLite when next needed.
  }
}

void KnowledgeBase::Flush() { SaveIndex(); }

void KnowledgeBase::Create(const std::string& data_dir, const std::string& name, const ChunkerOptions& chunking,
                           const std::string& embed_model) {
  ValidateName(name);
  ValidateChunkerOptions(chunking);
  std::error_code ec;
  fs::create_directories(data_dir + "/kb", ec);
  if (ec) throw Error("cannot create data directory " + data_dir + "/kb: " + ec.message());
  std::string path = KbPath(data_dir, name);
  if (fs::exists(path)) throw Error("knowledge base '" + name + "' already exists (" + path + ")");
  Db db(path, true);
  db.Exec("PRAGMA journal_mode=WAL");
  db.Exec(kSchema);
  db.Exec(kVectorSchema);
  Transaction tx(db);
  Analyzer analyzer;
  SetMeta(db, "schema_version", std::to_string(kSchemaVersion));
  SetMeta(db, "analyzer", analyzer.kind());
  SetMeta(db, "chunk_size", std::to_string(chunking.size));
  SetMeta(db, "chunk_overlap", std::to_string(chunking.overlap));
  SetMeta(db, "n_chunks", "0");
  SetMeta(db, "total_terms", "0");
  SetMeta(db, "created", std::to_string(std::time(nullptr)));
  SetMeta(db, "embed_model", embed_model);
  SetMeta(db, "bigrams", "1");
  SetMeta(db, "embed_dim", "0");
  SetMeta(db, "vec_gen", "0");
  SetMeta(db, "hnsw_gen", "-1");
  tx.Commit();
}

std::vector<KbSummary> KnowledgeBase::List(const std::string& data_dir) {
  std::vector<KbSummary> out;
  std::error_code ec;
  if (!fs::is_directory(data_dir + "/kb", ec)) return out;
  for (auto& e : fs::directory_iterator(data_dir + "/kb", ec)) {
    std::string fn = e.path().filename().string();
    if (fn.size() <= 7 || fn.substr(fn.size() - 7) != ".sqlite") continue;
    KbSummary s;
    s.name = fn.substr(0, fn.size() - 7);
    Db db(e.path().string(), false);
    Stmt c(db, "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)");
    if (c.Step()) {
      s.documents = c.Int(0);
      s.chunks = c.Int(1);
    }
    s.embed_model = GetMeta(db, "embed_model");
    out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

std::unique_ptr<KnowledgeBase> KnowledgeBase::Open(const std::string& data_dir, const std::string& name) {
  ValidateName(name);
  std::string path = KbPath(data_dir, name);
  if (!fs::exists(path))
    throw Error("no knowledge base named '" + name + "' in " + data_dir + " (create it with: hai kb create " + name +
                ")");
  auto db = std::make_unique<Db>(path, false);
  db->Exec("PRAGMA foreign_keys=ON");
  // WAL + NORMAL: a killed process never corrupts the file or loses a
  // committed document; only a power cut may lose the last commits.
  db->Exec("PRAGMA synchronous=NORMAL");
  {
    Stmt s(*db, "SELECT count(*) FROM sqlite_master WHERE name='meta'");
    if (!s.Step() || s.Int(0) == 0) throw Error(path + ": not a hai knowledge base");
  }
  std::string version = GetMeta(*db, "schema_version");
  if (version != std::to_string(kSchemaVersion))
    throw Error(path + ": unsupported knowledge base schema version '" + version + "'");
  db->Exec(kVectorSchema);
  std::unique_ptr<KnowledgeBase> kb(new KnowledgeBase(name, std::move(db)));
  kb->path_ = path;
  kb->dim_ = std::stoi(GetMeta(*kb->db_, "embed_dim", "0"));
  kb->bigrams_ = GetMeta(*kb->db_, "bigrams", "0") == "1";
  kb->chunking_.size = std::stoi(GetMeta(*kb->db_, "chunk_size", "800"));
  kb->chunking_.overlap = std::stoi(GetMeta(*kb->db_, "chunk_overlap", "150"));
  std::string built = GetMeta(*kb->db_, "analyzer");
  if (built != kb->analyzer_->kind())
    throw Error("knowledge base '" + name + "' was indexed with analyser '" + built + "' but this machine has '" +
                kb->analyzer_->kind() + "' (is the jieba dictionary " + Segmenter::DefaultDictionaryPath() +
                " missing? install python3-jieba or set HAI_JIEBA_DICT)");
  return kb;
}

void KnowledgeBase::Drop(const std::string& data_dir, const std::string& name) {
  ValidateName(name);
  std::string path = KbPath(data_dir, name);
  if (!fs::exists(path)) throw Error("no knowledge base named '" + name + "' in " + data_dir);
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
  fs::remove(data_dir + "/kb/" + name + ".hnsw");
  fs::remove(data_dir + "/kb/" + name + ".hnsw.tmp");
}

int64_t KnowledgeBase::chunk_count() { return std::stoll(GetMeta(*db_, "n_chunks", "0")); }

std::vector<AddResult> KnowledgeBase::Add(const std::vector<std::string>& paths,
                                          const std::function<void(const AddResult&)>& progress) {
  if (!embed_model().empty() && !embed_) Embed({});  // throws: the model is needed to add
  if (embed_) EnsureIndex();
  std::vector<AddResult> results;
  auto report = [&](AddResult r) {
    if (progress) progress(r);
    results.push_back(std::move(r));
  };
  auto add_file = [&](const fs::path& p, bool explicit_file) {
    AddResult r;
    r.path = p.string();
    std::string type = TypeForPath(r.path);
    if (type.empty()) {
      r.status = explicit_file ? AddResult::kFailed : AddResult::kSkipped;
      r.message = "unsupported file type";
      report(r);
      return;
    }
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      r.message = "cannot open for reading";
      report(r);
      return;
    }
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    struct stat st;
    int64_t mtime = ::stat(r.path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtime) : 0;
    std::error_code ec;
    fs::path abs = fs::weakly_canonical(fs::absolute(p), ec);
    report(AddOne(ec ? r.path : abs.string(), p.filename().string(), bytes, mtime));
  };
  for (const auto& arg : paths) {
    std::error_code ec;
    fs::path p(arg);
    if (!fs::exists(p, ec)) {
      AddResult r;
      r.path = arg;
      r.message = "no such file or directory";
      report(r);
    } else if (fs::is_directory(p, ec)) {
      std::vector<fs::path> files;
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) break;
        std::string fn = it->path().filename().string();
        if (!fn.empty() && fn[0] == '.') {  // hidden files and folders
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) files.push_back(it->path());
      }
      std::sort(files.begin(), files.end());
      for (auto& f : files) add_file(f, false);
    } else {
      add_file(p, true);
    }
  }
  SaveIndex();
  return results;
}

AddResult KnowledgeBase::AddBytes(const std::string& name, const std::string& bytes) {
  if (!embed_model().empty() && !embed_) Embed({});
  if (embed_) EnsureIndex();
  // The index file is written by Flush() or when the object goes away, not
  // after every document (it is rewritten whole).
  return AddOne(name, fs::path(name).filename().string(), bytes, 0);
}

AddResult KnowledgeBase::AddOne(const std::string& path, const std::string& display_name, const std::string& bytes,
                                int64_t mtime) {
  AddResult r;
  r.path = path;
  r.bytes = static_cast<int64_t>(bytes.size());
  std::string hash = ContentHash(bytes);
  int64_t old_id = 0;
  {
    Stmt s(*db_, "SELECT id, hash, n_chunks FROM documents WHERE path=?");
    s.Bind(1, std::string_view(path));
    if (s.Step()) {
      old_id = s.Int(0);
      if (s.Text(1) == hash) {
        r.status = AddResult::kUnchanged;
        r.chunks = s.Int(2);
        return r;
      }
    }
  }
  try {
    Extracted ex = ExtractBytes(bytes, TypeForPath(path), path);
    std::vector<Chunk> chunks = ChunkSections(ex.sections, chunking_);
    std::string text = JoinSections(ex.sections);
    // Analyse before the transaction: the write lock is held only briefly.
    // Term weights are stored doubled, as integers: a body occurrence counts
    // 2, an occurrence in the heading path 1 (a mild field boost: the heading
    // is repeated on every chunk of its section, so it must not dominate).
    std::vector<std::unordered_map<std::string, int>> tfs(chunks.size());
    std::vector<int64_t> lens(chunks.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      for (auto& t : analyzer_->Terms(chunks[i].heading)) {
        tfs[i][t] += 1;
        lens[i] += 1;
      }
      for (auto& t : analyzer_->Terms(chunks[i].text)) {
        tfs[i][t] += 2;
        lens[i] += 2;
      }
      // Bigrams count like words but not towards the length (which
      // normalises the word scores).
      if (bigrams_)
        for (auto& t : analyzer_->HanBigrams(chunks[i].text)) tfs[i][t] += 2;
    }
    // Dense vectors, also made before the write lock is taken.
    const bool dense = !GetMeta(*db_, "embed_model").empty();
    std::vector<std::vector<float>> vecs;
    if (dense) {
      std::vector<std::string> texts;
      for (auto& c : chunks) texts.push_back(c.heading.empty() ? c.text : c.heading + "\n" + c.text);
      vecs = Embed(texts);
    }
    Transaction tx(*db_);
    std::vector<int64_t> removed;
    if (old_id) removed = DeleteDocument(old_id);
    Stmt ins_doc(*db_,
                 "INSERT INTO documents(path,name,type,hash,bytes,mtime,added,n_chunks,n_chars,text) "
                 "VALUES(?,?,?,?,?,?,?,?,?,?)");
    ins_doc.Bind(1, std::string_view(path))
        .Bind(2, std::string_view(display_name))
        .Bind(3, std::string_view(ex.type))
        .Bind(4, std::string_view(hash))
        .Bind(5, static_cast<int64_t>(bytes.size()))
        .Bind(6, mtime)
        .Bind(7, static_cast<int64_t>(std::time(nullptr)))
        .Bind(8, static_cast<int64_t>(chunks.size()))
        .Bind(9, static_cast<int64_t>(CountCodePoints(text)))
        .Bind(10, std::string_view(text))
        .Run();
    int64_t doc_id = db_->LastInsertId();
    Stmt ins_chunk(*db_,
                   "INSERT INTO chunks(doc_id,seq,page,row,heading,start,end,text,n_terms) VALUES(?,?,?,?,?,?,?,?,?)");
    // term -> postings of this document, in chunk order
    std::map<std::string, std::string> postings;
    std::map<std::string, int64_t> last_chunk;
    int64_t total_terms = 0;
    std::vector<int64_t> chunk_ids(chunks.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      const Chunk& c = chunks[i];
      ins_chunk.Bind(1, doc_id)
          .Bind(2, static_cast<int64_t>(i))
          .Bind(3, static_cast<int64_t>(c.page))
          .Bind(4, static_cast<int64_t>(c.row))
          .Bind(5, std::string_view(c.heading))
          .Bind(6, c.start)
          .Bind(7, c.end)
          .Bind(8, std::string_view(c.text))
          .Bind(9, lens[i])
          .Run();
      int64_t chunk_id = db_->LastInsertId();
      chunk_ids[i] = chunk_id;
      total_terms += lens[i];
      for (auto& [term, tf] : tfs[i]) {
        std::string& blob = postings[term];
        int64_t prev = last_chunk.count(term) ? last_chunk[term] : 0;
        PutVarint(&blob, static_cast<uint64_t>(chunk_id - prev));
        PutVarint(&blob, static_cast<uint64_t>(tf));
        PutVarint(&blob, static_cast<uint64_t>(lens[i]));
        last_chunk[term] = chunk_id;
      }
    }
    Stmt ins_post(*db_, "INSERT INTO postings(term,doc_id,data) VALUES(?,?,?)");
    for (auto& [term, blob] : postings) ins_post.Bind(1, std::string_view(term)).Bind(2, doc_id).BindBlob(3, blob).Run();
    AddToStat(*db_, "n_chunks", static_cast<int64_t>(chunks.size()));
    AddToStat(*db_, "total_terms", total_terms);
    if (dense) {
      Stmt ins_vec(*db_, "INSERT INTO vectors(chunk_id,doc_id,vec) VALUES(?,?,?)");
      for (size_t i = 0; i < chunks.size(); ++i)
        ins_vec.Bind(1, chunk_ids[i])
            .Bind(2, doc_id)
            .BindBlob(3, std::string_view(reinterpret_cast<const char*>(vecs[i].data()), vecs[i].size() * 4))
            .Run();
    }
    const int64_t gen = std::stoll(GetMeta(*db_, "vec_gen", "0"));
    SetMeta(*db_, "vec_gen", std::to_string(gen + 1));
    MaybePauseForTest(++ingested_);
    tx.Commit();
    // The same change in the in-memory index, when it reflected the state
    // just before this transaction; else it is rebuilt when next needed.
    if (index_ && index_gen_ == gen) {
      for (int64_t id : removed) index_->Remove(id);
      for (size_t i = 0; i < vecs.size(); ++i) index_->Add(chunk_ids[i], vecs[i].data());
      index_gen_ = gen + 1;
      index_dirty_ = true;
    } else if (dense) {
      // No index yet (the first vectors fix the dimension), or another
      // process wrote meanwhile: build it from the stored vectors.
      index_.reset();
      EnsureIndex();
    }
    r.status = old_id ? AddResult::kUpdated : AddResult::kAdded;
    r.chunks = static_cast<int64_t>(chunks.size());
  } catch (const Error& e) {
    r.status = AddResult::kFailed;
    r.message = e.what();
    // Messages already name the path; keep only what follows it.
    if (r.message.rfind(path + ": ", 0) == 0) r.message = r.message.substr(path.size() + 2);
  }
  return r;
}

std::vector<int64_t> KnowledgeBase::DeleteDocument(int64_t doc_id) {
  std::vector<int64_t> ids;
  {
    Stmt q(*db_, "SELECT id FROM chunks WHERE doc_id=?");
    q.Bind(1, doc_id);
    while (q.Step()) ids.push_back(q.Int(0));
  }
  Stmt st(*db_, "SELECT count(*), coalesce(sum(n_terms),0) FROM chunks WHERE doc_id=?");
  st.Bind(1, doc_id);
  int64_t n = 0, terms = 0;
  if (st.Step()) {
    n = st.Int(0);
    terms = st.Int(1);
  }
  Stmt(*db_, "DELETE FROM postings WHERE doc_id=?").Bind(1, doc_id).Run();
  Stmt(*db_, "DELETE FROM vectors WHERE doc_id=?").Bind(1, doc_id).Run();
  Stmt(*db_, "DELETE FROM chunks WHERE doc_id=?").Bind(1, doc_id).Run();
  Stmt(*db_, "DELETE FROM documents WHERE id=?").Bind(1, doc_id).Run();
  AddToStat(*db_, "n_chunks", -n);
  AddToStat(*db_, "total_terms", -terms);
  return ids;
}

std::vector<DocumentInfo> KnowledgeBase::Documents() {
  std::vector<DocumentInfo> out;
  Stmt s(*db_,
         "SELECT id,name,path,type,hash,bytes,n_chunks,n_chars,mtime,added FROM documents ORDER BY name, path");
  while (s.Step()) {
    DocumentInfo d;
    d.id = s.Int(0);
    d.name = s.Text(1);
    d.path = s.Text(2);
    d.type = s.Text(3);
    d.hash = s.Text(4);
    d.bytes = s.Int(5);
    d.chunks = s.Int(6);
    d.chars = s.Int(7);
    d.mtime = s.Int(8);
    d.added = s.Int(9);
    out.push_back(d);
  }
  return out;
}

int64_t KnowledgeBase::Remove(const std::string& doc) {
  std::vector<std::pair<int64_t, std::string>> matches;
  Stmt s(*db_, "SELECT id, path FROM documents WHERE path=? OR name=?");
  s.Bind(1, std::string_view(doc)).Bind(2, std::string_view(doc));
  while (s.Step()) matches.emplace_back(s.Int(0), s.Text(1));
  if (matches.empty()) throw Error("no document '" + doc + "' in knowledge base '" + name_ + "'");
  if (matches.size() > 1) {
    // A full path match wins over several file names.
    auto exact = std::find_if(matches.begin(), matches.end(), [&](auto& m) { return m.second == doc; });
    if (exact == matches.end()) {
      std::string list;
      for (auto& m : matches) list += "\n  " + m.second;
      throw Error("document name '" + doc + "' is ambiguous in knowledge base '" + name_ +
                  "'; give the path:" + list);
    }
    matches = {*exact};
  }
  Stmt c(*db_, "SELECT n_chunks FROM documents WHERE id=?");
  c.Bind(1, matches[0].first);
  int64_t n = c.Step() ? c.Int(0) : 0;
  // The index (loaded or rebuilt before the change; no embedder needed)
  // follows the deletion, so the next search does not rebuild it.
  if (!embed_model().empty()) EnsureIndex();
  Transaction tx(*db_);
  std::vector<int64_t> removed = DeleteDocument(matches[0].first);
  const int64_t gen = std::stoll(GetMeta(*db_, "vec_gen", "0"));
  SetMeta(*db_, "vec_gen", std::to_string(gen + 1));
  tx.Commit();
  if (index_ && index_gen_ == gen) {
    for (int64_t id : removed) index_->Remove(id);
    index_gen_ = gen + 1;
    index_dirty_ = true;
    SaveIndex();
  } else {
    index_.reset();
  }
  return n;
}

std::vector<int64_t> KnowledgeBase::ChunkLengths() {
  std::vector<int64_t> out;
  Stmt s(*db_, "SELECT end - start FROM chunks");
  while (s.Step()) out.push_back(s.Int(0));
  return out;
}

std::string KnowledgeBase::DocumentText(int64_t doc_id) {
  Stmt s(*db_, "SELECT text FROM documents WHERE id=?");
  s.Bind(1, doc_id);
  if (!s.Step()) throw Error("no document with id " + std::to_string(doc_id));
  return s.Text(0);
}

std::vector<int64_t> KnowledgeBase::AllowedDocs(const SearchOptions& opt, bool* filtered) {
  *filtered = !opt.docs.empty() || !opt.types.empty() || !opt.after.empty() || !opt.before.empty();
  std::vector<int64_t> ids;
  if (!*filtered) return ids;
  int64_t after = opt.after.empty() ? INT64_MIN : ParseDate(opt.after, "--after");
  int64_t before = opt.before.empty() ? INT64_MAX : ParseDate(opt.before, "--before");
  std::set<std::string> docs(opt.docs.begin(), opt.docs.end()), types(opt.types.begin(), opt.types.end());
  Stmt s(*db_, "SELECT id, name, path, type, mtime FROM documents");
  while (s.Step()) {
    if (!docs.empty() && !docs.count(s.Text(1)) && !docs.count(s.Text(2))) continue;
    if (!types.empty() && !types.count(s.Text(3))) continue;
    if (s.Int(4) < after || s.Int(4) >= before) continue;
    ids.push_back(s.Int(0));
  }
  return ids;
}

std::vector<std::pair<double, int64_t>> KnowledgeBase::Bm25Ranked(const std::string& query, const SearchOptions& opt,
                                                                 size_t n) {
  bool filtered = false;
  std::vector<int64_t> allowed = AllowedDocs(opt, &filtered);
  std::sort(allowed.begin(), allowed.end());
  const double n_chunks = static_cast<double>(std::max<int64_t>(1, chunk_count()));
  // total_terms holds doubled lengths (see AddOne).
  const double avgdl = std::max(1.0, 0.5 * std::stod(GetMeta(*db_, "total_terms", "0")) / n_chunks);

  // Scores accumulate in a dense array indexed by chunk id (ids are row ids,
  // nearly contiguous), with the list of touched ids kept on the side.
  int64_t max_id = 0;
  {
    Stmt m(*db_, "SELECT coalesce(max(id), 0) FROM chunks");
    if (m.Step()) max_id = m.Int(0);
  }
  std::vector<float> scores(static_cast<size_t>(max_id) + 1, 0.0f);
  std::vector<int64_t> touched;
  Stmt s(*db_, "SELECT doc_id, data FROM postings WHERE term=?");
  struct Posting {
    int64_t chunk;
    uint64_t tf2, len2;
  };
  // The postings of a term (within the filter), and its idf.
  auto load = [&](const std::string& term, std::vector<Posting>* ps) {
    ps->clear();
    s.Bind(1, std::string_view(term));
    while (s.Step()) {
      int64_t doc = s.Int(0);
      if (filtered && !std::binary_search(allowed.begin(), allowed.end(), doc)) continue;
      std::string_view blob = s.Blob(1);
      int64_t chunk = 0;
      uint64_t d, tf2, len2;
      while (GetVarint(&blob, &d) && GetVarint(&blob, &tf2) && GetVarint(&blob, &len2)) {
        chunk += static_cast<int64_t>(d);
        if (chunk <= max_id) ps->push_back({chunk, tf2, len2});
      }
    }
    s.Reset();
    const double df = static_cast<double>(ps->size());
    return std::log(1.0 + (n_chunks - df + 0.5) / (df + 0.5));
  };
  auto accumulate = [&](const std::vector<Posting>& ps, double weight, double idf) {
    for (auto& p : ps) {
      const double tf = 0.5 * static_cast<double>(p.tf2);
      const double norm = kK1 * (1.0 - kB + kB * 0.5 * static_cast<double>(p.len2) / avgdl);
      float& sc = scores[static_cast<size_t>(p.chunk)];
      if (sc == 0.0f) touched.push_back(p.chunk);
      sc += static_cast<float>(weight * idf * tf * (kK1 + 1.0) / (tf + norm));
    }
  };
  std::vector<Posting> ps;
  std::map<std::string, double> qterms = analyzer_->QueryTerms(query);
  if (bigrams_)
    for (auto& b : analyzer_->HanBigrams(query)) qterms.try_emplace(b, kBigramWeight);
  for (auto& [term, weight] : qterms) {
    if (weight <= 0) continue;
    const double idf = load(term, &ps);
    if (!ps.empty()) accumulate(ps, weight, idf);
  }
  std::vector<std::pair<double, int64_t>> ranked;
  ranked.reserve(touched.size());
  for (int64_t chunk : touched) ranked.emplace_back(scores[static_cast<size_t>(chunk)], chunk);
  auto better = [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
  Rerank(query, &ranked);
  size_t k = std::min(ranked.size(), n);
  std::partial_sort(ranked.begin(), ranked.begin() + k, ranked.end(), better);
  ranked.resize(k);
  return ranked;
}

std::vector<std::pair<double, int64_t>> KnowledgeBase::DenseRanked(const std::string& query, const SearchOptions& opt,
                                                                  size_t n) {
  std::vector<float> q = Embed({query})[0];
  bool filtered = false;
  std::vector<int64_t> allowed = AllowedDocs(opt, &filtered);
  std::vector<std::pair<double, int64_t>> ranked;
  if (filtered) {
    // A filter selects few documents: exact search over their vectors.
    Stmt s(*db_, "SELECT chunk_id, vec FROM vectors WHERE doc_id=?");
    for (int64_t doc : allowed) {
      s.Bind(1, doc);
      while (s.Step()) {
        std::string_view b = s.Blob(1);
        if (b.size() != q.size() * sizeof(float)) continue;
        std::vector<float> v(q.size());
        std::memcpy(v.data(), b.data(), b.size());
        ranked.emplace_back(Dot(q.data(), v.data(), static_cast<int>(q.size())), s.Int(0));
      }
      s.Reset();
    }
    auto better = [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
    size_t k = std::min(ranked.size(), n);
    std::partial_sort(ranked.begin(), ranked.begin() + k, ranked.end(), better);
    ranked.resize(k);
    return ranked;
  }
  EnsureIndex();
  if (!index_) return ranked;
  for (auto& [sim, id] : index_->Search(q.data(), static_cast<int>(n))) ranked.emplace_back(sim, id);
  return ranked;
}

std::vector<Hit> KnowledgeBase::Search(const std::string& query, const SearchOptions& opt) {
  if (opt.top_k < 1) throw Error("--top must be at least 1 (got " + std::to_string(opt.top_k) + ")");
  const bool has_model = !embed_model().empty();
  SearchMode mode = opt.mode;
  if (mode == SearchMode::kAuto) mode = has_model ? SearchMode::kHybrid : SearchMode::kBm25;
  if (mode != SearchMode::kBm25 && !has_model)
    throw Error(std::string("--mode ") + SearchModeName(mode) + ": knowledge base '" + name_ +
                "' has no embedding model (create it with --embed-model, or add one with: hai kb embed " + name_ +
                " --embed-model FILE.gguf)");
  const size_t k = static_cast<size_t>(opt.top_k);
  std::vector<std::pair<double, int64_t>> bm25, dense, ranked;
  if (mode != SearchMode::kDense) bm25 = Bm25Ranked(query, opt, mode == SearchMode::kBm25 ? k : std::max(k, kFusionDepth));
  if (mode != SearchMode::kBm25) dense = DenseRanked(query, opt, mode == SearchMode::kDense ? k : std::max(k, kFusionDepth));
  std::unordered_map<int64_t, int> bm25_rank, dense_rank;
  std::unordered_map<int64_t, double> dense_sim;
  for (size_t i = 0; i < bm25.size(); ++i) bm25_rank[bm25[i].second] = static_cast<int>(i) + 1;
  for (size_t i = 0; i < dense.size(); ++i) {
    dense_rank[dense[i].second] = static_cast<int>(i) + 1;
    dense_sim[dense[i].second] = dense[i].first;
  }
  if (mode == SearchMode::kBm25) {
    ranked = bm25;
  } else if (mode == SearchMode::kDense) {
    ranked = dense;
  } else {
    // Reciprocal-rank fusion: robust to the two scores' different scales.
    std::unordered_map<int64_t, double> fused;
    for (size_t i = 0; i < bm25.size(); ++i) fused[bm25[i].second] += 1.0 / (kRrfK + static_cast<double>(i + 1));
    for (size_t i = 0; i < dense.size(); ++i) fused[dense[i].second] += 1.0 / (kRrfK + static_cast<double>(i + 1));
    for (auto& [id, sc] : fused) ranked.emplace_back(sc, id);
    auto better = [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
    size_t n = std::min(ranked.size(), k);
    std::partial_sort(ranked.begin(), ranked.begin() + n, ranked.end(), better);
    ranked.resize(n);
  }
  if (ranked.size() > k) ranked.resize(k);
  std::vector<Hit> hits;
  Stmt get(*db_,
           "SELECT d.name, d.path, d.type, c.page, c.row, c.heading, c.start, c.end, c.text "
           "FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id=?");
  for (size_t i = 0; i < ranked.size(); ++i) {
    get.Bind(1, ranked[i].second);
    if (get.Step()) {
      Hit h;
      h.chunk_id = ranked[i].second;
      h.doc = get.Text(0);
      h.path = get.Text(1);
      h.type = get.Text(2);
      h.page = static_cast<int>(get.Int(3));
      h.row = static_cast<int>(get.Int(4));
      h.heading = get.Text(5);
      h.start = get.Int(6);
      h.end = get.Int(7);
      h.text = get.Text(8);
      h.score = ranked[i].first;
      if (auto it = bm25_rank.find(h.chunk_id); it != bm25_rank.end()) h.bm25_rank = it->second;
      if (auto it = dense_rank.find(h.chunk_id); it != dense_rank.end()) {
        h.dense_rank = it->second;
        h.dense_score = dense_sim[h.chunk_id];
      }
      hits.push_back(std::move(h));
    }
    get.Reset();
  }
  return hits;
}

SearchMode ParseSearchMode(const std::string& s) {
  if (s == "auto") return SearchMode::kAuto;
  if (s == "bm25") return SearchMode::kBm25;
  if (s == "dense") return SearchMode::kDense;
  if (s == "hybrid") return SearchMode::kHybrid;
  throw Error("--mode: unknown search mode '" + s + "' (expected bm25, dense, hybrid or auto)");
}

const char* SearchModeName(SearchMode m) {
  switch (m) {
    case SearchMode::kAuto: return "auto";
    case SearchMode::kBm25: return "bm25";
    case SearchMode::kDense: return "dense";
    case SearchMode::kHybrid: return "hybrid";
  }
  return "?";
}

std::string KnowledgeBase::embed_model() { return GetMeta(*db_, "embed_model"); }

void KnowledgeBase::AttachEmbedder(EmbedFn fn) { embed_ = std::move(fn); }

std::string KnowledgeBase::IndexPath() const {
  return path_.substr(0, path_.size() - std::string(".sqlite").size()) + ".hnsw";
}

// Embeds in batches, checks the shape and normalises every vector. The
// first vectors of a knowledge base fix its dimension.
std::vector<std::vector<float>> KnowledgeBase::Embed(const std::vector<std::string>& texts) {
  if (!embed_)
    throw Error("knowledge base '" + name_ + "' uses the embedding model '" + embed_model() +
                "', which is not loaded (is the file still there?)");
  constexpr size_t kBatch = 16;
  std::vector<std::vector<float>> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); i += kBatch) {
    std::vector<std::string> batch(texts.begin() + static_cast<std::ptrdiff_t>(i),
                                   texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), i + kBatch)));
    auto vecs = embed_(batch);
    if (vecs.size() != batch.size())
      throw Error("embedding model returned " + std::to_string(vecs.size()) + " vectors for " +
                  std::to_string(batch.size()) + " texts");
    for (auto& v : vecs) {
      if (v.empty()) throw Error("embedding model returned an empty vector");
      if (dim_ == 0) {
        dim_ = static_cast<int>(v.size());
        SetMeta(*db_, "embed_dim", std::to_string(dim_));
      }
      if (static_cast<int>(v.size()) != dim_)
        throw Error("embedding model returned vectors of dimension " + std::to_string(v.size()) +
                    ", but knowledge base '" + name_ + "' holds dimension " + std::to_string(dim_) +
                    " (re-embed it with: hai kb embed " + name_ + " --embed-model FILE.gguf)");
      for (float x : v)
        if (!std::isfinite(x)) throw Error("embedding model returned a non-finite value");
      Normalize(&v);
      out.push_back(std::move(v));
    }
  }
  return out;
}

// Makes index_ reflect the stored vectors: kept when it already does, else
// loaded from NAME.hnsw when the database says that file is current, else
// rebuilt from the vectors table (and saved).
void KnowledgeBase::EnsureIndex() {
  const int64_t gen = std::stoll(GetMeta(*db_, "vec_gen", "0"));
  if (index_ && index_gen_ == gen) return;
  index_.reset();
  dim_ = std::stoi(GetMeta(*db_, "embed_dim", "0"));
  if (dim_ == 0) return;  // no vectors yet
  const std::string file = IndexPath();
  std::error_code ec;
  const auto bytes = fs::file_size(file, ec);
  if (!ec && GetMeta(*db_, "hnsw_gen") == std::to_string(gen) &&
      GetMeta(*db_, "hnsw_bytes") == std::to_string(bytes)) {
    try {
      index_ = VectorIndex::Load(file, dim_);
      index_gen_ = gen;
      return;
    } catch (const Error&) {
      index_.reset();  // unreadable: rebuilt below
    }
  }
  index_ = std::make_unique<VectorIndex>(dim_);
  Stmt s(*db_, "SELECT chunk_id, vec FROM vectors");
  std::vector<float> v(static_cast<size_t>(dim_));
  while (s.Step()) {
    std::string_view b = s.Blob(1);
    if (b.size() != v.size() * sizeof(float))
      throw Error(path_ + ": stored vector of chunk " + std::to_string(s.Int(0)) + " has " +
                  std::to_string(b.size()) + " bytes, expected " + std::to_string(v.size() * sizeof(float)));
    std::memcpy(v.data(), b.data(), b.size());
    index_->Add(s.Int(0), v.data());
  }
  index_gen_ = gen;
  index_dirty_ = true;
  SaveIndex();
}

// Writes the index file, then records in the database which generation it
// holds. A crash between the two leaves the old record: the file is then
// rebuilt, never trusted.
void KnowledgeBase::SaveIndex() {
  if (!index_ || !index_dirty_) return;
  const std::string file = IndexPath();
  index_->Save(file);
  std::error_code ec;
  const auto bytes = fs::file_size(file, ec);
  Transaction tx(*db_);
  if (std::stoll(GetMeta(*db_, "vec_gen", "0")) == index_gen_) {
    SetMeta(*db_, "hnsw_gen", std::to_string(index_gen_));
    SetMeta(*db_, "hnsw_bytes", std::to_string(bytes));
  }
  tx.Commit();
  index_dirty_ = false;
}

int64_t KnowledgeBase::VectorCount() {
  Stmt s(*db_, "SELECT count(*) FROM vectors");
  return s.Step() ? s.Int(0) : 0;
}

int64_t KnowledgeBase::DenseIndexSize() {
  EnsureIndex();
  return index_ ? static_cast<int64_t>(index_->size()) : 0;
}

int64_t KnowledgeBase::Reembed(const std::string& model, EmbedFn fn,
                               const std::function<void(int64_t done, int64_t total)>& progress) {
  if (model.empty()) throw Error("--embed-model: no model given");
  embed_ = std::move(fn);
  const int64_t total = chunk_count();
  int64_t done = 0;
  // One transaction: a kill leaves the old model and vectors in place.
  Transaction tx(*db_);
  Stmt(*db_, "DELETE FROM vectors").Run();
  SetMeta(*db_, "embed_model", model);
  SetMeta(*db_, "embed_dim", "0");
  dim_ = 0;
  std::vector<int64_t> docs;
  {
    Stmt d(*db_, "SELECT id FROM documents ORDER BY id");
    while (d.Step()) docs.push_back(d.Int(0));
  }
  Stmt get(*db_, "SELECT id, heading, text FROM chunks WHERE doc_id=? ORDER BY seq");
  Stmt ins(*db_, "INSERT INTO vectors(chunk_id,doc_id,vec) VALUES(?,?,?)");
  for (int64_t doc : docs) {
    std::vector<int64_t> ids;
    std::vector<std::string> texts;
    get.Bind(1, doc);
    while (get.Step()) {
      ids.push_back(get.Int(0));
      std::string heading = get.Text(1), text = get.Text(2);
      texts.push_back(heading.empty() ? text : heading + "\n" + text);
    }
    get.Reset();
    auto vecs = Embed(texts);
    for (size_t i = 0; i < ids.size(); ++i)
      ins.Bind(1, ids[i])
          .Bind(2, doc)
          .BindBlob(3, std::string_view(reinterpret_cast<const char*>(vecs[i].data()), vecs[i].size() * 4))
          .Run();
    done += static_cast<int64_t>(ids.size());
    if (progress) progress(done, total);
  }
  const int64_t gen = std::stoll(GetMeta(*db_, "vec_gen", "0"));
  SetMeta(*db_, "vec_gen", std::to_string(gen + 1));
  tx.Commit();
  index_.reset();
  EnsureIndex();
  return done;
}

namespace {

// Normalised text for verbatim matching: NFKC, lowercase ASCII, only letters,
// digits and Han characters kept.
std::u32string MatchForm(std::string_view text) {
  std::u32string out;
  for (char32_t c : DecodeUtf8(Nfkc(text))) {
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
    if (IsAsciiAlnum(c) || IsHan(c) || c == '.') out.push_back(c);
  }
  return out;
}

}  // namespace

void KnowledgeBase::Rerank(const std::string& query, std::vector<std::pair<double, int64_t>>* ranked) {
  // Proximity bonus on the best candidates: the share of the query's
  // character 4-grams found verbatim in the chunk. A question worded like
  // the source (a name, a figure, a phrase) lifts the passage that has it.
  constexpr size_t kCandidates = 30;
  constexpr size_t kGram = 4;
  constexpr double kBeta = 0.3;  // bonus at full match: 30% of the best BM25 score
  if (ranked->empty()) return;
  std::u32string q = MatchForm(query);
  if (q.size() < kGram) return;
  std::vector<std::u32string_view> grams;
  for (size_t i = 0; i + kGram <= q.size(); ++i) grams.push_back(std::u32string_view(q).substr(i, kGram));
  size_t n = std::min(kCandidates, ranked->size());
  std::partial_sort(ranked->begin(), ranked->begin() + n, ranked->end(),
                    [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  const double top = (*ranked)[0].first;
  Stmt get(*db_, "SELECT text FROM chunks WHERE id=?");
  for (size_t i = 0; i < n; ++i) {
    get.Bind(1, (*ranked)[i].second);
    if (get.Step()) {
      std::u32string t = MatchForm(get.Text(0));
      size_t hits = 0;
      for (auto g : grams) hits += t.find(g) != std::u32string::npos;
      (*ranked)[i].first += kBeta * top * static_cast<double>(hits) / static_cast<double>(grams.size());
    }
    get.Reset();
  }
}

Answer KnowledgeBase::Ask(const std::string& question, const SearchOptions& opt) {
  SearchOptions o = opt;
  o.top_k = std::min(opt.top_k, 3);
  return AnswerFrom(question, Search(question, o));
}

Answer KnowledgeBase::AnswerFrom(const std::string& question, std::vector<Hit> sources) const {
  Answer a;
  a.sources = std::move(sources);
  if (a.sources.empty()) return a;
  auto qterms = analyzer_->QueryTerms(question);
  // From each cited passage, the sentences that share the most query terms
  // (weighted), in their order in the passage: at most two per passage.
  for (size_t i = 0; i < a.sources.size(); ++i) {
    std::u32string u = DecodeUtf8(a.sources[i].text);
    auto spans = SplitSentences(u);
    auto sentence = [&](size_t j) { return EncodeUtf8(u.substr(spans[j].first, spans[j].second - spans[j].first)); };
    std::vector<std::pair<double, size_t>> scored;
    for (size_t j = 0; j < spans.size(); ++j) {
      std::set<std::string> seen;
      double sc = 0;
      for (auto& t : analyzer_->Terms(sentence(j))) {
        auto it = qterms.find(t);
        if (it != qterms.end() && seen.insert(t).second) sc += it->second;
      }
      if (sc > 0) scored.emplace_back(sc, j);
    }
    std::stable_sort(scored.begin(), scored.end(), [](auto& x, auto& y) { return x.first > y.first; });
    if (scored.size() > 2) scored.resize(2);
    std::sort(scored.begin(), scored.end(), [](auto& x, auto& y) { return x.second < y.second; });
    std::string part;
    for (auto& [sc, j] : scored) {
      // A heading line or a list item has no final punctuation: keep a space.
      if (!part.empty() && !IsSentenceEnd(DecodeUtf8(part).back())) part += " ";
      part += sentence(j);
    }
    if (part.empty()) part = a.sources[i].text;
    if (!a.text.empty()) a.text += "\n";
    a.text += part + " [" + std::to_string(i + 1) + "]";
  }
  return a;
}

}  // namespace hai::kb
