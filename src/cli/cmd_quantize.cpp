// hai quantize IN.gguf OUT.gguf TYPE [--threads N]: converts a model file to
// one of llama.cpp's quantization presets (see engine/gguf/quantize.h).
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "cli/command.h"
#include "engine/gguf/quantize.h"

namespace {

struct QuantizeArgs {
  std::string in, out, type;
  int threads = 0;
  bool quiet = false;
};

hai::cli::Register reg([](CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  std::string types;
  for (const auto& p : hai::gguf::quant_presets()) types += (types.empty() ? "" : ", ") + std::string(p.name);
  auto* sub = app.add_subcommand("quantize", "Quantize a GGUF model file (llama.cpp presets: " + types + ")");
  sub->add_option("IN", a->in, "Input GGUF model (F32/F16/BF16, or quantized: dequantized first)")->required();
  sub->add_option("OUT", a->out, "Output GGUF file")->required();
  sub->add_option("TYPE", a->type, "Preset: " + types)->required();
  sub->add_option("-t,--threads", a->threads, "Threads (default: all cores)")->check(CLI::Range(0, 256));
  sub->add_flag("-q,--quiet", a->quiet, "Do not print per-tensor progress");
  sub->callback([a] {
    const hai::gguf::QuantPreset& preset = hai::gguf::find_quant_preset(a->type);  // checks TYPE before any work
    hai::gguf::QuantizeOptions opt;
    opt.threads = a->threads > 0 ? a->threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const bool quiet = a->quiet;
    opt.log = [quiet](const std::string& line) {
      if (!quiet || line.rfind("warning:", 0) == 0) std::fprintf(stderr, "%s\n", line.c_str());
    };
    hai::gguf::quantize_file(a->in, a->out, preset, opt);
    std::fprintf(stderr, "wrote %s (%s)\n", a->out.c_str(), std::string(preset.name).c_str());
  });
});

}  // namespace
