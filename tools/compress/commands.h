#pragma once
// Subcommands of `compress`. Each adds itself to the CLI11 app and returns the function that
// runs it once parsing succeeded. The CLI is thin: parse, call the library, print.

#include <CLI/CLI.hpp>

#include <functional>

namespace compress {

using Runner = std::function<int()>;

Runner add_inspect(CLI::App& app);
Runner add_convert(CLI::App& app);
Runner add_recipe(CLI::App& app);
Runner add_list(CLI::App& app);
Runner add_eval(CLI::App& app);
/// compress generate MODEL --prompt TEXT: continue prompts (greedy, sampling, beam search).
Runner add_generate(CLI::App& app);
/// compress tokenize TOKENIZER [FILE]: ids of each line, as JSON Lines.
Runner add_tokenize(CLI::App& app);
/// compress label TEACHER --data CORPUS -o LABELS/: pseudo-labels, sharded and resumable;
/// compress label verify LABELS/.
Runner add_label(CLI::App& app);
/// compress bench MODEL...: side-by-side speed, memory, quality and projected cost;
/// compress bench compare REPORT...: reports from several machines together.
Runner add_bench(CLI::App& app);
/// The main form: compress --recipe R MODEL -o OUT.
Runner add_compress(CLI::App& app);

}  // namespace compress
