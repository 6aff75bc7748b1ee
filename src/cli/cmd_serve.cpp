// hai serve: the OpenAI-compatible HTTP server.
//
//   hai serve -m MODEL.gguf [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx-size N]
//             [--api-key KEY ...] [--api-key-file FILE] [--chat-template FILE] [--max-body BYTES]
//             [--max-queue N] [--timeout SECONDS] [--embedding-model FILE] [--rerank-model FILE] [-t THREADS]
//             [--model-name NAME] [--kb-dir DIR] [--quiet]
//
// Prints "listening on http://HOST:PORT" to stderr once it accepts
// connections (with --port 0, the port it picked), a line per request unless
// --quiet, and stops cleanly on SIGINT / SIGTERM.
#include <csignal>
#include <cstdio>
#include <memory>
#include <pthread.h>
#include <thread>

#include "cli/command.h"
#include "engine/common/error.h"
#include "server/server.h"

namespace {

struct ServeArgs {
  hai::server::ServerOptions o;
  std::vector<std::string> keys;
  std::string key_file;
};

void serve(ServeArgs& a) {
  for (const auto& k : a.keys) a.o.keys.add_key(k);
  if (!a.key_file.empty()) a.o.keys.load_file(a.key_file);
  std::string host = a.o.host;

  // Signals go to a thread of their own, which stops the server; every other
  // thread (HTTP workers, the scheduler) inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  hai::server::Server server(std::move(a.o));
  int port = server.bind();
  std::thread signals([&server, set]() {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig != 0) server.stop();
  });
  signals.detach();
  std::fprintf(stderr, "listening on http://%s:%d\n", host.c_str(), port);
  std::fflush(stderr);
  server.listen();
  std::fprintf(stderr, "hai serve: stopped\n");
}

hai::cli::Register reg([](CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  auto* sub = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API (/v1, /health, /metrics)");
  sub->add_option("-m,--model", a->o.model_path,
                  "GGUF model (a chat model, an embedding model such as BERT, or a reranker: serves /v1/rerank)")
      ->required();
  sub->add_option("--host", a->o.host, "Address to bind (default 127.0.0.1: this machine only)")->capture_default_str();
  sub->add_option("--port", a->o.port, "Port (0: pick a free one and print it)")->capture_default_str();
  sub->add_option("-P,--parallel", a->o.n_parallel, "Slots: requests decoded together (continuous batching)")->capture_default_str();
  sub->add_option("-c,--ctx-size", a->o.ctx_size, "Context positions per slot")->capture_default_str();
  sub->add_option("--cache-type", a->o.cache_type, "KV cache storage: f16 (as llama.cpp) or q8_0 (half the memory)")->capture_default_str();
  sub->add_option("--api-key", a->keys, "Accept this API key (repeatable); requests without a valid key get 401");
  sub->add_option("--api-key-file", a->key_file, "File of API keys, one a line ('sha256:HEX' lines are hashes)");
  sub->add_option("--chat-template", a->o.chat_template_file, "Jinja chat template file (overrides the model's)");
  sub->add_option("--max-body", a->o.max_body, "Largest request body in bytes (larger: 413)")->capture_default_str();
  sub->add_option("--max-queue", a->o.max_queue, "Requests waiting for a slot; more are answered 503 + Retry-After")->capture_default_str();
  sub->add_option("--timeout", a->o.timeout_s, "Seconds a request may take (0: no limit)")->capture_default_str();
  sub->add_option("--embedding-model", a->o.embedding_model_path, "A second model for /v1/embeddings");
  sub->add_option("--rerank-model", a->o.rerank_model_path,
                  "A reranker (cross-encoder GGUF) for /v1/rerank and knowledge-base search with \"rerank\": true");
  sub->add_option("-t,--threads", a->o.n_threads, "Compute threads (default: all cores)");
  sub->add_option("--model-name", a->o.model_name, "Model id for clients (default: the file name without .gguf)");
  sub->add_option("--kb-dir", a->o.kb_dir, "Data directory of the knowledge bases behind /v1/kb (default: $HAI_HOME or ~/.hai)");
  sub->add_flag("--quiet", a->o.quiet, "No request log on stderr");
  sub->callback([a]() { serve(*a); });
});

}  // namespace
