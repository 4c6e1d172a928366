// Learning-rate schedules with a linear warmup, as the Hugging Face schedulers define them: the multiplier of
// the base rate for optimizer step `step` (0 for the first update) out of `total`.
#pragma once

#include <cstdint>
#include <string>

namespace wick::train {

enum class Schedule { constant, linear, cosine };
Schedule schedule_from_name(const std::string& name);  // constant, linear, cosine
const char* schedule_name(Schedule schedule);

// constant: min(1, step/warmup); linear: warmup, then (total − step)/(total − warmup) down to 0; cosine:
// warmup, then ½·(1 + cos(π·progress)).
double lr_multiplier(Schedule schedule, int64_t step, int64_t warmup, int64_t total);

}  // namespace wick::train
