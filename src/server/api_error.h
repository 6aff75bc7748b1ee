// ApiError: a request the server refuses, in OpenAI's error shape.
//
//   throw ApiError::invalid("temperature must be between 0 and 2, got 7", "temperature");
//
// becomes HTTP 400 with the body
//   {"error": {"message": "...", "type": "invalid_request_error",
//              "param": "temperature", "code": null}}
//
// Every path through the server that rejects input throws one of these (or a
// hai::Error, which the server turns into a 400 as well); a 500 is only ever
// answered for a fault of the server itself.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace hai::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type, std::string param = "", std::string code = "")
      : std::runtime_error(message), status_(status), type_(std::move(type)), param_(std::move(param)),
        code_(std::move(code)) {}

  // 400: a malformed body, a wrong type, a value out of range. `param` names
  // the field ("messages[2].content"), or is empty.
  static ApiError invalid(const std::string& message, const std::string& param = "", const std::string& code = "") {
    return ApiError(400, message, "invalid_request_error", param, code);
  }
  // 404 for a model the server does not serve.
  static ApiError model_not_found(const std::string& model) {
    return ApiError(404, "The model '" + model + "' does not exist on this server", "invalid_request_error", "model",
                    "model_not_found");
  }

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

  // {"error": {...}}; empty param / code become null.
  nlohmann::ordered_json to_json() const;

 private:
  int status_;
  std::string type_, param_, code_;
};

// The body of an error response in OpenAI's shape.
nlohmann::ordered_json error_body(const std::string& message, const std::string& type, const std::string& param,
                                  const std::string& code);

}  // namespace hai::server
