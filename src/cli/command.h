// Subcommands register themselves: each cmd_*.cpp defines a static
// hai::cli::Register whose function adds a CLI11 subcommand to the app.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace hai::cli {

using Setup = std::function<void(CLI::App&)>;

std::vector<Setup>& registry();

struct Register {
  explicit Register(Setup s) { registry().push_back(std::move(s)); }
};

}  // namespace hai::cli
