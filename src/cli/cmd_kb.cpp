// hai kb: knowledge bases (create, add, ls, rm, search, ask, embed, reranker, drop).
//
// Reranking: search and ask rerank the best --rerank-top fused candidates
// with a cross-encoder when --rerank FILE is given or the knowledge base is
// configured with one (create --rerank-model, or `hai kb reranker NAME
// --model FILE`); --no-rerank turns it off for one call.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "engine/common/error.h"
#include "kb/knowledge_base.h"
#include "kb/llm.h"
#include "kb/prompt.h"
#include "kb/rerank.h"

namespace {

using hai::kb::KnowledgeBase;

struct KbArgs {
  std::string data_dir;
  std::string name;
  std::vector<std::string> paths;
  std::string doc;
  std::string query;
  int top = 5;
  bool json = false;
  int chunk_size = 800;
  int overlap = 150;
  std::vector<std::string> filter_docs, filter_types;
  std::string after, before;
  std::string embed_model;  // create / embed
  std::string search_mode = "auto";
  std::string chat_model;  // ask --model
  std::string answer_mode = "grounded";
  hai::kb::GenerateOptions gen;
  bool verbose = false;
  std::string rerank_model;  // search/ask --rerank, create --rerank-model, reranker --model
  int rerank_top = 0;        // 0: the knowledge base's setting, else the default
  bool no_rerank = false;
  bool rerank_off = false;   // reranker --off
};

// The reranker a search or ask uses: --rerank, else the knowledge base's,
// unless --no-rerank. Empty function when none.
struct ChosenReranker {
  hai::kb::RerankFn fn;
  int top = hai::kb::kDefaultRerankTop;
  std::string model;
};

ChosenReranker ChooseReranker(const KbArgs& a, const std::string& data_dir) {
  ChosenReranker c;
  if (a.no_rerank) {
    if (!a.rerank_model.empty()) throw hai::Error("--rerank and --no-rerank exclude each other");
    return c;
  }
  hai::kb::RerankConfig cfg;
  if (a.rerank_model.empty()) cfg = hai::kb::GetRerankConfig(data_dir, a.name);
  c.model = a.rerank_model.empty() ? cfg.model : a.rerank_model;
  c.top = a.rerank_top > 0 ? a.rerank_top : cfg.top;
  if (c.model.empty()) {
    if (a.rerank_top > 0) throw hai::Error("--rerank-top needs a reranker (--rerank FILE, or one configured with hai kb reranker)");
    return c;
  }
  c.fn = hai::kb::LoadReranker(c.model, a.gen.n_threads);
  return c;
}

// Attaches the knowledge base's embedding model when it has one.
void AttachEmbedder(KnowledgeBase& k, const KbArgs& a) {
  std::string m = k.embed_model();
  if (!m.empty()) k.AttachEmbedder(hai::kb::LoadEmbedder(m, a.gen.n_threads));
}

std::string DataDir(const KbArgs& a) { return a.data_dir.empty() ? hai::kb::DefaultDataDir() : a.data_dir; }

nlohmann::json HitJson(const hai::kb::Hit& h) {
  nlohmann::json j = {{"doc", h.doc},         {"chunk", h.chunk_id}, {"text", h.text},    {"score", h.score},
                      {"path", h.path},       {"type", h.type},      {"heading", h.heading},
                      {"start", h.start},     {"end", h.end}};
  j["page"] = h.page > 0 ? nlohmann::json(h.page) : nlohmann::json(nullptr);
  if (h.row > 0) j["row"] = h.row;
  if (h.bm25_rank > 0) j["bm25_rank"] = h.bm25_rank;
  if (h.dense_rank > 0) {
    j["dense_rank"] = h.dense_rank;
    j["dense_score"] = h.dense_score;
  }
  return j;
}

nlohmann::json RerankedJson(const hai::kb::RerankedHit& r) {
  nlohmann::json j = HitJson(r.hit);
  j["rerank_score"] = r.hit.score;
  j["retrieval_rank"] = r.retrieval_rank;
  j["retrieval_score"] = r.retrieval_score;
  return j;
}

void AddRerankFlags(CLI::App* sub, KbArgs* a) {
  sub->add_option("--rerank", a->rerank_model,
                  "GGUF reranker (cross-encoder): rerank the best fused candidates (default: the knowledge base's "
                  "reranker, if configured)");
  sub->add_option("--rerank-top", a->rerank_top, "candidates to rerank (default: the knowledge base's setting, else 30)")
      ->check(CLI::Range(1, 1000));
  sub->add_flag("--no-rerank", a->no_rerank, "do not rerank, even when the knowledge base has a reranker");
}

std::string Location(const hai::kb::Hit& h) { return hai::kb::SourceLabel(h); }

std::string Excerpt(const std::string& text, size_t max_chars) {
  // Cut at a code point boundary.
  size_t n = 0, i = 0;
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (n == max_chars) break;
      ++n;
    }
  }
  std::string s = text.substr(0, i);
  for (char& c : s)
    if (c == '\n') c = ' ';
  return i < text.size() ? s + "..." : s;
}

hai::kb::SearchOptions Options(const KbArgs& a) {
  hai::kb::SearchOptions o;
  o.top_k = a.top;
  o.docs = a.filter_docs;
  o.types = a.filter_types;
  o.after = a.after;
  o.before = a.before;
  o.mode = hai::kb::ParseSearchMode(a.search_mode);
  return o;
}

void AddFilters(CLI::App* sub, KbArgs* a) {
  sub->add_option("--top,-k", a->top, "number of passages")->check(CLI::PositiveNumber);
  sub->add_option("--doc", a->filter_docs, "only this document (file name or path; repeatable)");
  sub->add_option("--type", a->filter_types, "only documents of this type: txt md html pdf docx csv xlsx")
      ->check(CLI::IsMember({"txt", "md", "html", "pdf", "docx", "csv", "xlsx"}));
  sub->add_option("--after", a->after, "only documents modified on or after YYYY-MM-DD");
  sub->add_option("--before", a->before, "only documents modified before YYYY-MM-DD");
  sub->add_flag("--json", a->json, "print JSON");
}

hai::cli::Register reg([](CLI::App& app) {
  auto a = std::make_shared<KbArgs>();
  auto* kb = app.add_subcommand("kb", "knowledge bases: ingest documents, search them, answer with citations");
  kb->require_subcommand(1);
  kb->add_option("--data-dir", a->data_dir, "data directory (default $HAI_HOME or ~/.hai)");
  kb->add_option("-t,--threads", a->gen.n_threads, "threads for embedding and chat models (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  kb->fallthrough();

  auto* create = kb->add_subcommand("create", "create an empty knowledge base");
  create->add_option("name", a->name, "knowledge base name")->required();
  create->add_option("--embed-model", a->embed_model,
                     "GGUF embedding model: keep dense vectors too (hybrid search); default BM25 only");
  create->add_option("--chunk-size", a->chunk_size, "maximum characters per chunk (default 800)");
  create->add_option("--overlap", a->overlap, "characters of overlap between chunks (default 150)");
  create->add_option("--rerank-model", a->rerank_model,
                     "GGUF reranker (cross-encoder) that search and ask use to reorder the best candidates");
  create->add_option("--rerank-top", a->rerank_top, "candidates the reranker reorders (default 30)")
      ->check(CLI::Range(1, 1000));
  create->callback([a] {
    hai::kb::ChunkerOptions c;
    c.size = a->chunk_size;
    c.overlap = a->overlap;
    std::string model;
    if (!a->embed_model.empty()) {
      // Load it once now: a bad file is reported before anything is created.
      hai::kb::LoadEmbedder(a->embed_model, 1);
      model = std::filesystem::absolute(a->embed_model).string();
    }
    if (a->rerank_top > 0 && a->rerank_model.empty()) throw hai::Error("--rerank-top needs --rerank-model");
    if (!a->rerank_model.empty()) hai::kb::LoadReranker(a->rerank_model, 1);  // a bad file fails before creating
    KnowledgeBase::Create(DataDir(*a), a->name, c, model);
    if (!a->rerank_model.empty())
      hai::kb::SetRerankConfig(DataDir(*a), a->name,
                               {std::filesystem::absolute(a->rerank_model).string(),
                                a->rerank_top > 0 ? a->rerank_top : hai::kb::kDefaultRerankTop});
    std::printf("created knowledge base '%s'\n", a->name.c_str());
  });

  auto* drop = kb->add_subcommand("drop", "delete a knowledge base and everything in it");
  drop->add_option("name", a->name, "knowledge base name")->required();
  drop->callback([a] {
    KnowledgeBase::Drop(DataDir(*a), a->name);
    std::printf("dropped knowledge base '%s'\n", a->name.c_str());
  });

  auto* add = kb->add_subcommand("add", "add files and folders (recursively) to a knowledge base");
  add->add_option("name", a->name, "knowledge base name")->required();
  add->add_option("paths", a->paths, "files or folders")->required();
  add->add_flag("--json", a->json, "print one JSON object per file");
  add->callback([a] {
    auto k = KnowledgeBase::Open(DataDir(*a), a->name);
    AttachEmbedder(*k, *a);
    int failed = 0, ok = 0;
    k->Add(a->paths, [&](const hai::kb::AddResult& r) {
      if (r.status == hai::kb::AddResult::kFailed) ++failed;
      if (r.status != hai::kb::AddResult::kFailed && r.status != hai::kb::AddResult::kSkipped) ++ok;
      if (a->json) {
        nlohmann::json j = {{"path", r.path}, {"status", hai::kb::StatusName(r.status)}, {"chunks", r.chunks}};
        if (!r.message.empty()) j["error"] = r.message;
        std::printf("%s\n", j.dump().c_str());
      } else if (r.status == hai::kb::AddResult::kFailed || r.status == hai::kb::AddResult::kSkipped) {
        std::fprintf(stderr, "hai: %s %s: %s\n", r.status == hai::kb::AddResult::kFailed ? "error:" : "skipped",
                     r.path.c_str(), r.message.c_str());
      } else {
        std::printf("%-9s %s (%lld chunks)\n", hai::kb::StatusName(r.status), r.path.c_str(),
                    static_cast<long long>(r.chunks));
      }
      std::fflush(stdout);
    });
    // Some files failed: report it in the exit code, but the rest is in.
    if (failed > 0) throw hai::Error(std::to_string(failed) + " file(s) could not be added; " + std::to_string(ok) +
                                     " added or up to date");
  });

  auto* ls = kb->add_subcommand("ls", "list knowledge bases, or the documents of one");
  ls->add_option("name", a->name, "knowledge base name");
  ls->add_flag("--json", a->json, "print JSON");
  ls->callback([a] {
    if (a->name.empty()) {
      auto all = KnowledgeBase::List(DataDir(*a));
      nlohmann::json j = nlohmann::json::array();
      for (auto& s : all) {
        if (a->json) {
          const std::string rr = hai::kb::GetRerankConfig(DataDir(*a), s.name).model;
          j.push_back({{"name", s.name}, {"documents", s.documents}, {"chunks", s.chunks},
                       {"embed_model", s.embed_model.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.embed_model)},
                       {"rerank_model", rr.empty() ? nlohmann::json(nullptr) : nlohmann::json(rr)}});
        } else {
          std::printf("%s\t%lld documents\t%lld chunks%s\n", s.name.c_str(), static_cast<long long>(s.documents),
                      static_cast<long long>(s.chunks), s.embed_model.empty() ? "" : ("\t" + s.embed_model).c_str());
        }
      }
      if (a->json) std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    auto k = KnowledgeBase::Open(DataDir(*a), a->name);
    nlohmann::json j = nlohmann::json::array();
    for (auto& d : k->Documents()) {
      if (a->json) {
        j.push_back({{"doc", d.name},
                     {"path", d.path},
                     {"type", d.type},
                     {"bytes", d.bytes},
                     {"chunks", d.chunks},
                     {"chars", d.chars},
                     {"hash", d.hash},
                     {"mtime", d.mtime},
                     {"added", d.added}});
      } else {
        std::printf("%s\t%s\t%lld chunks\t%lld bytes\t%s\n", d.name.c_str(), d.type.c_str(),
                    static_cast<long long>(d.chunks), static_cast<long long>(d.bytes), d.path.c_str());
      }
    }
    if (a->json) std::printf("%s\n", j.dump(2).c_str());
  });

  auto* rm = kb->add_subcommand("rm", "remove a document (file name or path) from a knowledge base");
  rm->add_option("name", a->name, "knowledge base name")->required();
  rm->add_option("doc", a->doc, "document file name or path")->required();
  rm->callback([a] {
    auto k = KnowledgeBase::Open(DataDir(*a), a->name);
    int64_t n = k->Remove(a->doc);
    std::printf("removed %s (%lld chunks)\n", a->doc.c_str(), static_cast<long long>(n));
  });

  auto* search = kb->add_subcommand("search", "search: the best passages for a query (BM25, dense or hybrid)");
  search->add_option("name", a->name, "knowledge base name")->required();
  search->add_option("query", a->query, "query text")->required();
  AddFilters(search, a.get());
  AddRerankFlags(search, a.get());
  search->add_option("--mode", a->search_mode,
                     "bm25, dense or hybrid (default: hybrid when the knowledge base has an embedding model, else bm25)");
  search->callback([a] {
    hai::kb::SearchOptions opt = Options(*a);
    auto k = KnowledgeBase::Open(DataDir(*a), a->name);
    if (opt.mode != hai::kb::SearchMode::kBm25) AttachEmbedder(*k, *a);
    const ChosenReranker rr = ChooseReranker(*a, DataDir(*a));
    // Reranked hits carry their retrieval rank; plain ones as retrieved.
    std::vector<hai::kb::RerankedHit> hits;
    if (rr.fn) {
      hits = hai::kb::SearchReranked(*k, a->query, opt, rr.fn, rr.top);
    } else {
      for (auto& h : k->Search(a->query, opt)) hits.push_back({h, 0, 0.0});
    }
    if (a->json) {
      nlohmann::json j = nlohmann::json::array();
      for (auto& r : hits) j.push_back(rr.fn ? RerankedJson(r) : HitJson(r.hit));
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    if (hits.empty()) std::printf("no results\n");
    for (size_t i = 0; i < hits.size(); ++i) {
      const std::string from = rr.fn ? "  (retrieval #" + std::to_string(hits[i].retrieval_rank) + ")" : "";
      std::printf("[%zu] %.3f  %s%s\n    %s\n", i + 1, hits[i].hit.score, Location(hits[i].hit).c_str(), from.c_str(),
                  Excerpt(hits[i].hit.text, 200).c_str());
    }
  });

  auto* ask = kb->add_subcommand(
      "ask", "answer a question from the knowledge base with numbered citations (extractive without --model)");
  ask->add_option("name", a->name, "knowledge base name")->required();
  ask->add_option("question", a->query, "question")->required();
  AddFilters(ask, a.get());
  ask->add_option("--model,-m", a->chat_model, "GGUF chat model that writes the answer from the sources");
  ask->add_option("--mode", a->answer_mode,
                  "grounded (only from the sources; says so when they lack the answer) or open (sources plus the "
                  "model's own knowledge); with --model")
      ->capture_default_str();
  ask->add_option("--search-mode", a->search_mode, "retrieval: bm25, dense or hybrid (default: as search)");
  ask->add_option("--max-tokens,-n", a->gen.max_tokens, "answer tokens at most")->capture_default_str();
  ask->add_option("--temp", a->gen.temperature, "sampling temperature (0 = greedy)")->capture_default_str();
  ask->add_option("--seed", a->gen.seed, "random seed")->capture_default_str();
  ask->add_option("-c,--ctx-size", a->gen.n_ctx, "context size (default: the model's, at most 4096)");
  ask->add_flag("--verbose", a->verbose, "print the prompt to stderr");
  AddRerankFlags(ask, a.get());
  ask->callback([a] {
    hai::kb::SearchOptions opt = Options(*a);
    auto mode = hai::kb::ParseAnswerMode(a->answer_mode);
    if (a->chat_model.empty() && a->answer_mode != "grounded")
      throw hai::Error("--mode " + a->answer_mode + " needs a chat model (--model FILE.gguf)");
    auto k = KnowledgeBase::Open(DataDir(*a), a->name);
    if (opt.mode != hai::kb::SearchMode::kBm25) AttachEmbedder(*k, *a);
    const ChosenReranker rr = ChooseReranker(*a, DataDir(*a));
    auto print_sources = [&](const std::vector<hai::kb::Hit>& sources) {
      std::printf("\nSources:\n");
      for (size_t i = 0; i < sources.size(); ++i)
        std::printf("[%zu] %s\n    \"%s\"\n", i + 1, Location(sources[i]).c_str(),
                    Excerpt(sources[i].text, 120).c_str());
    };
    auto sources_json = [&](const std::vector<hai::kb::Hit>& sources) {
      nlohmann::json src = nlohmann::json::array();
      for (size_t i = 0; i < sources.size(); ++i) {
        nlohmann::json h = HitJson(sources[i]);
        h["n"] = i + 1;
        h["excerpt"] = Excerpt(sources[i].text, 200);
        src.push_back(h);
      }
      return src;
    };
    if (a->chat_model.empty()) {
      hai::kb::Answer ans = rr.fn ? hai::kb::AskReranked(*k, a->query, opt, rr.fn, rr.top) : k->Ask(a->query, opt);
      if (a->json) {
        nlohmann::json j = {{"answer", ans.text}, {"mode", "extractive"}, {"sources", sources_json(ans.sources)}};
        std::printf("%s\n", j.dump(2).c_str());
        return;
      }
      if (ans.sources.empty()) {
        std::printf("No passage in knowledge base '%s' matches the question.\n", a->name.c_str());
        return;
      }
      std::printf("%s\n", ans.text.c_str());
      print_sources(ans.sources);
      return;
    }
    auto model = hai::kb::ChatModel::Load(a->chat_model, a->gen);
    // Text streams to stdout as it is generated (not with --json).
    size_t shown = 0;
    auto stream = [&](const std::string& text) {
      // Print only whole UTF-8 characters.
      size_t end = text.size();
      while (end > shown && (static_cast<unsigned char>(text[end - 1]) & 0xC0) == 0x80) --end;
      if (end > shown && static_cast<unsigned char>(text[end - 1]) >= 0xC0) --end;
      if (end > shown) {
        std::fwrite(text.data() + shown, 1, end - shown, stdout);
        std::fflush(stdout);
        shown = end;
      }
    };
    std::function<void(const std::string&)> on_text;
    if (!a->json) on_text = stream;
    hai::kb::GeneratedAnswer ans =
        rr.fn ? hai::kb::AskWithModelReranked(*k, *model, a->query, opt, mode, rr.fn, rr.top, on_text)
              : hai::kb::AskWithModel(*k, *model, a->query, opt, mode, on_text);
    if (a->verbose) std::fprintf(stderr, "--- prompt ---\n%s\n--- end of prompt ---\n", ans.prompt.c_str());
    if (a->json) {
      nlohmann::json j = {{"answer", ans.text},
                          {"mode", hai::kb::AnswerModeName(mode)},
                          {"model", a->chat_model},
                          {"cited", ans.cited},
                          {"sources", sources_json(ans.sources)}};
      std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return;
    }
    std::printf("\n");
    print_sources(ans.sources);
  });

  auto* reranker = kb->add_subcommand(
      "reranker", "show, set (--model FILE) or remove (--off) the reranker that search and ask use");
  reranker->add_option("name", a->name, "knowledge base name")->required();
  reranker->add_option("--model", a->rerank_model, "GGUF reranker (cross-encoder)");
  reranker->add_option("--top", a->rerank_top, "candidates it reorders (default 30)")->check(CLI::Range(1, 1000));
  reranker->add_flag("--off", a->rerank_off, "remove the reranker");
  reranker->add_flag("--json", a->json, "print the setting as JSON");
  reranker->callback([a] {
    const std::string dir = DataDir(*a);
    if (a->rerank_off && (!a->rerank_model.empty() || a->rerank_top > 0))
      throw hai::Error("--off excludes --model and --top");
    if (a->rerank_off) {
      hai::kb::SetRerankConfig(dir, a->name, {});
    } else if (!a->rerank_model.empty()) {
      hai::kb::LoadReranker(a->rerank_model, 1);  // a bad file is refused before it is recorded
      hai::kb::SetRerankConfig(dir, a->name,
                               {std::filesystem::absolute(a->rerank_model).string(),
                                a->rerank_top > 0 ? a->rerank_top : hai::kb::kDefaultRerankTop});
    } else if (a->rerank_top > 0) {
      hai::kb::RerankConfig c = hai::kb::GetRerankConfig(dir, a->name);
      if (c.model.empty()) throw hai::Error("knowledge base '" + a->name + "' has no reranker: give --model FILE");
      c.top = a->rerank_top;
      hai::kb::SetRerankConfig(dir, a->name, c);
    }
    const hai::kb::RerankConfig c = hai::kb::GetRerankConfig(dir, a->name);
    if (a->json) {
      nlohmann::json j = {{"name", a->name},
                          {"rerank_model", c.model.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.model)},
                          {"rerank_top", c.top}};
      std::printf("%s\n", j.dump().c_str());
    } else if (c.model.empty()) {
      std::printf("knowledge base '%s': no reranker\n", a->name.c_str());
    } else {
      std::printf("knowledge base '%s': reranker %s (top %d candidates)\n", a->name.c_str(), c.model.c_str(), c.top);
    }
  });

  auto* embed = kb->add_subcommand(
      "embed", "set the knowledge base's embedding model and (re-)embed every chunk (dense and hybrid search)");
  embed->add_option("name", a->name, "knowledge base name")->required();
  embed->add_option("--embed-model", a->embed_model, "GGUF embedding model")->required();
  embed->callback([a] {
    auto k = KnowledgeBase::Open(DataDir(*a), a->name);
    auto fn = hai::kb::LoadEmbedder(a->embed_model, a->gen.n_threads);
    int64_t n = k->Reembed(std::filesystem::absolute(a->embed_model).string(), fn);
    std::printf("embedded %lld chunks of '%s' with %s\n", static_cast<long long>(n), a->name.c_str(),
                a->embed_model.c_str());
  });
});

}  // namespace
