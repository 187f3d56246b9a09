//===- TargetBackend.cpp - the target registry and --target ---------------===//

#include "quench/Target/TargetBackend.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/ManagedStatic.h"

#include <mutex>

using namespace llvm;

quench::TargetBackend::~TargetBackend() = default;

namespace {
struct Registry {
  std::mutex mutex;
  std::vector<quench::RegisteredTargetBackend> backends;
  StringMap<quench::TargetBackendFactory> factories;
};

struct TargetCLOptions {
  cl::opt<std::string> target{
      "target",
      cl::desc("Target to generate code for (default: cpu; see "
               "--list-targets)"),
      cl::init("cpu"), cl::value_desc("NAME"),
      cl::cat(quench::getTargetCLOptionCategory())};
};
} // namespace

static ManagedStatic<Registry> registry;
static ManagedStatic<TargetCLOptions> clOptions;

void quench::registerTargetBackend(StringRef name, StringRef description,
                                   TargetBackendFactory factory) {
  std::lock_guard<std::mutex> lock(registry->mutex);
  if (!registry->factories.try_emplace(name, std::move(factory)).second)
    return;
  registry->backends.push_back({name.str(), description.str()});
}

std::vector<quench::RegisteredTargetBackend>
quench::getRegisteredTargetBackends() {
  std::lock_guard<std::mutex> lock(registry->mutex);
  return registry->backends;
}

Expected<std::unique_ptr<quench::TargetBackend>>
quench::createTargetBackend(StringRef name) {
  TargetBackendFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry->mutex);
    auto it = registry->factories.find(name);
    if (it != registry->factories.end())
      factory = it->second;
  }
  if (!factory) {
    std::string names;
    for (const RegisteredTargetBackend &b : getRegisteredTargetBackends())
      names += (names.empty() ? "" : ", ") + b.name;
    return createStringError(inconvertibleErrorCode(),
                             "unknown --target '" + name +
                                 "': registered targets: " +
                                 (names.empty() ? "none" : names));
  }
  return factory();
}

cl::OptionCategory &quench::getTargetCLOptionCategory() {
  static cl::OptionCategory category("quench-compile target options");
  return category;
}

void quench::registerTargetCLOptions() { *clOptions; }

Expected<std::unique_ptr<quench::TargetBackend>>
quench::createTargetBackendFromCLOptions() {
  return createTargetBackend(clOptions.isConstructed()
                                 ? StringRef(clOptions->target)
                                 : StringRef("cpu"));
}
