// The main form: compress --recipe RECIPE MODEL -o OUT.
#include <iostream>

#include "commands.h"
#include "stunt/quant/sparse_compressed.h"
#include "stunt/recipe/compress.h"
#include "stunt/recipe/recipe.h"

namespace compress {

Runner add_compress(CLI::App& app) {
  struct Options {
    std::string recipe;
    std::string recipe_args;
    std::string model;
    std::string output;
    std::string dataset;
    stunt::recipe::CalibrationOptions calibration;
    std::string target;
    std::string sparse_format = "dense";
    bool overwrite = false;
    stunt::recipe::TrainingRunOptions training;
    std::string lr_schedule = "linear";
    std::string task = "auto";
    std::string eval_data;
    std::string teacher;
    std::string labels;
    std::string checkpoint_dir;
    std::string resume;
    std::string metrics;
  };
  auto options = std::make_shared<Options>();
  app.add_option("--recipe", options->recipe, "Recipe to apply (JSON or YAML)");
  app.add_option("--recipe-args", options->recipe_args,
                 "Recipe variables to set, as name=value,name=value (llm-compressor's "
                 "recipe_args, SparseML's recipe variables)");
  app.add_option("MODEL", options->model,
                 "Model: Hugging Face folder, .gguf file or TorchScript archive");
  app.add_option("-o,--output", options->output, "Output folder (written atomically)");
  app.add_option("--dataset", options->dataset,
                 "Calibration data: text or JSONL (random windows are drawn), or a .safetensors "
                 "file with input_ids [samples, tokens]; for train stages, the training data "
                 "(consecutive windows of --seq-len tokens)");
  app.add_option("--num-samples", options->calibration.num_samples, "Calibration samples")
      ->capture_default_str();
  app.add_option("--seq-len", options->calibration.seq_len,
                 "Tokens per calibration sample, and per training window")
      ->capture_default_str();
  app.add_option("--seed", options->calibration.seed,
                 "Seed for drawing calibration windows, and for the training order and dropout")
      ->capture_default_str();
  app.add_option("--calibration-batch-size", options->calibration.batch_size,
                 "Calibration samples per forward pass")
      ->capture_default_str();
  app.add_option("--target", options->target,
                 "Where the model will run; refuses what it cannot run (FP8 on Ampere)")
      ->check(CLI::IsMember({"cpu", "a10", "a100", "h100", "h200"}));
  app.add_option("--sparse-format", options->sparse_format,
                 "How pruned weights are stored: dense (zeros; loads everywhere), or the legacy "
                 "compressed-tensors sparse-bitmask / sparse-24-bitmask layouts (smaller files)")
      ->check(CLI::IsMember({"dense", "sparse-bitmask", "sparse-24-bitmask"}))
      ->capture_default_str();
  app.add_flag("--overwrite", options->overwrite, "Replace an existing output folder");
  // Train stages (recipes with run_type: train, or modifiers with a schedule).
  auto& t = options->training;
  const std::string train_group = "Training (recipes with train stages)";
  app.add_option("--task", options->task,
                 "What train stages learn: classification (JSONL \"text\" + integer \"label\"; "
                 "a model with a classifier head), causal-lm (next token on text windows), "
                 "sentence-embedding (JSONL \"text\" + \"text_pair\" + \"score\", or \"text\" + "
                 "\"embedding\"), seq2seq (T5; JSONL \"text\" + \"target\"), or auto "
                 "(classification with a classifier head, else seq2seq for T5, sentence-embedding "
                 "for BERT encoders, causal-lm for the rest)")
      ->check(
          CLI::IsMember({"auto", "causal-lm", "classification", "sentence-embedding", "seq2seq"}))
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--teacher", options->teacher,
                 "The teacher a DistillationModifier learns from (Hugging Face folder or .gguf "
                 "file), loaded once and run in inference mode beside the student")
      ->group(train_group);
  app.add_option("--labels", options->labels,
                 "Offline distillation: train on a label folder (compress label) instead of "
                 "--dataset, with no teacher in memory: the teacher's top-k log-probabilities "
                 "(--kind logits, with a DistillationModifier), its generations (--kind generate, "
                 "sequence-level) or its embeddings (--kind embed)")
      ->group(train_group);
  app.add_flag("--prompt-loss", t.prompt_loss,
               "With --labels of kind generate: predict the prompts' tokens as well as the "
               "teacher's generations (the student keeps learning the language of its inputs)")
      ->group(train_group);
  app.add_option("--eval-data", options->eval_data,
                 "Held-out data in the form of --dataset: accuracy (classification) or perplexity "
                 "at the end of each train stage, and every --eval-every steps")
      ->group(train_group);
  app.add_option("--eval-every", t.eval_every, "Steps between evaluations (0: only at the end)")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--batch-size", t.batch_size, "Examples (windows or records) per micro-batch")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--gradient-accumulation", t.gradient_accumulation,
                 "Micro-batches per optimizer step")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--epochs", t.epochs,
                 "Epochs when the recipe sets none (EpochRangeModifier, schedule ends)")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--max-steps", t.max_steps, "Stop each train stage after this many steps")
      ->group(train_group);
  app.add_option("--learning-rate", t.learning_rate,
                 "Peak learning rate unless a recipe modifier sets it")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--warmup-steps", t.warmup_steps, "Linear warmup steps")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--lr-schedule", options->lr_schedule, "Decay after warmup")
      ->check(CLI::IsMember({"constant", "linear", "cosine"}))
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--weight-decay", t.weight_decay, "AdamW weight decay")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--max-grad-norm", t.max_grad_norm, "Gradient clipping (0: off)")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--checkpoint-dir", options->checkpoint_dir,
                 "Where training checkpoints go (default OUT.checkpoints, removed once OUT is "
                 "written)")
      ->group(train_group);
  app.add_option("--checkpoint-every", t.checkpoint_every,
                 "Steps between checkpoints (0: only on SIGINT/SIGTERM and at the end)")
      ->capture_default_str()
      ->group(train_group);
  app.add_option("--resume", options->resume,
                 "Continue an interrupted run from the checkpoints in DIR (by default training "
                 "writes them to OUT.checkpoints)")
      ->group(train_group);
  app.add_option("--metrics", options->metrics, "Write training metrics as JSON lines here")
      ->group(train_group);
  return [options, &app]() -> int {
    if (options->recipe.empty() || options->model.empty() || options->output.empty()) {
      std::cerr << app.help() << "\nerror: the main form needs --recipe RECIPE, MODEL and -o OUT\n";
      return 2;
    }
    const auto recipe = stunt::recipe::load_recipe(
        options->recipe, options->recipe_args.empty()
                             ? stunt::recipe::RecipeArgs{}
                             : stunt::recipe::parse_recipe_args(options->recipe_args));
    stunt::recipe::CompressOptions compress;
    compress.dataset = options->dataset;
    compress.calibration = options->calibration;
    compress.target = options->target;
    compress.sparse_format = stunt::quant::parse_sparse_format(options->sparse_format);
    compress.overwrite = options->overwrite;
    compress.training = options->training;
    compress.training.seq_len = options->calibration.seq_len;
    compress.training.seed = options->calibration.seed;
    compress.training.decay =
        stunt::train::parse_learning_rate_shape(options->lr_schedule, "--lr-schedule");
    compress.training.task = stunt::recipe::parse_training_task(options->task, "--task");
    compress.training.checkpoint_dir = options->checkpoint_dir;
    compress.training.eval_data = options->eval_data;
    compress.training.teacher = options->teacher;
    compress.training.labels = options->labels;
    compress.training.metrics_file = options->metrics;
    if (!options->resume.empty()) {
      compress.training.resume = true;
      compress.training.checkpoint_dir = options->resume;
    }
    // Launched by torchrun (or with its variables set): train stages run data-parallel.
    compress.distributed = stunt::train::distributed_environment();
    stunt::recipe::compress_model(recipe, options->model, options->output, compress);
    return 0;
  };
}

}  // namespace compress
