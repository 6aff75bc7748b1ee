#include "server/server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

#include <httplib.h>

#include "engine/chat/template.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/grammar/grammar.h"
#include "engine/model/embed.h"
#include "engine/model/rerank.h"
#include "engine/model/model.h"
#include "engine/sched/scheduler.h"
#include "engine/tokenizer/tokenizer.h"
#include "kb/knowledge_base.h"
#include "server/api_error.h"
#include "server/connection.h"
#include "server/kb_api.h"
#include "server/rerank_api.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/tool_calls.h"

namespace hai::server {
namespace {

using Clock = std::chrono::steady_clock;

std::string stem(const std::string& path) {
  std::string name = std::filesystem::path(path).filename().string();
  if (name.size() > 5 && name.substr(name.size() - 5) == ".gguf") name.resize(name.size() - 5);
  return name;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string token_text(const Tokenizer& tok, int32_t id) {
  if (id < 0 || id >= tok.n_vocab()) return "";
  return tok.vocab().tokens[size_t(id)];
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The events of the requests of one HTTP request (n choices, or a batch of
// prompts), handed from the scheduler thread to the HTTP worker.
struct Job {
  struct Item {
    int index;
    sched::Event event;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> events;
  int remaining = 0;
  std::vector<uint64_t> ids;
};

// What one choice accumulated.
struct ChoiceResult {
  std::string text;
  std::vector<std::pair<sched::TokenLogprob, std::vector<sched::TokenLogprob>>> logprobs;
  int64_t tokens = 0;
  bool done = false;
  sched::FinishReason finish = sched::FinishReason::Stop;
  std::string error;
  sched::Usage usage;
};

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  std::string chat_name, embed_name;
  int64_t created = unix_now();

  // Generation.
  std::unique_ptr<model::Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<sched::Scheduler> scheduler;
  std::unique_ptr<chat::Template> tmpl;
  std::string template_source, bos_text, eos_text;
  ToolFormat tool_format = ToolFormat::Hermes;
  bool renders_tools = false;

  // Embeddings: a dedicated model, or (created on first use) the chat model
  // with decoder pooling.
  std::unique_ptr<model::Embedder> embedder;
  std::mutex decoder_embedder_mu;
  std::unique_ptr<model::Embedder> decoder_embedder;

  std::unique_ptr<KbApi> kb;
  // Reranking: -m MODEL when it is a reranker, or --rerank-model.
  std::unique_ptr<RerankApi> rerank;

  Metrics metrics;
  httplib::Server http;
  std::atomic<bool> stopping{false};

  explicit Impl(ServerOptions o) : opt(std::move(o)) {}

  // ---- loading ----------------------------------------------------------

  void load() {
    if (opt.model_path.empty()) throw Error("serve: give a model with -m MODEL.gguf");
    if (opt.n_parallel < 1) throw Error("--parallel must be at least 1, got " + std::to_string(opt.n_parallel));
    if (opt.ctx_size < 16) throw Error("--ctx-size must be at least 16, got " + std::to_string(opt.ctx_size));
    if (opt.max_queue < 0) throw Error("--max-queue must not be negative");
    if (opt.timeout_s < 0) throw Error("--timeout must not be negative");
    if (opt.port < 0 || opt.port > 65535) throw Error("--port must be 0..65535, got " + std::to_string(opt.port));
    if (opt.max_body < 1024) throw Error("--max-body must be at least 1024 bytes");

    std::string arch;
    {
      gguf::File f = gguf::File::open(opt.model_path);
      arch = f.get_string_or("general.architecture", "");
    }
    const auto& gen_archs = model::supported_architectures();
    bool generative = std::find(gen_archs.begin(), gen_archs.end(), arch) != gen_archs.end();
    std::string name = opt.model_name.empty() ? stem(opt.model_path) : opt.model_name;
    if (generative) {
      chat_name = name;
      model = model::Model::load(opt.model_path);
      tokenizer = Tokenizer::from_gguf(model->file());
      if (opt.chat_template_file.empty()) {
        const gguf::Value* t = model->file().find("tokenizer.chat_template");
        template_source = t ? t->as_string("tokenizer.chat_template") : chat::kChatMlTemplate;
        tmpl = std::make_unique<chat::Template>(template_source, t ? opt.model_path + ":tokenizer.chat_template"
                                                                   : std::string("chatml"));
      } else {
        template_source = read_text_file(opt.chat_template_file);
        tmpl = std::make_unique<chat::Template>(template_source, opt.chat_template_file);
      }
      bos_text = token_text(*tokenizer, tokenizer->vocab().bos);
      eos_text = token_text(*tokenizer, tokenizer->vocab().eos);
      tool_format = detect_tool_format(template_source);
      renders_tools = template_renders_tools(template_source);
      sched::Options so;
      so.n_slots = opt.n_parallel;
      so.n_ctx_slot = opt.ctx_size;
      so.n_threads = opt.n_threads;
      so.max_queue = opt.max_queue;
      try {
        so.kv_type = model::kv_type_from_string(opt.cache_type);
      } catch (const Error& e) {
        throw Error(std::string("--cache-type: ") + e.what());
      }
      scheduler = std::make_unique<sched::Scheduler>(*model, *tokenizer, so);
    } else {
      if (!opt.embedding_model_path.empty())
        throw Error(opt.model_path + ": architecture \"" + arch +
                    "\" does not generate text; give it alone with -m to serve embeddings");
      if (model::Reranker::is_reranker(opt.model_path)) {
        if (!opt.rerank_model_path.empty())
          throw Error(opt.model_path + " is a reranker: give it alone with -m, or another model with --rerank-model");
        load_reranker(opt.model_path, name);
      } else {
        embedder = model::Embedder::load(opt.model_path, model::Embedder::Options{opt.n_threads});
        embed_name = name;
      }
    }
    kb = std::make_unique<KbApi>(opt.kb_dir.empty() ? kb::DefaultDataDir() : opt.kb_dir);
    if (!opt.rerank_model_path.empty()) {
      std::string rname = stem(opt.rerank_model_path);
      if (rname == chat_name || rname == embed_name) rname += "-rerank";
      load_reranker(opt.rerank_model_path, rname);
    }
    if (rerank) kb->set_reranker(rerank->shared_reranker());
    if (!opt.embedding_model_path.empty()) {
      embedder = model::Embedder::load(opt.embedding_model_path, model::Embedder::Options{opt.n_threads});
      embed_name = stem(opt.embedding_model_path);
      if (embed_name == chat_name) embed_name += "-embedding";
    }
  }

  void load_reranker(const std::string& path, const std::string& name) {
    model::Reranker::Options ro;
    ro.n_threads = opt.n_threads;
    rerank = std::make_unique<RerankApi>(std::shared_ptr<model::Reranker>(model::Reranker::load(path, ro)), name);
  }

  // ---- helpers ----------------------------------------------------------

  Limits limits() const {
    Limits l;
    l.n_vocab = tokenizer ? tokenizer->n_vocab() : 0;
    return l;
  }

  void check_generation_model(const std::string& requested) const {
    if (!requested.empty() && requested != chat_name && !(requested == embed_name && !embed_name.empty()))
      throw ApiError::model_not_found(requested);
    if (!scheduler && rerank && embed_name.empty())
      throw ApiError::invalid("the model '" + rerank->name() + "' is a reranker; it serves /v1/rerank only", "model",
                              "model_not_supported");
    if (!scheduler) {
      throw ApiError::invalid("the model '" + (requested.empty() ? embed_name : requested) +
                                  "' is an embedding model; it serves /v1/embeddings only",
                              "model", "model_not_supported");
    }
    if (!requested.empty() && requested == embed_name)
      throw ApiError::invalid("the model '" + requested + "' is an embedding model; use '" + chat_name + "'", "model",
                              "model_not_supported");
  }

  std::vector<int32_t> encode(const std::string& text, bool add_special, const std::string& param) const {
    std::vector<int32_t> ids;
    try {
      ids = tokenizer->encode(text, add_special, true);
    } catch (const Error& e) {
      throw ApiError::invalid(std::string("'") + param + "': " + e.what(), param);
    }
    int32_t bos = tokenizer->vocab().bos;
    if (ids.size() >= 2 && bos >= 0 && ids[0] == bos && ids[1] == bos) ids.erase(ids.begin());
    return ids;
  }

  void check_prompt_length(const std::vector<int32_t>& prompt, const std::string& param) const {
    if (prompt.empty()) throw ApiError::invalid("'" + param + "' encodes to no tokens", param);
    if (int64_t(prompt.size()) >= opt.ctx_size)
      throw ApiError::invalid("This model's maximum context length is " + std::to_string(opt.ctx_size) +
                                  " tokens. However, your prompt has " + std::to_string(prompt.size()) +
                                  " tokens; no room is left for the completion.",
                              param, "context_length_exceeded");
  }

  sched::Request make_request(const GenerationParams& g, std::vector<int32_t> prompt, int seed_offset,
                              bool logprobs, int n_probs, std::shared_ptr<const grammar::Grammar> grammar,
                              uint64_t base_seed) const {
    sched::Request r;
    r.prompt = std::move(prompt);
    r.sampling = g.sampling;
    r.sampling.seed = base_seed + uint64_t(seed_offset);
    r.max_tokens = g.max_tokens;
    r.stop = g.stop;
    r.logit_bias = g.logit_bias;
    r.logprobs = logprobs;
    r.n_probs = n_probs;
    r.grammar = std::move(grammar);
    r.ignore_eos = g.ignore_eos;
    if (opt.timeout_s > 0)
      r.deadline = Clock::now() + std::chrono::milliseconds(int64_t(opt.timeout_s * 1000));
    try {
      model::validate(r.sampling);
    } catch (const Error& e) {
      throw ApiError::invalid(e.what());
    }
    return r;
  }

  // Submits every request of a job; on a failure cancels the ones already
  // queued and rethrows (QueueFull -> 503, anything else -> 400).
  std::shared_ptr<Job> submit_all(std::vector<sched::Request> reqs) {
    auto job = std::make_shared<Job>();
    job->remaining = int(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      int index = int(i);
      reqs[i].on_event = [job, index](const sched::Event& e) {
        std::lock_guard<std::mutex> lock(job->mu);
        job->events.push_back(Job::Item{index, e});
        if (e.kind == sched::Event::Kind::Done) --job->remaining;
        job->cv.notify_all();
      };
      try {
        uint64_t id = scheduler->submit(std::move(reqs[i]));
        std::lock_guard<std::mutex> lock(job->mu);
        job->ids.push_back(id);
      } catch (const sched::QueueFull&) {
        cancel(*job);
        throw ApiError(503, "The server is busy: the request queue is full. Retry later.", "server_error", "",
                       "queue_full");
      } catch (const Error& e) {
        cancel(*job);
        throw ApiError::invalid(e.what());
      }
    }
    return job;
  }

  void cancel(Job& job) {
    std::vector<uint64_t> ids;
    {
      std::lock_guard<std::mutex> lock(job.mu);
      ids = job.ids;
    }
    for (uint64_t id : ids) scheduler->cancel(id);
  }

  // Waits up to `wait` for events; returns them (possibly none).
  static std::deque<Job::Item> take(Job& job, std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(job.mu);
    job.cv.wait_for(lock, wait, [&] { return !job.events.empty(); });
    std::deque<Job::Item> out;
    out.swap(job.events);
    return out;
  }

  void record_timing(const sched::Usage& u) {
    if (u.completion_tokens > 0) metrics.observe_ttft(u.ttft_ms / 1000.0);
    if (u.completion_tokens > 1)
      metrics.observe_token_latency((u.total_ms - u.ttft_ms) / 1000.0 / double(u.completion_tokens - 1));
  }

  // Records the Done event of one choice.
  void finish_choice(ChoiceResult& c, const sched::Event& e) {
    c.done = true;
    c.finish = e.finish;
    c.error = e.error;
    c.usage = e.usage;
    record_timing(e.usage);
  }

  // Runs a job to the end on this thread (non-streaming answers). A client
  // that closes its connection meanwhile ends the job at once (its slot is
  // free for the next request); nobody is left to read the answer.
  std::vector<ChoiceResult> wait_all(Job& job, size_t n, const httplib::Request& hreq) {
    const int fd = find_connection(hreq.remote_addr, hreq.remote_port, hreq.local_port);
    std::vector<ChoiceResult> res(n);
    size_t done = 0;
    while (done < n) {
      if (stopping) {
        cancel(job);
      } else if (peer_closed(fd)) {
        cancel(job);
        metrics.count_cancelled();
        throw ApiError(499, "the client closed the connection", "client_closed_request");
      }
      for (auto& item : take(job, std::chrono::milliseconds(200))) {
        ChoiceResult& c = res[size_t(item.index)];
        const sched::Event& e = item.event;
        c.text += e.text;
        if (e.kind == sched::Event::Kind::Token) {
          ++c.tokens;
          c.logprobs.emplace_back(e.token, e.top);
        } else {
          finish_choice(c, e);
          ++done;
        }
      }
    }
    for (const auto& c : res) {
      if (c.finish == sched::FinishReason::Error)
        throw ApiError(500, "generation failed: " + c.error, "server_error");
      if (c.finish == sched::FinishReason::Cancelled)
        throw ApiError(503, "the server is shutting down", "server_error");
    }
    return res;
  }

  // ---- chat -------------------------------------------------------------

  struct ChatPlan {
    ChatRequest req;
    std::vector<int32_t> prompt;
    std::shared_ptr<const grammar::Grammar> grammar;
    bool tool_mode = false;  // parse tool calls out of the output
  };

  ChatPlan plan_chat(const Json& body) {
    ChatPlan p;
    p.req = parse_chat_request(body, limits());
    ChatRequest& r = p.req;
    check_generation_model(r.gen.model);
    Json messages = r.messages;
    Json tools = nullptr;
    p.tool_mode = !r.tools.is_null() && r.tool_choice != ToolChoice::None;
    if (p.tool_mode) {
      if (renders_tools) {
        tools = r.tools;
      } else {
        // The template ignores tools: describe them in the system message.
        std::string desc = tools_system_prompt(r.tools, tool_format);
        if (!messages.empty() && messages[0]["role"] == "system" && messages[0]["content"].is_string())
          messages[0]["content"] = messages[0]["content"].get<std::string>() + "\n\n" + desc;
        else
          messages.insert(messages.begin(), Json{{"role", "system"}, {"content", desc}});
      }
    }
    std::string text;
    try {
      text = chat::render_chat(*tmpl, messages, tools, true, bos_text, eos_text);
    } catch (const Error& e) {
      throw ApiError::invalid(std::string("the chat template rejected the messages: ") + e.what(), "messages");
    }
    p.prompt = encode(text, true, "messages");
    check_prompt_length(p.prompt, "messages");
    try {
      if (r.response_format == ResponseFormat::JsonObject) {
        p.grammar = grammar::Grammar::json_object();
      } else if (r.response_format == ResponseFormat::JsonSchema) {
        p.grammar = grammar::Grammar::from_json_schema(r.schema);
      } else if (r.tool_choice == ToolChoice::Required || r.tool_choice == ToolChoice::Named) {
        p.grammar = tool_call_grammar(r.tools, r.tool_choice == ToolChoice::Named ? r.tool_name : "", tool_format);
      }
    } catch (const Error& e) {
      std::string param = r.response_format == ResponseFormat::JsonSchema ? "response_format.json_schema.schema"
                                                                            : "tools";
      throw ApiError::invalid(std::string("unsupported schema: ") + e.what(), param);
    }
    return p;
  }

  std::vector<sched::Request> chat_requests(const ChatPlan& p) {
    const GenerationParams& g = p.req.gen;
    uint64_t seed = g.seed_given ? g.sampling.seed : std::random_device{}();
    std::vector<sched::Request> reqs;
    for (int i = 0; i < g.n; ++i)
      reqs.push_back(make_request(g, p.prompt, i, p.req.logprobs, p.req.top_logprobs, p.grammar, seed));
    return reqs;
  }

  // The message (and finish reason) of one finished choice.
  Json chat_message(const ChatPlan& p, const ChoiceResult& c, std::string* finish) {
    Json msg = Json::object();
    msg["role"] = "assistant";
    bool calls = false;
    if (p.tool_mode) {
      ParsedOutput out = parse_tool_calls(c.text, tool_format, p.req.tools);
      if (!p.req.parallel_tool_calls && out.calls.size() > 1) out.calls.resize(1);
      if (!out.calls.empty()) {
        calls = true;
        msg["content"] = out.has_content ? Json(out.content) : Json(nullptr);
        Json tc = Json::array();
        for (const ToolCall& call : out.calls)
          tc.push_back(Json{{"id", call.id},
                            {"type", "function"},
                            {"function", Json{{"name", call.name}, {"arguments", call.arguments}}}});
        msg["tool_calls"] = std::move(tc);
      }
    }
    if (!calls) msg["content"] = c.text;
    msg["refusal"] = nullptr;
    *finish = finish_reason(c.finish, calls);
    return msg;
  }

  void handle_chat(const httplib::Request& hreq, httplib::Response& res) {
    Json body = parse_body(hreq.body, limits());
    auto plan = std::make_shared<ChatPlan>(plan_chat(body));
    std::string id = make_id("chatcmpl-");
    int64_t created = unix_now();
    auto job = submit_all(chat_requests(*plan));
    size_t n = size_t(plan->req.gen.n);
    if (!plan->req.gen.stream) {
      std::vector<ChoiceResult> results = wait_all(*job, n, hreq);
      Json choices = Json::array();
      int64_t completion = 0;
      for (size_t i = 0; i < n; ++i) {
        std::string finish;
        Json choice = Json::object();
        choice["index"] = i;
        choice["message"] = chat_message(*plan, results[i], &finish);
        if (plan->req.logprobs) {
          Json content = Json::array();
          for (const auto& [tok, top] : results[i].logprobs) content.push_back(chat_logprob(tok, top));
          choice["logprobs"] = Json{{"content", content}, {"refusal", nullptr}};
        } else {
          choice["logprobs"] = nullptr;
        }
        choice["finish_reason"] = finish;
        choices.push_back(std::move(choice));
        completion += results[i].usage.completion_tokens;
      }
      Json out = Json::object();
      out["id"] = id;
      out["object"] = "chat.completion";
      out["created"] = created;
      out["model"] = chat_name;
      out["choices"] = std::move(choices);
      out["usage"] = usage_json(int64_t(plan->prompt.size()), completion, results[0].usage.cached_tokens);
      out["system_fingerprint"] = "hai";
      res.set_content(dump_json(out), "application/json");
      return;
    }
    stream_chat(res, plan, job, id, created);
  }

  Json chat_chunk(const std::string& id, int64_t created, Json choices, bool include_usage) {
    Json c = Json::object();
    c["id"] = id;
    c["object"] = "chat.completion.chunk";
    c["created"] = created;
    c["model"] = chat_name;
    c["system_fingerprint"] = "hai";
    c["choices"] = std::move(choices);
    if (include_usage) c["usage"] = nullptr;
    return c;
  }

  // State of a streamed response, shared by the content provider calls.
  struct Stream {
    std::shared_ptr<Job> job;
    size_t n = 0;
    std::vector<ChoiceResult> results;
    size_t done = 0;
    bool started = false;
    bool finished = false;  // [DONE] written
    Clock::time_point last_write = Clock::now();
  };

  // Streams a job's events through `res`; `on_event` turns one event into
  // SSE text, `on_end` writes what follows the last event.
  template <typename OnEvent, typename OnEnd, typename OnStart>
  void stream_job(httplib::Response& res, std::shared_ptr<Job> job, size_t n, OnStart on_start, OnEvent on_event,
                  OnEnd on_end) {
    auto st = std::make_shared<Stream>();
    st->job = job;
    st->n = n;
    st->results.resize(n);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st, on_start, on_event, on_end](size_t, httplib::DataSink& sink) -> bool {
          auto write = [&](const std::string& s) {
            if (s.empty()) return true;
            st->last_write = Clock::now();
            return sink.write(s.data(), s.size());
          };
          if (!st->started) {
            st->started = true;
            if (!write(on_start())) return false;
          }
          if (stopping) return false;
          auto items = take(*st->job, std::chrono::milliseconds(250));
          std::string out;
          for (auto& item : items) {
            ChoiceResult& c = st->results[size_t(item.index)];
            const sched::Event& e = item.event;
            if (e.kind == sched::Event::Kind::Token) {
              ++c.tokens;
            } else {
              finish_choice(c, e);
              ++st->done;
            }
            out += on_event(item.index, e, c);
          }
          if (!out.empty()) {
            if (!write(out)) return false;
          } else if (Clock::now() - st->last_write > std::chrono::milliseconds(500)) {
            // Nothing to say: a comment, so that a client that went away is noticed.
            if (!write(": keep-alive\n\n")) return false;
          }
          if (st->done == st->n) {
            if (!write(on_end(st->results) + sse_done())) return false;
            st->finished = true;
            sink.done();
          }
          return true;
        },
        [this, st](bool) {
          if (!st->finished) {
            cancel(*st->job);
            metrics.count_cancelled();
          }
        });
  }

  void stream_chat(httplib::Response& res, std::shared_ptr<ChatPlan> plan, std::shared_ptr<Job> job,
                   const std::string& id, int64_t created) {
    size_t n = size_t(plan->req.gen.n);
    bool usage = plan->req.gen.include_usage;
    // In tool mode the output is held back while it may still be the start
    // of a tool call; once it cannot be, it streams like any text. Other
    // text streams token by token.
    struct ToolStream {
      std::string text;
      bool holding = true;
    };
    bool tool_mode = plan->tool_mode;
    auto tstate = std::make_shared<std::vector<ToolStream>>(n);
    auto on_start = [this, id, created, n, usage]() {
      std::string s;
      for (size_t i = 0; i < n; ++i) {
        Json ch = Json{{"index", i}, {"delta", Json{{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}},
                       {"logprobs", nullptr}, {"finish_reason", nullptr}};
        s += sse_event(chat_chunk(id, created, Json::array({ch}), usage));
      }
      return s;
    };
    auto on_event = [this, plan, id, created, usage, tool_mode, tstate](int index, const sched::Event& e,
                                                                         const ChoiceResult& c) {
      ToolStream& ts = (*tstate)[size_t(index)];
      if (e.kind == sched::Event::Kind::Token) {
        std::string content = e.text;
        if (tool_mode) {
          ts.text += e.text;
          if (ts.holding) {
            if (may_start_tool_call(ts.text)) return std::string();
            ts.holding = false;  // plain text after all: let out what was held
            content = ts.text;
          }
        }
        Json ch = Json{{"index", index}, {"delta", Json{{"content", content}}}};
        if (plan->req.logprobs)
          ch["logprobs"] = Json{{"content", Json::array({chat_logprob(e.token, e.top)})}, {"refusal", nullptr}};
        else
          ch["logprobs"] = nullptr;
        ch["finish_reason"] = nullptr;
        return sse_event(chat_chunk(id, created, Json::array({ch}), usage));
      }
      if (e.finish == sched::FinishReason::Error || e.finish == sched::FinishReason::Cancelled) {
        std::string msg = e.finish == sched::FinishReason::Error ? "generation failed: " + e.error
                                                                  : "the server is shutting down";
        return sse_event(error_body(msg, "server_error", "", ""));
      }
      Json delta = Json::object();
      bool calls = false;
      if (tool_mode) {
        std::string all = ts.text + e.text;
        ParsedOutput out = parse_tool_calls(all, tool_format, plan->req.tools);
        if (!plan->req.parallel_tool_calls && out.calls.size() > 1) out.calls.resize(1);
        calls = !out.calls.empty();
        if (ts.holding) {
          if (calls && out.has_content) delta["content"] = out.content;
          else if (!calls && !all.empty()) delta["content"] = all;
        } else if (!e.text.empty()) {
          delta["content"] = e.text;  // the text streamed already; calls in it still count
        }
        if (calls) {
          Json tc = Json::array();
          for (size_t k = 0; k < out.calls.size(); ++k)
            tc.push_back(Json{{"index", k},
                              {"id", out.calls[k].id},
                              {"type", "function"},
                              {"function", Json{{"name", out.calls[k].name}, {"arguments", out.calls[k].arguments}}}});
          delta["tool_calls"] = std::move(tc);
        }
      } else if (!e.text.empty()) {
        delta["content"] = e.text;
      }
      Json ch = Json{{"index", index}, {"delta", delta}, {"logprobs", nullptr},
                     {"finish_reason", finish_reason(c.finish, calls)}};
      return sse_event(chat_chunk(id, created, Json::array({ch}), usage));
    };
    auto on_end = [this, plan, id, created, usage](const std::vector<ChoiceResult>& results) {
      if (!usage) return std::string();
      int64_t completion = 0;
      for (const auto& r : results) completion += r.usage.completion_tokens;
      Json c = chat_chunk(id, created, Json::array(), false);
      c["usage"] = usage_json(int64_t(plan->prompt.size()), completion, results[0].usage.cached_tokens);
      return sse_event(c);
    };
    stream_job(res, job, n, on_start, on_event, on_end);
  }

  // ---- completions ------------------------------------------------------

  void handle_completion(const httplib::Request& hreq, httplib::Response& res) {
    Json body = parse_body(hreq.body, limits());
    auto req = std::make_shared<CompletionRequest>(parse_completion_request(body, limits()));
    check_generation_model(req->gen.model);
    const GenerationParams& g = req->gen;
    auto prompts = std::make_shared<std::vector<std::vector<int32_t>>>();
    auto prompt_texts = std::make_shared<std::vector<std::string>>();
    for (size_t i = 0; i < req->prompts.size(); ++i) {
      const Prompt& p = req->prompts[i];
      std::string param = req->prompts.size() == 1 ? "prompt" : "prompt[" + std::to_string(i) + "]";
      std::vector<int32_t> ids = p.is_tokens ? p.tokens : encode(p.text, true, param);
      check_prompt_length(ids, param);
      prompt_texts->push_back(p.is_tokens ? tokenizer->decode(p.tokens, false) : p.text);
      prompts->push_back(std::move(ids));
    }
    uint64_t seed = g.seed_given ? g.sampling.seed : std::random_device{}();
    std::vector<sched::Request> reqs;
    bool lp = req->logprobs >= 0;
    for (size_t i = 0; i < prompts->size(); ++i)
      for (int k = 0; k < g.n; ++k)
        reqs.push_back(make_request(g, (*prompts)[i], k, lp, std::max(0, req->logprobs), nullptr, seed));
    size_t n = reqs.size();
    auto job = submit_all(std::move(reqs));
    std::string id = make_id("cmpl-");
    int64_t created = unix_now();
    int64_t prompt_tokens = 0;
    for (const auto& p : *prompts) prompt_tokens += int64_t(p.size());
    auto prompt_of = [req, prompt_texts](size_t choice) { return (*prompt_texts)[choice / size_t(req->gen.n)]; };

    auto chunk = [this, id, created](Json choices) {
      return Json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", chat_name},
                  {"system_fingerprint", "hai"}, {"choices", std::move(choices)}};
    };

    if (!g.stream) {
      std::vector<ChoiceResult> results = wait_all(*job, n, hreq);
      Json choices = Json::array();
      int64_t completion = 0;
      for (size_t i = 0; i < n; ++i) {
        std::string prefix = req->echo ? prompt_of(i) : std::string();
        Json lpj = nullptr;
        if (lp) {
          lpj = empty_completion_logprobs();
          int64_t offset = int64_t(prefix.size());
          for (const auto& [tok, top] : results[i].logprobs) {
            add_completion_logprob(lpj, tok, top, offset);
            offset += int64_t(tok.text.size());
          }
        }
        choices.push_back(Json{{"text", prefix + results[i].text},
                               {"index", i},
                               {"logprobs", lpj},
                               {"finish_reason", finish_reason(results[i].finish, false)}});
        completion += results[i].usage.completion_tokens;
      }
      Json out = chunk(std::move(choices));
      out["usage"] = usage_json(prompt_tokens, completion, results[0].usage.cached_tokens);
      res.set_content(dump_json(out), "application/json");
      return;
    }
    bool usage = g.include_usage;
    auto offsets = std::make_shared<std::vector<int64_t>>(n, 0);
    auto on_start = [req, n, chunk, prompt_of, usage]() {
      std::string s;
      if (!req->echo) return s;
      for (size_t i = 0; i < n; ++i) {
        Json c = chunk(Json::array({Json{{"text", prompt_of(i)}, {"index", i}, {"logprobs", nullptr},
                                         {"finish_reason", nullptr}}}));
        if (usage) c["usage"] = nullptr;
        s += sse_event(c);
      }
      return s;
    };
    auto on_event = [lp, chunk, usage, offsets](int index, const sched::Event& e, const ChoiceResult& c) {
      Json lpj = nullptr;
      if (lp && e.kind == sched::Event::Kind::Token) {
        lpj = empty_completion_logprobs();
        add_completion_logprob(lpj, e.token, e.top, (*offsets)[size_t(index)]);
      }
      (*offsets)[size_t(index)] += int64_t(e.text.size());
      if (e.kind == sched::Event::Kind::Done &&
          (e.finish == sched::FinishReason::Error || e.finish == sched::FinishReason::Cancelled))
        return sse_event(error_body(e.finish == sched::FinishReason::Error ? "generation failed: " + e.error
                                                                           : "the server is shutting down",
                                    "server_error", "", ""));
      Json fr = e.kind == sched::Event::Kind::Done ? Json(finish_reason(c.finish, false)) : Json(nullptr);
      Json ck = chunk(Json::array({Json{{"text", e.text}, {"index", index}, {"logprobs", lpj}, {"finish_reason", fr}}}));
      if (usage) ck["usage"] = nullptr;
      return sse_event(ck);
    };
    auto on_end = [chunk, usage, prompt_tokens](const std::vector<ChoiceResult>& results) {
      if (!usage) return std::string();
      int64_t completion = 0;
      for (const auto& r : results) completion += r.usage.completion_tokens;
      Json c = chunk(Json::array());
      c["usage"] = usage_json(prompt_tokens, completion, results[0].usage.cached_tokens);
      return sse_event(c);
    };
    stream_job(res, job, n, on_start, on_event, on_end);
  }

  // ---- embeddings -------------------------------------------------------

  model::Embedder& embedder_for(const std::string& requested) {
    std::string name = requested;
    if (!embedder && !model && rerank)
      throw ApiError::invalid("the model '" + rerank->name() + "' is a reranker; it serves /v1/rerank only", "model",
                              "model_not_supported");
    if (name.empty()) name = embedder ? embed_name : chat_name;
    if (embedder && name == embed_name) return *embedder;
    if (name != chat_name || !model) throw ApiError::model_not_found(name);
    std::lock_guard<std::mutex> lock(decoder_embedder_mu);
    if (!decoder_embedder) {
      try {
        decoder_embedder = model::Embedder::load(opt.model_path, model::Embedder::Options{opt.n_threads});
      } catch (const Error& e) {
        throw ApiError::invalid(std::string("the model '") + name + "' cannot embed: " + e.what(), "model");
      }
    }
    return *decoder_embedder;
  }

  void handle_embeddings(const httplib::Request& hreq, httplib::Response& res) {
    Json body = parse_body(hreq.body, Limits{});
    EmbeddingRequest req = parse_embedding_request(body, Limits{});
    model::Embedder& emb = embedder_for(req.model);
    if (req.dimensions > emb.dim())
      throw ApiError::invalid("'dimensions' must be at most " + std::to_string(emb.dim()) + " for this model",
                              "dimensions");
    int32_t n_vocab = emb.tokenizer().n_vocab();
    std::vector<std::string> texts;
    std::vector<size_t> text_index;
    for (size_t i = 0; i < req.inputs.size(); ++i) {
      const Prompt& p = req.inputs[i];
      if (p.is_tokens) {
        for (size_t k = 0; k < p.tokens.size(); ++k)
          if (p.tokens[k] >= n_vocab)
            throw ApiError::invalid("'input' token id " + std::to_string(p.tokens[k]) +
                                        " is outside the vocabulary of " + std::to_string(n_vocab) + " tokens",
                                    "input");
      } else {
        texts.push_back(p.text);
        text_index.push_back(i);
      }
    }
    std::vector<model::Embedding> out(req.inputs.size());
    try {
      if (!texts.empty()) {
        std::vector<model::Embedding> e = emb.embed(texts);
        for (size_t k = 0; k < e.size() && k < text_index.size(); ++k) out[text_index[k]] = std::move(e[k]);
      }
      for (size_t i = 0; i < req.inputs.size(); ++i)
        if (req.inputs[i].is_tokens) out[i] = emb.embed_tokens(req.inputs[i].tokens);
    } catch (const Error& e) {
      throw ApiError::invalid(e.what(), "input");
    }
    Json data = Json::array();
    int64_t tokens = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      std::vector<float> v = std::move(out[i].vector);
      if (req.dimensions > 0 && size_t(req.dimensions) < v.size()) v.resize(size_t(req.dimensions));
      double norm = 0;
      for (float x : v) norm += double(x) * double(x);
      norm = std::sqrt(norm);
      if (norm > 0)
        for (float& x : v) x = float(x / norm);
      tokens += out[i].n_tokens;
      Json item = Json::object();
      item["object"] = "embedding";
      item["index"] = i;
      if (req.base64) item["embedding"] = base64_floats(v);
      else item["embedding"] = v;
      data.push_back(std::move(item));
    }
    Json r = Json::object();
    r["object"] = "list";
    r["data"] = std::move(data);
    r["model"] = req.model.empty() ? (embedder ? embed_name : chat_name) : req.model;
    r["usage"] = Json{{"prompt_tokens", tokens}, {"total_tokens", tokens}};
    res.set_content(dump_json(r), "application/json");
  }

  // ---- models, health, metrics -----------------------------------------

  Json model_entry(const std::string& name) const {
    return Json{{"id", name}, {"object", "model"}, {"created", created}, {"owned_by", "hai"}};
  }

  void handle_models(const httplib::Request&, httplib::Response& res) {
    Json data = Json::array();
    if (!chat_name.empty()) data.push_back(model_entry(chat_name));
    if (!embed_name.empty()) data.push_back(model_entry(embed_name));
    if (rerank) data.push_back(model_entry(rerank->name()));
    res.set_content(dump_json(Json{{"object", "list"}, {"data", data}}), "application/json");
  }

  void handle_model(const httplib::Request& req, httplib::Response& res) {
    std::string name = req.matches[1];
    if (name.empty() || (name != chat_name && name != embed_name && !(rerank && name == rerank->name())))
      throw ApiError::model_not_found(name);
    res.set_content(dump_json(model_entry(name)), "application/json");
  }

  Gauges gauges() const {
    Gauges g;
    if (scheduler) {
      sched::Stats s = scheduler->stats();
      g.queued = s.queued;
      g.active = s.active;
      g.n_slots = s.n_slots;
      g.kv_used = s.kv_used;
      g.kv_total = s.kv_total;
      g.prompt_tokens = s.prompt_tokens;
      g.cached_tokens = s.cached_tokens;
      g.generated_tokens = s.generated_tokens;
    }
    return g;
  }

  void handle_health(const httplib::Request&, httplib::Response& res) {
    Gauges g = gauges();
    Json h = Json{{"status", "ok"},
                  {"slots_total", g.n_slots},
                  {"slots_active", g.active},
                  {"slots_idle", g.n_slots - g.active},
                  {"queued", g.queued},
                  {"kv_used", g.kv_used},
                  {"kv_total", g.kv_total}};
    res.set_content(dump_json(h), "application/json");
  }

  void handle_metrics(const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(gauges()), "text/plain; version=0.0.4; charset=utf-8");
  }

  // ---- reranking --------------------------------------------------------

  void handle_rerank(const httplib::Request& req, httplib::Response& res) {
    if (!rerank)
      throw ApiError::invalid("this server has no reranker: start hai serve with --rerank-model FILE (or -m RERANKER)",
                              "model", "model_not_supported");
    res.set_content(dump_json(rerank->rerank(parse_body(req.body, Limits{}))), "application/json");
  }

  // ---- knowledge bases ---------------------------------------------------

  static void reply(httplib::Response& res, const Json& j, int status = 200) {
    res.status = status;
    res.set_content(dump_json(j), "application/json");
  }

  void handle_kb_list(const httplib::Request&, httplib::Response& res) { reply(res, kb->list()); }
  void handle_kb_create(const httplib::Request& req, httplib::Response& res) {
    reply(res, kb->create(parse_body(req.body, Limits{})), 201);
  }
  void handle_kb_drop(const httplib::Request& req, httplib::Response& res) { reply(res, kb->drop(req.matches[1])); }
  void handle_kb_documents(const httplib::Request& req, httplib::Response& res) {
    reply(res, kb->documents(req.matches[1]));
  }
  void handle_kb_upload(const httplib::Request& req, httplib::Response& res) {
    if (req.is_multipart_form_data()) {
      if (!req.has_file("file")) throw ApiError::invalid("the multipart form needs a 'file' part", "file");
      const httplib::MultipartFormData f = req.get_file_value("file");
      std::string name = req.has_file("name") ? req.get_file_value("name").content : f.filename;
      reply(res, kb->upload(req.matches[1], name, f.content), 201);
      return;
    }
    reply(res, kb->upload_json(req.matches[1], parse_body(req.body, Limits{})), 201);
  }
  void handle_kb_remove(const httplib::Request& req, httplib::Response& res) {
    reply(res, kb->remove_document(req.matches[1], req.matches[2]));
  }
  void handle_kb_search(const httplib::Request& req, httplib::Response& res) {
    reply(res, kb->search(req.matches[1], parse_body(req.body, Limits{})));
  }
  void handle_kb_ask(const httplib::Request& req, httplib::Response& res) {
    reply(res, kb->ask(req.matches[1], parse_body(req.body, Limits{})));
  }

  // ---- wiring -----------------------------------------------------------

  static void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status();
    if (e.status() == 503 || e.status() == 429) res.set_header("Retry-After", "1");
    res.set_content(dump_json(e.to_json()), "application/json");
  }

  using Handler = void (Impl::*)(const httplib::Request&, httplib::Response&);

  httplib::Server::Handler wrap(Handler h) {
    return [this, h](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*h)(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const sched::QueueFull&) {
        send_error(res, ApiError(503, "The server is busy: the request queue is full. Retry later.", "server_error",
                                 "", "queue_full"));
      } catch (const Error& e) {
        send_error(res, ApiError::invalid(e.what()));
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
      }
    };
  }

  void setup() {
    size_t threads = size_t(std::clamp<int64_t>(opt.n_parallel + opt.max_queue + 8, 16, 512));
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_payload_max_length(opt.max_body);
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let
    // a second server share (and steal requests from) a port in use.
    http.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<void*>(&yes), sizeof(yes));
    });
    http.set_read_timeout(std::max<time_t>(5, time_t(opt.timeout_s > 0 ? std::min(opt.timeout_s, 60.0) : 60)), 0);

    static thread_local Clock::time_point started;
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      started = Clock::now();
      bool open = req.path == "/health" || req.path == "/";
      if (!open && opt.keys.enabled() && !opt.keys.check(req.get_header_value("Authorization"))) {
        send_error(res, ApiError(401,
                                 req.has_header("Authorization") ? "Incorrect API key provided."
                                                                 : "Missing API key: send 'Authorization: Bearer KEY'.",
                                 "invalid_request_error", "", "invalid_api_key"));
        res.set_header("WWW-Authenticate", "Bearer");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      ApiError e(res.status, "", "invalid_request_error");
      if (res.status == 404) e = ApiError(404, "Unknown route: " + req.method + " " + req.path, "invalid_request_error", "", "unknown_url");
      else if (res.status == 413) e = ApiError(413, "The request body is larger than the server's limit (--max-body).", "invalid_request_error", "", "request_too_large");
      else if (res.status == 405) e = ApiError(405, "Method " + req.method + " is not allowed on " + req.path, "invalid_request_error");
      else if (res.status >= 500) e = ApiError(res.status, "internal server error", "server_error");
      else e = ApiError(res.status, "bad request (HTTP " + std::to_string(res.status) + ")", "invalid_request_error");
      res.set_content(dump_json(e.to_json()), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, ApiError(500, "internal error: " + what, "server_error"));
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
      metrics.count_request(req.path, res.status, ms);
      if (!opt.quiet) std::fprintf(stderr, "%s %s %d %.1fms\n", req.method.c_str(), req.path.c_str(), res.status, ms);
    });

    http.Get("/health", wrap(&Impl::handle_health));
    http.Get("/metrics", wrap(&Impl::handle_metrics));
    http.Get("/v1/models", wrap(&Impl::handle_models));
    http.Get(R"(/v1/models/(.+))", wrap(&Impl::handle_model));
    http.Post("/v1/chat/completions", wrap(&Impl::handle_chat));
    http.Post("/v1/completions", wrap(&Impl::handle_completion));
    http.Post("/v1/embeddings", wrap(&Impl::handle_embeddings));
    http.Get("/v1/kb", wrap(&Impl::handle_kb_list));
    http.Post("/v1/kb", wrap(&Impl::handle_kb_create));
    http.Delete(R"(/v1/kb/([^/]+))", wrap(&Impl::handle_kb_drop));
    http.Get(R"(/v1/kb/([^/]+)/documents)", wrap(&Impl::handle_kb_documents));
    http.Post(R"(/v1/kb/([^/]+)/documents)", wrap(&Impl::handle_kb_upload));
    http.Delete(R"(/v1/kb/([^/]+)/documents/(.+))", wrap(&Impl::handle_kb_remove));
    http.Post(R"(/v1/kb/([^/]+)/search)", wrap(&Impl::handle_kb_search));
    http.Post(R"(/v1/kb/([^/]+)/ask)", wrap(&Impl::handle_kb_ask));
    for (const char* path : {"/v1/rerank", "/rerank", "/v1/reranking", "/reranking"})
      http.Post(path, wrap(&Impl::handle_rerank));
    // The same routes without the /v1 prefix, as llama.cpp's server has them.
    http.Post("/chat/completions", wrap(&Impl::handle_chat));
    http.Post("/completions", wrap(&Impl::handle_completion));
    http.Post("/embeddings", wrap(&Impl::handle_embeddings));
    http.Get("/models", wrap(&Impl::handle_models));
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->load();
  impl_->setup();
}

Server::~Server() {
  stop();
  impl_->scheduler.reset();
}

int Server::bind() {
  Impl& s = *impl_;
  int port = s.opt.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.opt.host);
    if (port <= 0) throw Error("serve: cannot bind to " + s.opt.host + " (any port)");
  } else if (!s.http.bind_to_port(s.opt.host, port)) {
    throw Error("serve: cannot bind to " + s.opt.host + ":" + std::to_string(port) +
                " (in use, or not an address of this machine)");
  }
  return port;
}

void Server::listen() { impl_->http.listen_after_bind(); }

void Server::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

}  // namespace hai::server
