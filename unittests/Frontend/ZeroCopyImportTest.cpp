// The ONNX importer holds each weight once (lib/Frontend/ONNX): a large
// external initializer's blob is the data file's mapping itself (its address
// lies in a mapping of that file, per /proc/self/maps), a large inline one
// keeps the protobuf's bytes, and both read back the model's values, also
// after their pages are released.
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Frontend/ONNX/ONNXImporter.h"
#include "quench/InitAllDialects.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "onnx/onnx_pb.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace mlir;

namespace {

std::vector<float> values(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = float(i % 1000) * scale;
  return v;
}

void addInitializer(onnx::GraphProto &g, const std::string &name,
                    std::vector<int64_t> dims) {
  onnx::TensorProto *t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims)
    t->add_dims(d);
}

void addValueInfo(onnx::ValueInfoProto *vi, const std::string &name,
                  std::vector<int64_t> dims) {
  vi->set_name(name);
  auto *tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims)
    tt->mutable_shape()->add_dim()->set_dim_value(d);
}

/// The path of the file mapped at `p` in this process ("" if none).
std::string mappedFileAt(const void *p) {
  auto buf = llvm::MemoryBuffer::getFileAsStream("/proc/self/maps");
  if (!buf)
    return "";
  llvm::SmallVector<llvm::StringRef> lines;
  (*buf)->getBuffer().split(lines, '\n');
  for (llvm::StringRef line : lines) {
    auto [range, rest] = line.split(' ');
    auto [lo, hi] = range.split('-');
    uint64_t a, b;
    if (lo.getAsInteger(16, a) || hi.getAsInteger(16, b))
      continue;
    if ((uint64_t)(uintptr_t)p < a || (uint64_t)(uintptr_t)p >= b)
      continue;
    // address perms offset dev inode path
    llvm::SmallVector<llvm::StringRef> fields;
    rest.split(fields, ' ', -1, /*KeepEmpty=*/false);
    return fields.size() >= 5 ? fields[4].str() : "";
  }
  return "";
}

ArrayRef<char> blobOf(ModuleOp module, StringRef nameLoc) {
  ArrayRef<char> found;
  module.walk([&](quench::ConstantOp cst) {
    auto loc = dyn_cast<NameLoc>(cst.getLoc());
    if (!loc || loc.getName() != nameLoc)
      return;
    if (auto res = dyn_cast<DenseResourceElementsAttr>(cst.getValue()))
      if (const AsmResourceBlob *blob = res.getRawHandle().getBlob())
        found = blob->getData();
  });
  return found;
}

TEST(ZeroCopyImport, ExternalAndInlineWeightsAreNotCopied) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("quench-import", dir));
  std::string dataPath = (dir + "/weights.bin").str();
  std::string modelPath = (dir + "/model.onnx").str();

  const int64_t k = 256, n = 256, m = 128;
  std::vector<float> ext = values(k * n, 0.25f), inl = values(n * m, -1.0f);
  {
    std::ofstream f(dataPath, std::ios::binary);
    f.write(reinterpret_cast<const char *>(ext.data()), ext.size() * 4);
  }
  onnx::ModelProto model;
  model.set_ir_version(8);
  auto *opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(17);
  onnx::GraphProto &g = *model.mutable_graph();
  g.set_name("g");
  addInitializer(g, "W_ext", {k, n});
  onnx::TensorProto &we = *g.mutable_initializer(0);
  we.set_data_location(onnx::TensorProto::EXTERNAL);
  for (auto [key, value] :
       {std::pair<std::string, std::string>{"location", "weights.bin"},
        {"offset", "0"},
        {"length", std::to_string(ext.size() * 4)}}) {
    auto *e = we.add_external_data();
    e->set_key(key);
    e->set_value(value);
  }
  addInitializer(g, "W_inline", {n, m});
  g.mutable_initializer(1)->set_raw_data(
      std::string(reinterpret_cast<const char *>(inl.data()), inl.size() * 4));
  auto *mm1 = g.add_node();
  mm1->set_op_type("MatMul");
  mm1->add_input("X");
  mm1->add_input("W_ext");
  mm1->add_output("H");
  auto *mm2 = g.add_node();
  mm2->set_op_type("MatMul");
  mm2->add_input("H");
  mm2->add_input("W_inline");
  mm2->add_output("Y");
  addValueInfo(g.add_input(), "X", {1, k});
  addValueInfo(g.add_output(), "Y", {1, m});
  {
    std::ofstream f(modelPath, std::ios::binary);
    ASSERT_TRUE(model.SerializeToOstream(&f));
  }

  DialectRegistry registry;
  quench::registerAllDialects(registry);
  MLIRContext ctx(registry);
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });
  OwningOpRef<ModuleOp> module = quench::importONNXFile(modelPath, &ctx);
  ASSERT_TRUE(module) << diagnostics;

  ArrayRef<char> e = blobOf(*module, "W_ext");
  ASSERT_EQ(e.size(), ext.size() * 4);
  std::string file = mappedFileAt(e.data());
  EXPECT_TRUE(llvm::StringRef(file).ends_with("/weights.bin"))
      << "the blob lies in '" << file << "', not in the data file's mapping";
  EXPECT_EQ(std::memcmp(e.data(), ext.data(), e.size()), 0);

  ArrayRef<char> i = blobOf(*module, "W_inline");
  ASSERT_EQ(i.size(), inl.size() * 4);
  EXPECT_EQ(std::memcmp(i.data(), inl.data(), i.size()), 0);

  // Released pages read back the file's bytes.
  module->walk([](quench::ConstantOp cst) {
    quench::releaseConstantPages(cst.getValue());
  });
  EXPECT_EQ(std::memcmp(e.data(), ext.data(), e.size()), 0);
  EXPECT_EQ(std::memcmp(i.data(), inl.data(), i.size()), 0);

  module = nullptr;
  llvm::sys::fs::remove_directories(dir);
}

} // namespace
