// Server metrics in Prometheus' text exposition format (version 0.0.4).
//
//   Metrics m;
//   m.count_request("/v1/chat/completions", 200, 12.5);
//   m.observe_ttft(0.120);  m.observe_token_latency(0.015);
//   std::string text = m.render(gauges);    // GET /metrics
//
// Counters and histograms live here; the values that belong to the
// scheduler (queue depth, KV-cache use, active slots, token totals) are
// passed in at render time so they are never stale. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace hai::server {

// A Prometheus histogram: cumulative buckets with upper bounds `bounds`
// (ascending), +Inf, sum and count.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // "# HELP", "# TYPE" and the _bucket / _sum / _count lines for `name`.
  std::string render(const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Values read from the scheduler when /metrics is asked for.
struct Gauges {
  int64_t queued = 0, active = 0, n_slots = 0;
  int64_t kv_used = 0, kv_total = 0;
  uint64_t prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;
};

class Metrics {
 public:
  Metrics();
  // One finished HTTP request. `path` should be a known route (unknown ones
  // are counted as "other" so that a scanner cannot blow up the label set).
  void count_request(const std::string& path, int status, double ms);
  void observe_ttft(double seconds);
  void observe_token_latency(double seconds);  // mean time between generated tokens of one request
  void count_cancelled();                       // a client went away mid-request
  std::string render(const Gauges& g) const;

  // Requests answered with `status` on `path` so far (for tests).
  uint64_t requests(const std::string& path, int status) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, double> request_ms_;
  Histogram ttft_, token_latency_;
  uint64_t cancelled_ = 0;
};

// Escapes a label value (backslash, double quote, newline).
std::string escape_label(const std::string& v);

}  // namespace hai::server
