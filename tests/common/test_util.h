// Helpers shared by the test executables: where the fixtures are, and how to
// run the `hai` binary and capture what it prints.
#pragma once

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace hai::test {

inline std::string shared_dir() { return HAI_SHARED_DIR; }
inline std::string fixture(const std::string& rel) { return shared_dir() + "/fixtures/" + rel; }
inline std::string hai_bin() { return HAI_BIN; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `cmd` through /bin/sh; stdout and stderr are captured separately.
inline CommandResult run(const std::string& cmd) {
  static int counter = 0;
  std::string err_path = "/tmp/hai_test_stderr_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>" + err_path).c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = read_file(err_path);
  std::remove(err_path.c_str());
  return r;
}

// Runs the hai binary with the given (already shell-quoted) arguments.
inline CommandResult run_hai(const std::string& args) { return run(hai_bin() + " " + args); }

// Cosine similarity of two vectors of the same length, in double.
inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace hai::test
