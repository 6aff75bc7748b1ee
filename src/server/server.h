// The OpenAI-compatible HTTP server behind `hai serve`.
//
//   ServerOptions o;
//   o.model_path = "qwen2.5-0.5b-instruct-q8_0.gguf";
//   o.n_parallel = 4;
//   Server server(std::move(o));        // loads the model(s); throws hai::Error
//   int port = server.bind();           // port 0 picks a free one
//   server.listen();                    // blocks until stop()
//
// Routes:
//   GET  /health                      {"status": "ok", slots, queue}   (no key needed)
//   GET  /metrics                     Prometheus text
//   GET  /v1/models, /v1/models/{id}
//   POST /v1/chat/completions         messages, stream, tools, response_format, n, logprobs, ...
//   POST /v1/completions              prompt (text, token ids or a batch), echo, logprobs
//   POST /v1/embeddings               input (text, token ids or a batch), encoding_format
//   POST /v1/rerank                   query, documents, top_n (rerank_api.h; also /rerank, /v1/reranking,
//                                     /reranking) when the server has a reranker
//   /v1/kb/...                        knowledge bases: create, upload, list, delete, search, ask (kb_api.h)
//
// Requests are parsed and checked on the HTTP worker thread (one per
// connection, from a pool sized for the slots plus the queue), submitted to
// the scheduler, and answered when done or streamed as server-sent events.
// A streaming client that goes away is noticed at the next write (tokens or
// a keep-alive comment every half second) and its requests are cancelled,
// which frees their slots. Errors have OpenAI's shape and status codes: 400
// for bad input, 401 for a missing or wrong key, 404 for an unknown route or
// model, 413 for a body over --max-body, 503 with Retry-After when the queue
// is full; 500 only for faults of the server itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "server/auth.h"

namespace hai::server {

struct ServerOptions {
  std::string model_path;              // a generative model (llama/qwen2/qwen3), an embedding model (bert) or a
                                       // reranker (bert with a classification head: serves /v1/rerank)
  std::string model_name;              // the id clients use; default: the file name without .gguf
  std::string embedding_model_path;    // optional second model for /v1/embeddings
  std::string rerank_model_path;       // optional reranker for /v1/rerank (and kb search "rerank": true)
  std::string chat_template_file;      // overrides the model's tokenizer.chat_template
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port
  int n_parallel = 1;                  // slots
  int64_t ctx_size = 4096;             // positions per slot
  std::string cache_type = "f16";      // KV cache storage: f16 or q8_0
  int n_threads = 0;                   // 0: hardware concurrency
  size_t max_body = 8u << 20;          // bytes
  int64_t max_queue = 64;
  double timeout_s = 600;              // per request; 0 = none
  bool quiet = false;                  // no request log
  std::string kb_dir;                  // knowledge bases for /v1/kb (default: kb::DefaultDataDir())
  KeyStore keys;
};

class Server {
 public:
  // Loads the models and builds the scheduler. Throws hai::Error naming the
  // file or option that is wrong.
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws hai::Error when the
  // address cannot be bound.
  int bind();
  // Serves until stop() (from another thread or a signal thread).
  void listen();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hai::server
