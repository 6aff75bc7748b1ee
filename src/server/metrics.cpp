#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <set>

namespace hai::server {
namespace {

std::string num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

const std::set<std::string>& known_paths() {
  static const std::set<std::string> p = {"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                          "/health",    "/metrics",             "/v1/kb"};
  return p;
}

}  // namespace

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::string s = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    std::string le = i < bounds_.size() ? num(bounds_[i]) : "+Inf";
    s += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  s += name + "_sum " + num(sum_) + "\n";
  s += name + "_count " + std::to_string(count_) + "\n";
  return s;
}

Metrics::Metrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      token_latency_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}) {}

void Metrics::count_request(const std::string& path, int status, double ms) {
  std::string p = path;
  if (p.rfind("/v1/kb", 0) == 0) p = "/v1/kb";
  if (!known_paths().count(p)) p = "other";
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{p, status}];
  request_ms_[p] += ms;
}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ttft_.observe(seconds);
}

void Metrics::observe_token_latency(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  token_latency_.observe(seconds);
}

void Metrics::count_cancelled() {
  std::lock_guard<std::mutex> lock(mu_);
  ++cancelled_;
}

uint64_t Metrics::requests(const std::string& path, int status) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find({path, status});
  return it == requests_.end() ? 0 : it->second;
}

std::string Metrics::render(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string s;
  auto gauge = [&](const char* name, const char* help, const std::string& value, const char* type = "gauge") {
    s += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + value +
         "\n";
  };
  s += "# HELP hai_requests_total HTTP requests answered, by route and status code.\n"
       "# TYPE hai_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    s += "hai_requests_total{path=\"" + escape_label(key.first) + "\",status=\"" + std::to_string(key.second) +
         "\"} " + std::to_string(n) + "\n";
  s += "# HELP hai_request_duration_seconds_total Time spent answering requests, by route.\n"
       "# TYPE hai_request_duration_seconds_total counter\n";
  for (const auto& [path, ms] : request_ms_)
    s += "hai_request_duration_seconds_total{path=\"" + escape_label(path) + "\"} " + num(ms / 1000) + "\n";
  gauge("hai_prompt_tokens_total", "Prompt tokens evaluated.", std::to_string(g.prompt_tokens), "counter");
  gauge("hai_cached_prompt_tokens_total", "Prompt tokens reused from the prefix cache.",
        std::to_string(g.cached_tokens), "counter");
  gauge("hai_generated_tokens_total", "Tokens generated.", std::to_string(g.generated_tokens), "counter");
  gauge("hai_cancelled_requests_total", "Requests ended because the client went away.", std::to_string(cancelled_),
        "counter");
  s += ttft_.render("hai_time_to_first_token_seconds", "Time from a request's arrival to its first generated token.");
  s += token_latency_.render("hai_time_per_output_token_seconds",
                             "Mean time between the generated tokens of a request.");
  gauge("hai_queue_depth", "Requests waiting for a slot.", std::to_string(g.queued));
  gauge("hai_slots_active", "Slots running a request.", std::to_string(g.active));
  gauge("hai_slots_total", "Slots (--parallel).", std::to_string(g.n_slots));
  gauge("hai_kv_cache_used_cells", "KV-cache positions in use, cached prefixes included.", std::to_string(g.kv_used));
  gauge("hai_kv_cache_total_cells", "KV-cache positions of all slots.", std::to_string(g.kv_total));
  gauge("hai_kv_cache_usage_ratio", "Used / total KV-cache positions.",
        num(g.kv_total > 0 ? double(g.kv_used) / double(g.kv_total) : 0.0));
  return s;
}

}  // namespace hai::server
