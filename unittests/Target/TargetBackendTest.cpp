//===- TargetBackendTest.cpp - the target registry and the CPU backend ----===//
//
// What --target relies on: registration by name, the one-line error for an
// unknown name listing the registered ones, and the CPU backend's
// configuration (its stages follow the CPU's features; bad options fail
// before anything is compiled).
//
//===----------------------------------------------------------------------===//

#include "quench/Pipelines/Pipelines.h"
#include "quench/Target/CPU/CPUTargetBackend.h"
#include "quench/Target/TargetBackend.h"

#include <gtest/gtest.h>

using namespace llvm;

namespace {

std::string errorText(Error e) { return toString(std::move(e)); }

std::vector<std::string> stageNames(const quench::TargetBackend &backend) {
  std::vector<quench::PipelineStage> stages;
  backend.appendCodegenStages(stages);
  std::vector<std::string> names;
  for (const quench::PipelineStage &s : stages)
    names.push_back(s.name);
  return names;
}

TEST(TargetRegistry, UnknownNameListsTheRegisteredTargets) {
  quench::registerCPUTargetBackend();
  quench::registerCPUTargetBackend(); // a second registration is ignored
  auto backend = quench::createTargetBackend("tpu");
  ASSERT_FALSE(backend);
  EXPECT_EQ(errorText(backend.takeError()),
            "unknown --target 'tpu': registered targets: cpu");
  int cpus = 0;
  for (const auto &t : quench::getRegisteredTargetBackends())
    cpus += t.name == "cpu";
  EXPECT_EQ(cpus, 1);
}

TEST(TargetRegistry, CreatesTheRegisteredBackend) {
  quench::registerCPUTargetBackend();
  auto backend = quench::createTargetBackend("cpu");
  ASSERT_TRUE(!!backend) << errorText(backend.takeError());
  EXPECT_EQ((*backend)->getName(), "cpu");
  EXPECT_EQ((*backend)->getDisplayName(), "CPU");
  // Without registerCPUTargetCLOptions the command line is not read: the
  // defaults (host CPU) apply.
  auto fromCL = quench::createTargetBackendFromCLOptions();
  ASSERT_TRUE(!!fromCL) << errorText(fromCL.takeError());
  EXPECT_EQ((*fromCL)->getName(), "cpu");
}

TEST(CPUTargetBackend, StagesAndSerializationAreNamed) {
  quench::CPUTargetOptions options;
  options.cpu = "x86-64-v3";
  auto backend = quench::createCPUTargetBackend(options);
  ASSERT_TRUE(!!backend) << errorText(backend.takeError());
  EXPECT_EQ(stageNames(**backend),
            (std::vector<std::string>{"codegen", "bufferize", "to-llvm"}));
  auto serialization = (*backend)->describeSerialization();
  ASSERT_EQ(serialization.size(), 2u);
  EXPECT_EQ(serialization[0].first, "llvm");
  EXPECT_NE(serialization[0].second.find("-O3"), std::string::npos);
  EXPECT_EQ(serialization[1].first, "codegen-obj");
  auto libs = (*backend)->getRuntimeLibraries();
  EXPECT_EQ(libs.archives, std::vector<std::string>{"libquench_runtime.a"});
}

TEST(CPUTargetBackend, BadOptionsFailBeforeCompiling) {
  quench::CPUTargetOptions badCPU;
  badCPU.cpu = "no-such-cpu";
  auto a = quench::createCPUTargetBackend(badCPU);
  ASSERT_FALSE(a);
  EXPECT_NE(errorText(a.takeError()).find("unknown CPU 'no-such-cpu'"),
            std::string::npos);
  quench::CPUTargetOptions badLevel;
  badLevel.optLevel = 4;
  auto b = quench::createCPUTargetBackend(badLevel);
  ASSERT_FALSE(b);
  EXPECT_EQ(errorText(b.takeError()), "-O takes 0, 1, 2 or 3");
}

TEST(FrontPipeline, StagesFollowTheOptions) {
  auto names = [](const quench::FrontPipelineOptions &o) {
    std::string out;
    for (const quench::PipelineStage &s : quench::getFrontPipelineStages(o))
      out += (out.empty() ? "" : " ") + s.name;
    return out;
  };
  quench::FrontPipelineOptions o;
  EXPECT_EQ(names(o), "prepare attention fuse-linears to-linalg");
  o.calibrate = [](mlir::ModuleOp) { return mlir::success(); };
  o.weightQuant.emplace();
  o.kvCache = [](mlir::ModuleOp) { return mlir::success(); };
  EXPECT_EQ(names(o), "prepare calibrate quantize kv-cache attention "
                      "fuse-linears to-linalg");
  // Rotation comes before calibration: statistics see the rotated model.
  o.rotate.emplace();
  EXPECT_EQ(names(o),
            "prepare rotate calibrate quantize kv-cache attention "
            "fuse-linears to-linalg");
  o.rotate.reset();
  o.prepare = false;
  o.fuseAttention = false;
  EXPECT_EQ(names(o), "calibrate quantize kv-cache fuse-linears to-linalg");
  o.fuseLinears = false;
  EXPECT_EQ(names(o), "calibrate quantize kv-cache to-linalg");
  // The calibrate stage runs a function, the others build pass pipelines.
  for (const quench::PipelineStage &s : quench::getFrontPipelineStages(o))
    EXPECT_EQ(s.name == "calibrate" || s.name == "kv-cache", !!s.run)
        << s.name;
}

} // namespace
