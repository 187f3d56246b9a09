//===- GenerationOptions.cpp - --kv-cache and the generation options ------===//
//
// The compile driver's options for generation models: whether and how the
// past keys/values of a decoder become caches (quench-kv-cache, whose
// options in Passes.td these map onto) and the names of the inputs and
// outputs with a role in generation. docs/generation.md.
//
//===----------------------------------------------------------------------===//

#include "quench/Pipelines/Pipelines.h"

#include "llvm/Support/ManagedStatic.h"

using namespace llvm;

namespace {
struct GenerationCLOptions {
  cl::OptionCategory category{"quench-compile generation options"};
  cl::opt<std::string> kvCache{
      "kv-cache",
      cl::desc("Past keys/values of a decoder exported with past "
               "(past_key_values.{i}.key|value in, present.{i}.key|value "
               "out): auto (default: a cache of the past's type when the "
               "model has such inputs), f32, f16 or int8 (the cache's element "
               "type, int8 with one f32 scale per head and position; the "
               "model must have such inputs), none (compile the graph as "
               "it is)"),
      cl::init("auto"), cl::value_desc("auto|none|f32|f16|int8"),
      cl::cat(category)};
  cl::opt<bool> derive{
      "derive-kv-cache",
      cl::desc("The model is a causal LM exported without past (token ids "
               "in, logits out): recognize its attention and derive the past "
               "keys/values, then keep them in a cache as for a model "
               "exported with past (docs/generation.md)"),
      cl::init(false), cl::cat(category)};
  cl::opt<int64_t> maxSeq{
      "max-seq",
      cl::desc("Default capacity of a generation session's cache, in "
               "positions (prompt + generated tokens; default 2048; "
               "sessions may choose another)"),
      cl::init(2048), cl::value_desc("N"), cl::cat(category)};
  cl::opt<std::string> past{
      "kv-past",
      cl::desc("Names of the past inputs, {i} = layer, {kv} = key|value "
               "(default past_key_values.{i}.{kv})"),
      cl::init("past_key_values.{i}.{kv}"), cl::value_desc("PATTERN"),
      cl::cat(category)};
  cl::opt<std::string> present{
      "kv-present",
      cl::desc("Names of the present outputs (default present.{i}.{kv})"),
      cl::init("present.{i}.{kv}"), cl::value_desc("PATTERN"),
      cl::cat(category)};
  cl::opt<std::string> inputIds{
      "kv-input-ids", cl::desc("Name of the token ids input (default "
                               "input_ids)"),
      cl::init("input_ids"), cl::value_desc("NAME"), cl::cat(category)};
  cl::opt<std::string> attentionMask{
      "kv-attention-mask",
      cl::desc("Name of the attention mask input, if the model has one "
               "(default attention_mask)"),
      cl::init("attention_mask"), cl::value_desc("NAME"), cl::cat(category)};
  cl::opt<std::string> positionIds{
      "kv-position-ids",
      cl::desc("Name of the position ids input, if the model has one "
               "(default position_ids)"),
      cl::init("position_ids"), cl::value_desc("NAME"), cl::cat(category)};
  cl::opt<std::string> logits{
      "kv-logits",
      cl::desc("Name of the logits output (default logits, else the only "
               "output besides the presents)"),
      cl::init("logits"), cl::value_desc("NAME"), cl::cat(category)};
  cl::opt<std::string> logitsPositions{
      "kv-logits-positions",
      cl::desc("Logits each step returns: last (default: the last new "
               "position's, [1, 1, vocab], all that sampling needs; the "
               "final norm and LM head run on that position only) or all "
               "(every new position's, e.g. to score a prompt)"),
      cl::init("last"), cl::value_desc("last|all"), cl::cat(category)};
};
} // namespace

static ManagedStatic<GenerationCLOptions> clOptions;

void quench::registerGenerationCLOptions() { *clOptions; }

cl::OptionCategory &quench::getGenerationCLOptionCategory() {
  return clOptions->category;
}

Expected<std::optional<quench::KVCacheRequest>>
quench::getKVCacheRequestFromCL() {
  std::optional<KVCacheRequest> out;
  if (!clOptions.isConstructed())
    return out;
  GenerationCLOptions &o = *clOptions;
  auto error = [](const Twine &msg) {
    return createStringError(inconvertibleErrorCode(), msg);
  };
  if (o.kvCache != "auto" && o.kvCache != "none" && o.kvCache != "f32" &&
      o.kvCache != "f16" && o.kvCache != "int8")
    return error("--kv-cache must be auto, none, f32, f16 or int8, got '" +
                 o.kvCache + "'");
  if (o.maxSeq <= 0)
    return error("--max-seq must be positive, got " + Twine(o.maxSeq.getValue()));
  for (const cl::opt<std::string> *p : {&o.past, &o.present})
    if (StringRef(*p).count("{i}") != 1 || StringRef(*p).count("{kv}") != 1)
      return error("--" + p->ArgStr + " must contain {i} and {kv} once each, "
                   "got '" + p->getValue() + "'");
  if (o.logitsPositions != "last" && o.logitsPositions != "all")
    return error("--kv-logits-positions must be last or all, got '" +
                 o.logitsPositions + "'");
  if (o.kvCache == "none") {
    if (o.derive)
      return error("--derive-kv-cache needs a cache: not with "
                   "--kv-cache=none");
    return out;
  }
  KVCacheRequest r;
  r.required = o.kvCache != "auto";
  r.derive = o.derive;
  r.options.cacheType = o.kvCache == "auto" ? "model" : o.kvCache.getValue();
  r.options.maxSeq = o.maxSeq;
  r.options.past = o.past;
  r.options.present = o.present;
  r.options.inputIds = o.inputIds;
  r.options.attentionMask = o.attentionMask;
  r.options.positionIds = o.positionIds;
  r.options.logits = o.logits;
  r.options.logitsPositions = o.logitsPositions;
  out = std::move(r);
  return out;
}
