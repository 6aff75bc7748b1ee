#include "server/api_error.h"

namespace hai::server {

nlohmann::ordered_json error_body(const std::string& message, const std::string& type, const std::string& param,
                                  const std::string& code) {
  nlohmann::ordered_json e = nlohmann::ordered_json::object();
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(param);
  e["code"] = code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(code);
  nlohmann::ordered_json body = nlohmann::ordered_json::object();
  body["error"] = std::move(e);
  return body;
}

nlohmann::ordered_json ApiError::to_json() const { return error_body(what(), type_, param_, code_); }

}  // namespace hai::server
