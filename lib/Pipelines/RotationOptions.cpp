//===- RotationOptions.cpp - --rotate and --rotate-seed -------------------===//
//
// The compile driver's rotation options (quench-rotate, Passes.td), in the
// quantization category; registered with the quantization options
// (registerQuantizationCLOptions).
//
//===----------------------------------------------------------------------===//

#include "quench/Pipelines/Pipelines.h"

#include "llvm/Support/ManagedStatic.h"

using namespace llvm;

namespace {
struct RotationCLOptions {
  cl::opt<std::string> rotate{
      "rotate",
      cl::desc("Rotate the residual stream before calibration and "
               "quantization, the rotation folded into the weights "
               "(QuaRot/SpinQuant; the float model computes the same "
               "function): none (default) or hadamard (a seeded randomized "
               "Hadamard rotation; RMSNorm and LayerNorm models)"),
      cl::init("none"), cl::value_desc("none|hadamard"),
      cl::cat(quench::getQuantizationCLOptionCategory())};
  cl::opt<uint64_t> seed{
      "rotate-seed",
      cl::desc("Seed of --rotate's random rotation (default 0)"),
      cl::init(0), cl::value_desc("N"),
      cl::cat(quench::getQuantizationCLOptionCategory())};
  cl::opt<bool> online{
      "rotate-online",
      cl::desc("With --rotate=hadamard: also rotate the inputs of the "
               "down and output projections at run time (a Hadamard "
               "transform per token, folded into their weights; for W8A8)"),
      cl::cat(quench::getQuantizationCLOptionCategory())};
};
} // namespace

static ManagedStatic<RotationCLOptions> clOptions;

namespace quench {
/// Creates the options (called by registerQuantizationCLOptions).
void registerRotationCLOptions() { *clOptions; }
} // namespace quench

Expected<std::optional<quench::QuenchRotateOptions>>
quench::getRotationOptionsFromCL() {
  std::optional<QuenchRotateOptions> out;
  if (!clOptions.isConstructed())
    return out;
  const RotationCLOptions &o = *clOptions;
  if (o.rotate == "none") {
    if (o.seed.getNumOccurrences() || o.online)
      return createStringError(inconvertibleErrorCode(),
                               o.online ? "--rotate-online needs --rotate=hadamard"
                                        : "--rotate-seed needs --rotate=hadamard");
    return out;
  }
  if (o.rotate != "hadamard")
    return createStringError(inconvertibleErrorCode(),
                             "unknown rotation '" + o.rotate +
                                 "': use --rotate=none or --rotate=hadamard");
  QuenchRotateOptions r;
  r.rotation = o.rotate;
  r.seed = o.seed;
  r.online = o.online;
  return out = r;
}
