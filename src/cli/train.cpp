// `wick train MODEL --data FILE`: LoRA fine-tuning of a Qwen2/Llama-family model. Options come from flags
// and/or a JSON config file (--config, keys named like the long flags). Writes the adapter (a PEFT
// adapter folder) to --output, checkpoints beside it, the loss log (loss.csv) and a loss curve (loss.svg).
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include "cli/commands.h"
#include "cli/loss_plot.h"
#include "cli/progress.h"
#include "wick/error.h"
#include "wick/io/atomic_file.h"
#include "wick/io/chat_template.h"
#include "wick/io/tokenizer.h"
#include "wick/train/trainer.h"

#include <nlohmann/json.hpp>

namespace wick::cli {
namespace fs = std::filesystem;
namespace {

struct TrainCommand {
  std::string model, data, validation_data, output = "wick-adapter", format = "auto", resume, init_adapter;
  std::string device = "cpu", dtype = "auto", schedule = "cosine", init = "kaiming";
  std::vector<std::string> targets = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                      "gate_proj", "up_proj", "down_proj"};
  int64_t rank = 16;
  double alpha = 32, dropout = 0.0, validation_fraction = 0.0;
  bool rslora = false, refuse_long = false;
  int64_t eval_every = 0, save_every = 0;
  train::TrainerOptions options;
};

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}h{:02}m", s / 3600, s / 60 % 60)
                   : fmt::format("{}m{:02}s", s / 60, s % 60);
}

// The checkpoint folder with the highest step under `output`.
std::string latest_checkpoint(const std::string& output) {
  const std::regex pattern("checkpoint-([0-9]+)");
  int64_t best = -1;
  std::string found;
  if (fs::is_directory(output))
    for (const auto& entry : fs::directory_iterator(output)) {
      std::smatch match;
      const std::string name = entry.path().filename().string();
      if (entry.is_directory() && std::regex_match(name, match, pattern) && std::stoll(match[1]) > best) {
        best = std::stoll(match[1]);
        found = entry.path().string();
      }
    }
  if (found.empty()) fail("train", "--resume latest: no checkpoint-N folder in {}", output);
  return found;
}

void write_logs(const TrainCommand& c, const train::Trainer& trainer) {
  io::write_file_atomic(fs::path(c.output) / "loss.csv", loss_csv(trainer.history()));
  io::write_file_atomic(
      fs::path(c.output) / "loss.svg",
      loss_svg(trainer.history(),
               fmt::format("wick train: {} (LoRA r={})", fs::path(c.model).filename().string(), c.rank)));
}

void run_train(TrainCommand c) {
  if (c.data.empty())
    fail("train", "no training data: give --data FILE (on the command line or in the --config file)");
  const std::vector<lora::Projection> targets = lora::parse_target_modules(c.targets);
  const Device device = device_from_name(c.device);
  const DType dtype =
      c.dtype == "auto" ? (device.is_cuda() ? DType::bf16 : DType::f32) : dtype_from_name(c.dtype);
  const auto config = models::load_config(c.model);
  if (!config.is_decoder())
    fail("train", "{}: LoRA training needs a decoder, this is '{}'", c.model, config.model_type);
  const auto tokenizer = io::Tokenizer::from_file(c.model);

  train::DataOptions data;
  data.format = train::data_format_from_name(c.format);
  data.max_length = std::min(c.options.max_length, config.max_position_embeddings);
  data.truncate = !c.refuse_long;
  std::optional<io::ChatTemplate> chat;
  if (fs::exists(fs::path(c.model) / "chat_template.jinja") || !tokenizer.chat_template().empty()) {
    chat.emplace(io::ChatTemplate::load(c.model));
    data.render_chat = [&chat](const nlohmann::json& messages, bool add_generation_prompt) {
      return chat->render(nlohmann::ordered_json::parse(messages.dump()), add_generation_prompt);
    };
  }
  auto examples = train::load_examples(c.data, tokenizer, data);
  std::vector<train::Example> validation;
  if (!c.validation_data.empty()) {
    validation = train::load_examples(c.validation_data, tokenizer, data);
  } else {
    train::split_validation(examples, validation, c.validation_fraction, c.options.seed);
  }

  lora::LoraConfig lora;
  lora.rank = c.rank;
  lora.alpha = c.alpha;
  lora.dropout = c.dropout;
  lora.use_rslora = c.rslora;
  lora.targets = targets;
  if (c.init != "kaiming" && c.init != "gaussian")
    fail("train", "--init must be kaiming or gaussian, got '{}'", c.init);
  lora.init = c.init == "gaussian" ? lora::InitMethod::gaussian : lora::InitMethod::kaiming_uniform;
  lora.base_model = fs::absolute(c.model).lexically_normal().string();
  const lora::LoraAdapter initial = c.init_adapter.empty()
                                        ? lora::LoraAdapter::create(config, lora, c.options.seed)
                                        : lora::LoraAdapter::load(c.init_adapter, config);

  c.options.schedule = train::schedule_from_name(c.schedule);
  c.options.max_length = data.max_length;
  c.options.pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  fmt::print(stderr, "[loading {} ({} layers) on {} in {}]\n", c.model, config.num_hidden_layers,
             device.str(), dtype_name(dtype));
  const models::Decoder model(config, models::CheckpointSource::open(c.model), device, dtype);
  train::Trainer trainer(model, initial, std::move(examples), std::move(validation), c.options);
  if (!c.resume.empty()) {
    const std::string from = c.resume == "latest" ? latest_checkpoint(c.output) : c.resume;
    trainer.resume(from);
    fmt::print(stderr, "[resumed from {} at step {}]\n", from, trainer.step());
  }
  fmt::print(stderr, "[{} trainable LoRA parameters (r={}, alpha={}); {} steps, {} per epoch]\n",
             trainer.adapter().flat().numel(), c.rank, c.alpha, trainer.total_steps(),
             trainer.steps_per_epoch());
  fs::create_directories(c.output);
  ProgressBar bar("train", trainer.total_steps());
  double seconds = 0;
  int64_t tokens = 0, steps = 0;
  while (!trainer.done()) {
    const train::StepRecord r = trainer.train_step();
    seconds += r.seconds;
    tokens += r.tokens;
    ++steps;
    const bool last = trainer.done();
    if (trainer.has_validation() && ((c.eval_every > 0 && r.step % c.eval_every == 0) || last))
      trainer.record_eval(trainer.evaluate());
    const auto& recorded = trainer.history().back();
    const double eta =
        seconds / static_cast<double>(steps) * static_cast<double>(trainer.total_steps() - r.step);
    bar.update(r.step,
               fmt::format("loss {:.4f}{} | {:.0f} tok/s | ETA {}", r.loss,
                           recorded.eval_loss ? fmt::format(" (val {:.4f})", *recorded.eval_loss) : "",
                           tokens / std::max(seconds, 1e-9), duration(eta)));
    if (r.skipped) fmt::print(stderr, "\n[step {}: non-finite loss or gradient, step skipped]\n", r.step);
    if (c.save_every > 0 && r.step % c.save_every == 0 && !last) {
      trainer.save_checkpoint((fs::path(c.output) / fmt::format("checkpoint-{}", r.step)).string());
      write_logs(c, trainer);
    }
  }
  bar.finish();
  trainer.adapter().save_into(c.output);
  trainer.save_checkpoint((fs::path(c.output) / fmt::format("checkpoint-{}", trainer.step())).string());
  write_logs(c, trainer);
  const auto& last = trainer.history().back();
  fmt::print(stderr,
             "[done: {} steps, final loss {:.4f}{}, {:.0f} tokens/s; adapter in {}, loss log {}/loss.csv]\n",
             trainer.step(), last.loss,
             last.eval_loss ? fmt::format(", validation loss {:.4f}", *last.eval_loss) : "",
             tokens / std::max(seconds, 1e-9), c.output, c.output);
}

// Options from a JSON object whose keys are long option names, for every option not given on the command
// line.
void apply_config_file(CLI::App& cmd, const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("train", "{}: cannot open the config file", path);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("train", "{}: not valid JSON: {}", path, e.what());
  }
  if (!config.is_object()) fail("train", "{}: expected a JSON object of option names and values", path);
  for (const auto& [key, value] : config.items()) {
    CLI::Option* option = nullptr;
    try {
      option = cmd.get_option("--" + key);
    } catch (const CLI::OptionNotFound&) {
      fail("train", "{}: '{}' is not an option of wick train (see wick train --help)", path, key);
    }
    if (key == "config") fail("train", "{}: a config file cannot name another config file", path);
    if (option->count() > 0) continue;  // the command line wins
    std::vector<std::string> values;
    for (const auto& item : value.is_array() ? value : nlohmann::json::array({value}))
      values.push_back(item.is_string() ? item.get<std::string>() : item.dump());
    try {
      for (const auto& v : values) option->add_result(v);
      option->run_callback();
    } catch (const CLI::Error& e) {
      fail("train", "{}: option '{}': {}", path, key, e.what());
    }
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Fine-tune a LoRA adapter on a Qwen2/Llama-family model");
  static TrainCommand c;
  auto& o = c.options;
  static std::string config_file;
  cmd->add_option(
      "--config", config_file,
      "JSON file of options, keys named like the long flags (\"lr\": 1e-4, \"targets\": [...]); flags given "
      "on the command line win");
  cmd->add_option("model", c.model, "model directory (config.json, safetensors, tokenizer.json)")->required();
  cmd->add_option("--data", c.data, "training data, JSONL: {\"text\"}, alpaca or {\"messages\"} records");
  cmd->add_option("--format", c.format, "auto, text, alpaca or chat")->capture_default_str();
  cmd->add_option("--validation-data", c.validation_data, "validation JSONL (else --validation-fraction)");
  cmd->add_option("--validation-fraction", c.validation_fraction, "share of --data held out")
      ->capture_default_str();
  cmd->add_option("-o,--output", c.output, "adapter / checkpoint / log folder")->capture_default_str();
  cmd->add_option("--resume", c.resume, "continue from a checkpoint folder, or 'latest' in --output");
  cmd->add_option("--init-adapter", c.init_adapter, "start from this PEFT adapter instead of a fresh one");
  cmd->add_option("-r,--rank", c.rank, "LoRA rank")->capture_default_str();
  cmd->add_option("--alpha", c.alpha, "LoRA alpha (scale alpha/r)")->capture_default_str();
  cmd->add_option("--lora-dropout", c.dropout, "dropout on the LoRA input")->capture_default_str();
  cmd->add_option("--targets", c.targets, "projections to adapt (or all-linear)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("--rslora", c.rslora, "scale alpha/sqrt(r) (rsLoRA)");
  cmd->add_option("--init", c.init, "A's initialisation: kaiming or gaussian")->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "passes over the data")->capture_default_str();
  cmd->add_option("--max-steps", o.max_steps, "stop after this many optimizer steps (overrides --epochs)");
  cmd->add_option("-b,--batch-size", o.batch_size, "sequences per micro-batch")->capture_default_str();
  cmd->add_option("--grad-accum", o.grad_accumulation, "micro-batches per optimizer step")
      ->capture_default_str();
  cmd->add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--schedule", c.schedule, "constant, linear or cosine")->capture_default_str();
  cmd->add_option("--warmup-steps", o.warmup_steps, "linear warmup steps")->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--beta1", o.beta1, "AdamW beta1")->capture_default_str();
  cmd->add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
  cmd->add_option("--adam-eps", o.eps, "AdamW epsilon")->capture_default_str();
  cmd->add_option("--max-grad-norm", o.max_grad_norm, "global-norm clipping (0: off)")->capture_default_str();
  cmd->add_option("--max-length", o.max_length, "tokens per sequence")->capture_default_str();
  cmd->add_flag("--refuse-long", c.refuse_long, "refuse longer records instead of truncating them");
  cmd->add_flag("--packing", o.packing, "concatenate records into full rows instead of padding");
  cmd->add_flag("--checkpointing", o.checkpointing,
                "recompute block activations in the backward (less memory)");
  cmd->add_flag("--skip-nonfinite", o.skip_nonfinite, "skip steps with NaN/Inf instead of stopping");
  cmd->add_option("--eval-every", c.eval_every, "validation loss every N steps (and at the end)");
  cmd->add_option("--save-every", c.save_every, "checkpoint every N steps (and at the end)");
  cmd->add_option("--seed", o.seed, "data order, initialisation and dropout")->capture_default_str();
  cmd->add_option("--device", c.device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--dtype", c.dtype, "auto (bf16 on cuda, f32 on cpu), f32, bf16, f16")
      ->capture_default_str();
  cmd->callback([cmd] {
    if (!config_file.empty()) apply_config_file(*cmd, config_file);
    run_train(c);
  });
}

}  // namespace wick::cli
