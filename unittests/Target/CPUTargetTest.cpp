//===- CPUTargetTest.cpp - host target resolution and object emission ----===//

#include "quench/Target/CPU/CPUTarget.h"
#include "quench/Target/CPU/ModelABI.h"
#include "quench/Target/Weights.h"

#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/NoFolder.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Target/TargetMachine.h"

#include <dlfcn.h>
#include <fstream>
#include <gtest/gtest.h>
#include <numeric>
#include <sstream>

using namespace llvm;

namespace {

std::string errorText(Error e) { return toString(std::move(e)); }

/// The host's CPU flags as the kernel reports them (x86 /proc/cpuinfo).
std::string hostCpuFlags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0)
      return " " + line.substr(line.find(':') + 1) + " ";
  return "";
}

TEST(CPUTarget, HostFeaturesFollowTheRealCPU) {
  Expected<quench::CPUTarget> t = quench::resolveCPUTarget("host");
  ASSERT_TRUE(bool(t)) << errorText(t.takeError());
  EXPECT_FALSE(t->cpu.empty());
  EXPECT_FALSE(t->features.empty());
  std::string flags = hostCpuFlags();
  if (flags.empty() || Triple(t->triple).getArch() != Triple::x86_64)
    GTEST_SKIP() << "not an x86-64 Linux host";
  // Whatever the CPU name implies, a feature the kernel does not report must
  // be disabled explicitly, and one it reports enabled.
  std::string features = "," + t->features + ",";
  for (auto [cpuinfo, llvmName] :
       {std::pair{"avx512f", "avx512f"}, std::pair{"avx2", "avx2"},
        std::pair{"fma", "fma"}, std::pair{"avx512_vnni", "avx512vnni"}}) {
    bool has = flags.find(std::string(" ") + cpuinfo + " ") != std::string::npos;
    EXPECT_NE(features.find(std::string(",") + (has ? "+" : "-") + llvmName +
                            ","),
              std::string::npos)
        << llvmName << " should be " << (has ? "on" : "off") << " in "
        << t->features;
  }
}

TEST(CPUTarget, ExplicitCPUAndFeatures) {
  Expected<quench::CPUTarget> t =
      quench::resolveCPUTarget("x86-64-v3", "+fma,-avx512f", "x86_64-unknown-linux-gnu");
  ASSERT_TRUE(bool(t)) << errorText(t.takeError());
  EXPECT_EQ(t->cpu, "x86-64-v3");
  EXPECT_EQ(t->features, "+fma,-avx512f");
  auto tm = quench::createTargetMachine(*t);
  ASSERT_TRUE(bool(tm)) << errorText(tm.takeError());
  EXPECT_EQ((*tm)->getTargetCPU(), "x86-64-v3");
}

TEST(CPUTarget, PreferredVectorWidthFollowsFeatures) {
  auto bits = [](const char *cpu, const char *features) {
    auto t = quench::resolveCPUTarget(cpu, features, "x86_64-unknown-linux-gnu");
    EXPECT_TRUE(bool(t)) << errorText(t.takeError());
    return t ? quench::getPreferredVectorBits(*t) : 0u;
  };
  EXPECT_EQ(bits("x86-64", ""), 128u);
  EXPECT_EQ(bits("x86-64-v3", ""), 256u);
  EXPECT_EQ(bits("skylake-avx512", ""), 512u);
  EXPECT_EQ(bits("skylake-avx512", "-avx512f"), 256u);
  EXPECT_EQ(bits("x86-64", "+avx"), 256u);
  // The host: what CPUID reports, whatever the CPU's name says.
  auto host = quench::resolveCPUTarget("host");
  ASSERT_TRUE(bool(host)) << errorText(host.takeError());
  bool avx512 = host->features.find("+avx512f") != std::string::npos;
  EXPECT_EQ(quench::getPreferredVectorBits(*host), avx512 ? 512u : 256u);
}

TEST(CPUTarget, BadInputIsAClearError) {
  auto cpu = quench::resolveCPUTarget("nosuchcpu", "", "x86_64-unknown-linux-gnu");
  ASSERT_FALSE(bool(cpu));
  EXPECT_EQ(errorText(cpu.takeError()),
            "unknown CPU 'nosuchcpu' for target 'x86_64-unknown-linux-gnu'");

  auto feat = quench::resolveCPUTarget("x86-64", "+notafeature",
                                       "x86_64-unknown-linux-gnu");
  ASSERT_FALSE(bool(feat));
  EXPECT_EQ(errorText(feat.takeError()),
            "unknown CPU feature 'notafeature' for target "
            "'x86_64-unknown-linux-gnu'");

  auto malformed = quench::resolveCPUTarget("x86-64", "avx2",
                                            "x86_64-unknown-linux-gnu");
  ASSERT_FALSE(bool(malformed));
  EXPECT_EQ(errorText(malformed.takeError()),
            "malformed CPU feature 'avx2' (expected +name or -name)");

  auto triple = quench::resolveCPUTarget("x86-64", "", "nosuch-arch-none");
  ASSERT_FALSE(bool(triple));
  EXPECT_NE(errorText(triple.takeError()).find("unknown target triple"),
            std::string::npos);

  auto cross = quench::resolveCPUTarget("host", "", "aarch64-unknown-linux-gnu");
  ASSERT_FALSE(bool(cross));
  EXPECT_NE(errorText(cross.takeError()).find("--cpu=host"), std::string::npos);
}

/// Builds `int64_t sum_weights(int64_t n)`: the sum of the first n bytes of
/// the weight `__quench_w0` (a declaration, as extractWeights leaves it), as
/// signed bytes.
std::unique_ptr<Module> makeModule(LLVMContext &ctx, uint64_t bytes) {
  auto m = std::make_unique<Module>("weights", ctx);
  auto *gv = new GlobalVariable(
      *m, ArrayType::get(Type::getInt8Ty(ctx), bytes), /*isConstant=*/true,
      GlobalValue::ExternalLinkage, nullptr, "__quench_w0");
  IRBuilder<> b(ctx);
  Type *i64 = b.getInt64Ty();
  Function *f = Function::Create(FunctionType::get(i64, {i64}, false),
                                 GlobalValue::ExternalLinkage, "sum_weights",
                                 *m);
  BasicBlock *entry = BasicBlock::Create(ctx, "entry", f);
  BasicBlock *loop = BasicBlock::Create(ctx, "loop", f);
  BasicBlock *exit = BasicBlock::Create(ctx, "exit", f);
  b.SetInsertPoint(entry);
  Value *n = f->getArg(0);
  b.CreateCondBr(b.CreateICmpSGT(n, b.getInt64(0)), loop, exit);
  b.SetInsertPoint(loop);
  PHINode *i = b.CreatePHI(i64, 2);
  PHINode *acc = b.CreatePHI(i64, 2);
  Value *p = b.CreateGEP(b.getInt8Ty(), gv, i);
  Value *v = b.CreateSExt(b.CreateLoad(b.getInt8Ty(), p), i64);
  Value *acc2 = b.CreateAdd(acc, v);
  Value *i2 = b.CreateAdd(i, b.getInt64(1));
  i->addIncoming(b.getInt64(0), entry);
  i->addIncoming(i2, loop);
  acc->addIncoming(b.getInt64(0), entry);
  acc->addIncoming(acc2, loop);
  b.CreateCondBr(b.CreateICmpSLT(i2, n), loop, exit);
  b.SetInsertPoint(exit);
  PHINode *r = b.CreatePHI(i64, 2);
  r->addIncoming(b.getInt64(0), entry);
  r->addIncoming(acc2, loop);
  b.CreateRet(r);
  return m;
}

/// Blob size for the object test; QUENCH_TARGET_TEST_BLOB_MB overrides it to
/// measure emission at scale by hand (e.g. 400 for a 100M-parameter model).
size_t blobBytes() {
  if (const char *mb = getenv("QUENCH_TARGET_TEST_BLOB_MB"))
    return (size_t)atol(mb) << 20;
  return 8 << 20;
}

TEST(CPUTarget, ModelDescriptorHoldsImagesOfFourGigabytesAndMore) {
  // The descriptor's weights_size is 64-bit: an image of 4.4 GB (a 1.1B
  // model in fp32) is not truncated to 32 bits.
  LLVMContext ctx;
  Module m("d", ctx);
  m.setDataLayout("e-m:e-i64:64-n8:16:32:64-S128");
  Function::Create(FunctionType::get(Type::getVoidTy(ctx), false),
                   GlobalValue::ExternalLinkage, "graph", m)
      ->setLinkage(GlobalValue::ExternalLinkage);
  Function *graph = m.getFunction("graph");
  IRBuilder<> b(BasicBlock::Create(ctx, "entry", graph));
  b.CreateRetVoid();
  const uint64_t bytes = 4'400'193'536ull;
  auto *image = new GlobalVariable(
      m, ArrayType::get(Type::getInt8Ty(ctx), bytes), /*isConstant=*/false,
      GlobalValue::ExternalLinkage, nullptr, quench::kWeightImageSymbol);
  quench::ModelSignature sig;
  sig.modelName = "d";
  Error e = quench::addModelABI(m, sig, "graph", /*withMain=*/false, image,
                                quench::WeightStorage::Appended);
  ASSERT_FALSE(bool(e)) << errorText(std::move(e));
  auto *init = cast<ConstantStruct>(m.getGlobalVariable("d_model")->getInitializer());
  EXPECT_EQ(cast<ConstantInt>(init->getOperand(0))->getZExtValue(), 5u)
      << "QUENCH_MODEL_ABI_VERSION";
  EXPECT_EQ(cast<ConstantInt>(init->getOperand(3))->getZExtValue(), 2u)
      << "QUENCH_WEIGHTS_APPENDED";
  EXPECT_EQ(init->getOperand(8), image);
  EXPECT_EQ(cast<ConstantInt>(init->getOperand(9))->getZExtValue(), bytes);
  // Not a generation model: no generation roles.
  EXPECT_TRUE(isa<ConstantPointerNull>(init->getOperand(10)));
  // No metadata: NULL, size 0.
  EXPECT_TRUE(isa<ConstantPointerNull>(init->getOperand(11)));
  EXPECT_EQ(cast<ConstantInt>(init->getOperand(12))->getZExtValue(), 0u);
  // No allocations: no buffer size table.
  EXPECT_TRUE(isa<ConstantPointerNull>(init->getOperand(13)));
  EXPECT_EQ(cast<ConstantInt>(init->getOperand(14))->getZExtValue(), 0u);
}

TEST(CPUTarget, ModelABIBufferSizes) {
  // Allocation calls as MLIR's memref lowering emits them: the size of a
  // static buffer is ptrtoint(getelementptr(null, n)) plus the alignment;
  // a run-time size and an alignment beyond 64 bytes stay out of the table.
  LLVMContext ctx;
  Module m("d", ctx);
  m.setDataLayout("e-m:e-i64:64-n8:16:32:64-S128");
  auto *i64 = Type::getInt64Ty(ctx);
  auto *ptr = PointerType::getUnqual(ctx);
  FunctionCallee alloc = m.getOrInsertFunction(
      "_mlir_memref_to_llvm_alloc", FunctionType::get(ptr, {i64}, false));
  FunctionCallee alignedAlloc = m.getOrInsertFunction(
      "_mlir_memref_to_llvm_aligned_alloc",
      FunctionType::get(ptr, {i64, i64}, false));
  Function *graph = Function::Create(
      FunctionType::get(Type::getVoidTy(ctx), {i64}, false),
      GlobalValue::ExternalLinkage, "graph", m);
  IRBuilder<NoFolder> b(BasicBlock::Create(ctx, "entry", graph));
  Value *end = b.CreateGEP(Type::getFloatTy(ctx),
                           ConstantPointerNull::get(ptr), b.getInt64(6144));
  Value *bytes = b.CreateAdd(b.CreatePtrToInt(end, i64), b.getInt64(64));
  b.CreateCall(alloc, {bytes});                          // 24640
  b.CreateCall(alloc, {b.getInt64(72)});                 // 72
  b.CreateCall(alloc, {graph->getArg(0)});               // run time: out
  b.CreateCall(alignedAlloc, {b.getInt64(64), b.getInt64(4096)}); // 4096
  b.CreateCall(alignedAlloc, {b.getInt64(128), b.getInt64(512)}); // out
  b.CreateRetVoid();
  std::vector<uint64_t> want = {24640, 72, 4096};
  EXPECT_EQ(quench::collectStaticBufferSizes(m), want);

  quench::ModelSignature sig;
  sig.modelName = "d";
  sig.inputs.push_back({"n", 11, {}});
  Error e = quench::addModelABI(m, sig, "graph", /*withMain=*/false);
  ASSERT_FALSE(bool(e)) << errorText(std::move(e));
  auto *init =
      cast<ConstantStruct>(m.getGlobalVariable("d_model")->getInitializer());
  auto *table = cast<GlobalVariable>(init->getOperand(13));
  auto *data = cast<ConstantDataArray>(table->getInitializer());
  ASSERT_EQ(data->getNumElements(), want.size());
  for (unsigned i = 0; i < want.size(); ++i)
    EXPECT_EQ(data->getElementAsInteger(i), want[i]);
  EXPECT_EQ(cast<ConstantInt>(init->getOperand(14))->getZExtValue(),
            want.size());
}

TEST(CPUTarget, ModelABIMetadata) {
  LLVMContext ctx;
  Module m("d", ctx);
  m.setDataLayout("e-m:e-i64:64-n8:16:32:64-S128");
  Function *graph =
      Function::Create(FunctionType::get(Type::getVoidTy(ctx), false),
                       GlobalValue::ExternalLinkage, "graph", m);
  IRBuilder<> b(BasicBlock::Create(ctx, "entry", graph));
  b.CreateRetVoid();
  quench::ModelSignature sig;
  sig.modelName = "d";
  sig.metadata = R"({"tokenizer.ggml.tokens": ["a", "b"]})";
  Error e = quench::addModelABI(m, sig, "graph", /*withMain=*/false);
  ASSERT_FALSE(bool(e)) << errorText(std::move(e));
  auto *init =
      cast<ConstantStruct>(m.getGlobalVariable("d_model")->getInitializer());
  auto *str = cast<GlobalVariable>(init->getOperand(11));
  EXPECT_EQ(cast<ConstantDataArray>(str->getInitializer())->getAsCString(),
            sig.metadata);
  EXPECT_EQ(cast<ConstantInt>(init->getOperand(12))->getZExtValue(),
            sig.metadata.size());
  EXPECT_NE(quench::generateHeader(sig, "m.gguf").find(
                "quench_model_metadata(&d_model"),
            std::string::npos);
}

TEST(CPUTarget, WeightImageObjectLinksAndRuns) {
  // 8 MiB of weights (a weight image with one entry at offset 128), emitted
  // as zero fill and written into the object afterwards, readable by the
  // generated code. QUENCH_TARGET_TEST_BLOB_MB=3000 checks by hand that
  // images beyond the small code model's 2 GB reach work.
  std::vector<char> blob(blobBytes());
  for (size_t k = 0; k < blob.size(); ++k)
    blob[k] = (char)((k * 7 + 3) % 251 - 125);
  int64_t want = 0;
  for (char c : blob)
    want += (signed char)c;
  quench::WeightTable table;
  table.entries.push_back({"__quench_w0", blob, 128});
  table.size = alignTo(128 + blob.size(), quench::WeightTable::kImageAlignment);

  LLVMContext ctx;
  std::unique_ptr<Module> m = makeModule(ctx, blob.size());
  auto target = quench::resolveCPUTarget("host");
  ASSERT_TRUE(bool(target)) << errorText(target.takeError());
  auto tm = quench::createTargetMachine(*target);
  ASSERT_TRUE(bool(tm)) << errorText(tm.takeError());
  m->setDataLayout((*tm)->createDataLayout());
  GlobalVariable *image = quench::declareWeightImage(
      *m, table, quench::WeightStorage::Embedded);
  ASSERT_NE(image, nullptr);
  EXPECT_TRUE(image->isDeclaration());
  EXPECT_EQ(m->getGlobalVariable("__quench_w0"), nullptr);
  quench::optimizeModule(*m, **tm, 2);
  quench::defineWeightImage(*m);
  EXPECT_FALSE(image->isDeclaration());
  EXPECT_TRUE(image->isExternallyInitialized());

  SmallString<128> dir;
  ASSERT_FALSE(sys::fs::createUniqueDirectory("quench-target-test", dir));
  std::string obj = (dir + "/w.o").str(), so = (dir + "/w.so").str();
  {
    std::error_code ec;
    raw_fd_ostream os(obj, ec);
    ASSERT_FALSE(ec) << ec.message();
    Error e = quench::emitObjectFile(*m, **tm, os);
    ASSERT_FALSE(bool(e)) << errorText(std::move(e));
  }
  m.reset();
  Error written = quench::writeWeightSection(obj, table);
  ASSERT_FALSE(bool(written)) << errorText(std::move(written));

  // The object holds the image once, in a read-only section, page aligned.
  auto buf = MemoryBuffer::getFile(obj);
  ASSERT_TRUE(bool(buf));
  auto file = object::ObjectFile::createObjectFile((*buf)->getMemBufferRef());
  ASSERT_TRUE(bool(file)) << errorText(file.takeError());
  bool found = false;
  for (const object::SectionRef &sec : (*file)->sections()) {
    Expected<StringRef> name = sec.getName();
    if (!name || *name != quench::kWeightSectionName)
      continue;
    found = true;
    EXPECT_FALSE(sec.isText());
    EXPECT_EQ(sec.getSize(), table.size);
    EXPECT_GE(sec.getAlignment().value(), 4096u);
    Expected<StringRef> contents = sec.getContents();
    ASSERT_TRUE(bool(contents));
    EXPECT_EQ(contents->substr(128, blob.size()),
              StringRef(blob.data(), blob.size()));
  }
  EXPECT_TRUE(found);
  EXPECT_LT((*buf)->getBufferSize(), table.size + (1 << 20));

  // A table that does not match the section is refused.
  quench::WeightTable other = table;
  other.size += 4096;
  Error mismatch = quench::writeWeightSection(obj, other);
  ASSERT_TRUE(bool(mismatch));
  EXPECT_NE(errorText(std::move(mismatch)).find("has no section"),
            std::string::npos);

  // Link it with the system toolchain and run it on this host (code for the
  // host's real features must not trap).
  auto cc = sys::findProgramByName("cc");
  if (!cc)
    GTEST_SKIP() << "no system C compiler to link with";
  std::string err;
  int rc = sys::ExecuteAndWait(*cc, {*cc, "-shared", "-o", so, obj},
                               std::nullopt, {}, 0, 0, &err);
  ASSERT_EQ(rc, 0) << err;
  void *h = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  auto fn = (int64_t(*)(int64_t))dlsym(h, "sum_weights");
  ASSERT_NE(fn, nullptr);
  EXPECT_EQ(fn((int64_t)blob.size()), want);
  EXPECT_EQ(fn(3), (int64_t)(signed char)blob[0] + (signed char)blob[1] +
                       (signed char)blob[2]);
  dlclose(h);
  sys::fs::remove_directories(dir);
}

} // namespace
