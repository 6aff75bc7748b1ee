// The hai executable: wires the parts together behind one command line.
#include <cstdio>
#include <exception>

#include "cli/command.h"
#include "engine/common/error.h"

namespace hai::cli {
std::vector<Setup>& registry() {
  static std::vector<Setup> r;
  return r;
}
}  // namespace hai::cli

int main(int argc, char** argv) {
  CLI::App app{"hai: run open-weight language models locally (GGUF), serve them, and build on them"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hai 0.1.0");
  for (auto& setup : hai::cli::registry()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const hai::Error& e) {
    std::fprintf(stderr, "hai: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hai: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
