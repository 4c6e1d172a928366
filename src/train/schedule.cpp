#include "wick/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "wick/error.h"

namespace wick::train {

Schedule schedule_from_name(const std::string& name) {
  if (name == "constant") return Schedule::constant;
  if (name == "linear") return Schedule::linear;
  if (name == "cosine") return Schedule::cosine;
  fail("train", "unknown learning-rate schedule '{}' (expected constant, linear or cosine)", name);
}

const char* schedule_name(Schedule schedule) {
  switch (schedule) {
    case Schedule::constant:
      return "constant";
    case Schedule::linear:
      return "linear";
    case Schedule::cosine:
      return "cosine";
  }
  return "?";
}

double lr_multiplier(Schedule schedule, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (schedule == Schedule::constant) return 1.0;
  const double remaining = static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double progress = static_cast<double>(step - warmup) / remaining;
  if (schedule == Schedule::linear) return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace wick::train
