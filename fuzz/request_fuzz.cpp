// libFuzzer target for the OpenAI request parsers: any body must either
// parse into a request or throw ApiError with a 4xx status; anything else
// (another exception, a crash, a sanitizer report) is a bug. The first byte
// picks the endpoint, the rest is the body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/api_error.h"
#include "server/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  hai::server::Limits limits;
  limits.n_vocab = 50257;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    hai::server::Json j = hai::server::parse_body(body, limits);
    switch (data[0] % 3) {
      case 0: hai::server::parse_chat_request(j, limits); break;
      case 1: hai::server::parse_completion_request(j, limits); break;
      default: hai::server::parse_embedding_request(j, limits); break;
    }
  } catch (const hai::server::ApiError& e) {
    if (e.status() < 400 || e.status() >= 500) std::abort();
  }
  return 0;
}
