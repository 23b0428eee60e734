// compress: the Stunt command line. Exit codes: 0 success, 1 error, 2 usage, 130 stopped by
// SIGINT/SIGTERM after saving progress (training; rerun with --resume).
#include <malloc.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>

#include "commands.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/version.h"

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
/// As a shell reports a command stopped by SIGINT (128 + 2).
constexpr int kExitInterrupted = 130;

}  // namespace

int main(int argc, char** argv) {
  // Calibration forwards allocate and free the same tens-of-MiB activations again and again;
  // by default glibc maps each one afresh and the kernel faults it in, zeroed. Keeping blocks up
  // to 32 MiB (glibc's ceiling) in the heap cut a GPTQ W8A8 run's page faults 9x and its wall
  // time 7% (peak RSS +3%), measured with benchmarks/ptq_side_by_side.py's recipe.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{
      "compress: turn a big model into its stunt double (quantization, pruning, distillation, "
      "pseudo-labeling).\n\nMain form: compress --recipe RECIPE MODEL -o OUT"};
  app.set_version_flag("--version", [] { return stunt::build_info(); });
  int verbosity = 0;
  bool quiet = false;
  app.add_flag("-v,--verbose", verbosity, "More log output (-vv for trace)");
  app.add_flag("-q,--quiet", quiet, "Only errors");
  app.footer("Log level also from STUNT_LOG_LEVEL (trace, debug, info, warn, error, off).");

  std::vector<std::pair<CLI::App*, compress::Runner>> commands;
  compress::Runner main_form = compress::add_compress(app);
  auto add = [&](compress::Runner (*adder)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    compress::Runner runner = adder(app);
    auto subs = app.get_subcommands({});
    commands.emplace_back(subs.size() > before ? subs.back() : nullptr, std::move(runner));
  };
  add(compress::add_inspect);
  add(compress::add_convert);
  add(compress::add_recipe);
  add(compress::add_list);
  add(compress::add_eval);
  add(compress::add_generate);
  add(compress::add_tokenize);
  add(compress::add_label);
  add(compress::add_bench);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  try {
    stunt::log::init_from_environment();
    if (quiet) stunt::log::set_level(stunt::log::Level::Error);
    if (verbosity == 1) stunt::log::set_level(stunt::log::Level::Debug);
    if (verbosity >= 2) stunt::log::set_level(stunt::log::Level::Trace);
    for (auto& [sub, runner] : commands) {
      if (sub != nullptr && sub->parsed()) return runner();
    }
    return main_form();
  } catch (const stunt::Interrupted& e) {
    std::cerr << "stopped: " << stunt::printable(e.what()) << "\n";
    return kExitInterrupted;
  } catch (const stunt::Error& e) {
    std::cerr << "error: " << stunt::printable(e.what()) << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    // LibTorch (c10::Error), the standard library: still one line and exit 1, never a crash.
    // Its first line, skipping the blank line some c10 messages open with.
    std::string message = e.what();
    message.erase(0, std::min(message.size(), message.find_first_not_of(" \n")));
    std::cerr << "error: " << stunt::printable(message.substr(0, message.find('\n'))) << "\n";
    return kExitError;
  }
}
