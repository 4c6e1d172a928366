// The training loss log as CSV and as an SVG line chart.
#pragma once

#include <string>
#include <vector>

#include "wick/train/trainer.h"

namespace wick::cli {

// One row per step: step, epoch, loss, eval_loss, lr, grad_norm, tokens, trained_tokens, seconds, skipped.
std::string loss_csv(const std::vector<train::StepRecord>& history);
// Training loss (and validation loss where measured) against the step, with labelled axes.
std::string loss_svg(const std::vector<train::StepRecord>& history, const std::string& title);

}  // namespace wick::cli
