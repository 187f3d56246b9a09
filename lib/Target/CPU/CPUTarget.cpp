//===- CPUTarget.cpp - host/explicit CPU targets, object emission ---------===//

#include "quench/Target/CPU/CPUTarget.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/TargetParser/Triple.h"

#include <mutex>

using namespace llvm;

static void initializeTargets() {
  static std::once_flag once;
  std::call_once(once, [] {
    InitializeAllTargetInfos();
    InitializeAllTargets();
    InitializeAllTargetMCs();
    InitializeAllAsmPrinters();
  });
}

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

Expected<quench::CPUTarget>
quench::resolveCPUTarget(StringRef cpu, StringRef extraFeatures,
                         StringRef triple) {
  initializeTargets();
  CPUTarget t;
  t.triple = triple.empty() ? sys::getDefaultTargetTriple() : triple.str();
  Triple tt(t.triple);
  std::string err;
  const Target *target = TargetRegistry::lookupTarget(tt, err);
  if (!target)
    return makeError("unknown target triple '" + t.triple + "': " + err);

  SubtargetFeatures features;
  if (cpu.empty() || cpu == "host" || cpu == "native") {
    if (tt.getArch() != Triple(sys::getProcessTriple()).getArch())
      return makeError("--cpu=host needs the host's architecture, but the "
                       "target triple is '" + t.triple + "'");
    t.cpu = sys::getHostCPUName().str();
    // Every feature the host reports, enabled or disabled: the disabled ones
    // override defaults of the CPU name (e.g. AVX-512 hidden by a VM).
    StringMap<bool> host = sys::getHostCPUFeatures();
    SmallVector<std::string> names;
    for (const auto &f : host)
      names.push_back((f.second ? "+" : "-") + f.first().str());
    llvm::sort(names); // deterministic feature strings
    for (const std::string &n : names)
      features.AddFeature(n);
  } else {
    t.cpu = cpu.str();
  }

  // Validate the CPU name against the target's list (created for the
  // generic CPU so that LLVM does not print its own warning).
  std::unique_ptr<MCSubtargetInfo> sti(
      target->createMCSubtargetInfo(tt, "", ""));
  if (!sti || !sti->isCPUStringValid(t.cpu))
    return makeError("unknown CPU '" + t.cpu + "' for target '" + t.triple +
                     "'");

  SmallVector<StringRef> extra;
  extraFeatures.split(extra, ',', -1, /*KeepEmpty=*/false);
  for (StringRef f : extra) {
    f = f.trim();
    if (f.size() < 2 || (f[0] != '+' && f[0] != '-'))
      return makeError("malformed CPU feature '" + f +
                       "' (expected +name or -name)");
    StringRef name = f.drop_front();
    if (!llvm::any_of(sti->getAllProcessorFeatures(),
                      [&](const SubtargetFeatureKV &kv) {
                        return name == kv.Key;
                      }))
      return makeError("unknown CPU feature '" + f.drop_front() +
                       "' for target '" + t.triple + "'");
    features.AddFeature(f);
  }
  t.features = features.getString();
  return t;
}

unsigned quench::getPreferredVectorBits(const CPUTarget &target) {
  initializeTargets();
  Triple tt(target.triple);
  std::string err;
  const Target *t = TargetRegistry::lookupTarget(tt, err);
  if (!t)
    return 128;
  std::unique_ptr<MCSubtargetInfo> sti(
      t->createMCSubtargetInfo(tt, target.cpu, target.features));
  if (!sti)
    return 128;
  if (tt.isX86()) {
    if (sti->checkFeatures("+avx512f"))
      return 512;
    if (sti->checkFeatures("+avx"))
      return 256;
  }
  return 128;
}

bool quench::hasCPUFeature(const CPUTarget &target, StringRef feature) {
  initializeTargets();
  Triple tt(target.triple);
  std::string err;
  const Target *t = TargetRegistry::lookupTarget(tt, err);
  if (!t)
    return false;
  std::unique_ptr<MCSubtargetInfo> sti(
      t->createMCSubtargetInfo(tt, target.cpu, target.features));
  return sti && sti->checkFeatures(("+" + feature).str());
}

Expected<std::unique_ptr<TargetMachine>>
quench::createTargetMachine(const CPUTarget &target, CodeGenOptLevel optLevel) {
  initializeTargets();
  Triple tt(target.triple);
  std::string err;
  const Target *t = TargetRegistry::lookupTarget(tt, err);
  if (!t)
    return makeError("unknown target triple '" + target.triple + "': " + err);
  TargetOptions options;
  // a * b + c becomes one FMA wherever instruction selection finds it (as
  // with -ffp-contract=fast): the multiply-accumulate of vectorized
  // contractions and reductions, and the polynomial approximations.
  options.AllowFPOpFusion = FPOpFusion::Fast;
  std::unique_ptr<TargetMachine> tm(t->createTargetMachine(
      tt, target.cpu, target.features, options, Reloc::PIC_, std::nullopt,
      optLevel));
  if (!tm)
    return makeError("cannot create a target machine for '" + target.triple +
                     "' / '" + target.cpu + "'");
  return std::move(tm);
}

void quench::optimizeModule(Module &module, TargetMachine &tm,
                            unsigned optLevel) {
  module.setTargetTriple(tm.getTargetTriple());
  module.setDataLayout(tm.createDataLayout());
  LoopAnalysisManager lam;
  FunctionAnalysisManager fam;
  CGSCCAnalysisManager cgam;
  ModuleAnalysisManager mam;
  PassBuilder pb(&tm);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  OptimizationLevel level = optLevel == 0   ? OptimizationLevel::O0
                            : optLevel == 1 ? OptimizationLevel::O1
                            : optLevel == 2 ? OptimizationLevel::O2
                                            : OptimizationLevel::O3;
  ModulePassManager mpm = optLevel == 0
                              ? pb.buildO0DefaultPipeline(level)
                              : pb.buildPerModuleDefaultPipeline(level);
  mpm.run(module, mam);
}

Error quench::emitObjectFile(Module &module, TargetMachine &tm,
                             raw_pwrite_stream &os) {
  module.setTargetTriple(tm.getTargetTriple());
  module.setDataLayout(tm.createDataLayout());
  std::string msg;
  raw_string_ostream verifyOs(msg);
  if (verifyModule(module, &verifyOs))
    return makeError("invalid LLVM IR: " + msg);
  legacy::PassManager pm;
  if (tm.addPassesToEmitFile(pm, os, nullptr, CodeGenFileType::ObjectFile))
    return makeError("the target cannot emit object files");
  pm.run(module);
  return Error::success();
}

