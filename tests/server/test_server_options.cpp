// Server construction: bad options and bad model files are hai::Errors that
// name the option or file; a port already in use is an error at bind().
#include <gtest/gtest.h>

#include <thread>

#include <httplib.h>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "server/server.h"

namespace srv = hai::server;

namespace {

srv::ServerOptions base() {
  srv::ServerOptions o;
  o.model_path = hai::test::fixture("models/tiny-qwen2-gpt2-q8_0.gguf");
  o.port = 0;
  o.n_threads = 1;
  o.ctx_size = 64;
  o.quiet = true;
  o.kb_dir = "/tmp";
  return o;
}

std::string error_of(srv::ServerOptions o) {
  try {
    srv::Server s(std::move(o));
  } catch (const hai::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ServerOptions, BadValuesNameTheOption) {
  auto o = base();
  o.n_parallel = 0;
  EXPECT_NE(error_of(o).find("--parallel"), std::string::npos);
  o = base();
  o.ctx_size = 2;
  EXPECT_NE(error_of(o).find("--ctx-size"), std::string::npos);
  o = base();
  o.max_queue = -1;
  EXPECT_NE(error_of(o).find("--max-queue"), std::string::npos);
  o = base();
  o.timeout_s = -1;
  EXPECT_NE(error_of(o).find("--timeout"), std::string::npos);
  o = base();
  o.port = 70000;
  EXPECT_NE(error_of(o).find("--port"), std::string::npos);
  o = base();
  o.max_body = 10;
  EXPECT_NE(error_of(o).find("--max-body"), std::string::npos);
  o = base();
  o.model_path = "";
  EXPECT_NE(error_of(o).find("-m"), std::string::npos);
  o = base();
  o.cache_type = "q4_0";
  EXPECT_NE(error_of(o).find("--cache-type"), std::string::npos);
  o = base();
  o.cache_type = "q8_0";
  EXPECT_EQ(error_of(o), "");
}

TEST(ServerOptions, BadFilesNameTheFile) {
  auto o = base();
  o.model_path = "/nonexistent/model.gguf";
  EXPECT_NE(error_of(o).find("/nonexistent/model.gguf"), std::string::npos);
  o = base();
  o.chat_template_file = "/nonexistent/t.jinja";
  EXPECT_NE(error_of(o).find("/nonexistent/t.jinja"), std::string::npos);
  o = base();
  o.embedding_model_path = "/nonexistent/e.gguf";
  EXPECT_NE(error_of(o).find("/nonexistent/e.gguf"), std::string::npos);
  // An embedding model cannot be the chat model beside another embedding model.
  o = base();
  o.model_path = hai::test::fixture("models/tiny-bert-bge-f16.gguf");
  o.embedding_model_path = hai::test::fixture("models/tiny-bert-bge-f16.gguf");
  EXPECT_NE(error_of(o).find("does not generate text"), std::string::npos);
  // A template with a syntax error is reported at start-up, not per request.
  std::string bad = "/tmp/hai_bad_template_" + std::to_string(::getpid()) + ".jinja";
  { std::ofstream(bad) << "{% if %}"; }
  o = base();
  o.chat_template_file = bad;
  EXPECT_NE(error_of(o), "");
  std::remove(bad.c_str());
}

TEST(ServerOptions, PortInUse) {
  srv::Server a(base());
  int port = a.bind();
  ASSERT_GT(port, 0);
  auto o = base();
  o.port = port;
  srv::Server b(o);
  try {
    b.bind();
    FAIL() << "bound a port in use";
  } catch (const hai::Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos);
  }
}
