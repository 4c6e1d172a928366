// `wick info`: what this build of wick has and which devices it sees.
#include <fmt/core.h>

#include "cli/commands.h"
#include "core/parallel.h"
#include "wick/cuda.h"
#include "wick/device.h"

namespace wick::cli {

void add_info_command(CLI::App& app) {
  auto* command = app.add_subcommand("info", "Show the build configuration and the devices wick can use");
  command->callback([] {
    fmt::print("wick {}\n", WICK_VERSION);
    fmt::print("cpu: {} threads (WICK_NUM_THREADS overrides), GEMM through OpenBLAS\n", cpu_threads());
    if (!cuda_built()) {
      fmt::print("cuda: not built into this binary\n");
    } else {
      fmt::print("cuda: built, {} device(s) visible\n", cuda_device_count());
      const std::string cudnn = cuda::cudnn_unavailable_reason();
      fmt::print("cudnn attention: {}\n", cudnn.empty() ? "available" : "not available, " + cudnn);
    }
  });
}

}  // namespace wick::cli
