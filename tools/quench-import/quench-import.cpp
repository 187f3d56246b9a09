//===- quench-import.cpp - ONNX to quench MLIR ----------------------------===//
//
// quench-import model.onnx -o model.mlir [--shape NAME=1x32] [--elide-weights]
//
// Writes the output atomically (temporary file + rename): on any error the
// output path is left untouched and the exit code is nonzero.
//
//===----------------------------------------------------------------------===//

#include "quench/Frontend/GGUF/GGUFImporter.h"
#include "quench/Frontend/ONNX/ONNXImporter.h"
#include "quench/Support/FileUtils.h"
#include "quench/Support/OutOfMemory.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"
#include "mlir/IR/Diagnostics.h"

using namespace llvm;

static cl::OptionCategory category("quench-import options");
static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"),
                                      cl::cat(category));
static cl::opt<bool> listOps("list-supported-ops",
                             cl::desc("Print the supported ONNX operators "
                                      "(domain:op_type per line) and exit"),
                             cl::cat(category));
static cl::opt<std::string> outputPath("o", cl::desc("Output file ('-' for stdout)"),
                                       cl::value_desc("file"), cl::init("-"),
                                       cl::cat(category));
static cl::list<std::string>
    shapes("shape",
           cl::desc("Specialize an input's shape, e.g. --shape input_ids=1x32 "
                    "(repeatable)"),
           cl::value_desc("NAME=DxD..."), cl::cat(category));
static cl::opt<uint64_t> maxTensorBytes(
    "max-tensor-bytes",
    cl::desc("Largest statically shaped tensor the model may declare, in "
             "bytes (default 2^36 = 64 GiB)"),
    cl::init(quench::ONNXImportOptions::kDefaultMaxTensorBytes),
    cl::cat(category));
static cl::opt<bool> emitBytecode(
    "emit-bytecode",
    cl::desc("Write MLIR bytecode instead of text (implied by an output "
             "name ending in .mlirbc): weights are stored as raw bytes, half "
             "the size of the textual hex form and much faster to write and "
             "read back; use it for large models"),
    cl::cat(category));
static cl::opt<bool> elideWeights(
    "elide-weights",
    cl::desc("Omit weight data from the output (for reading the IR; the "
             "result cannot be compiled)"),
    cl::cat(category));
static cl::opt<std::string> funcName("func-name",
                                     cl::desc("Name of the generated function"),
                                     cl::init("main"), cl::cat(category));

int main(int argc, char **argv) {
  InitLLVM y(argc, argv);
  quench::installOutOfMemoryHandler("quench-import");
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "quench-import: import an ONNX model (binary or textual) or a GGUF "
      "model into the quench dialect\n");

  if (listOps) {
    for (const auto &[domain, op] : quench::getSupportedONNXOps())
      outs() << domain << ":" << op << "\n";
    return 0;
  }
  if (inputPath.empty()) {
    WithColor::error(errs(), "quench-import")
        << "no input model given (see --help)\n";
    return 1;
  }

  quench::ONNXImportOptions options;
  options.functionName = funcName;
  options.maxTensorBytes = maxTensorBytes;
  for (const std::string &s : shapes)
    if (std::string err = quench::parseShapeOverride(s, options); !err.empty()) {
      WithColor::error(errs(), "quench-import") << err << "\n";
      return 1;
    }

  mlir::MLIRContext context;
  context.printOpOnDiagnostic(false);
  // Messages name the file and node themselves: print them plainly.
  context.getDiagEngine().registerHandler([](mlir::Diagnostic &diag) {
    auto &os = diag.getSeverity() == mlir::DiagnosticSeverity::Error
                   ? WithColor::error(errs(), "quench-import")
                   : WithColor::warning(errs(), "quench-import");
    os << diag.str() << "\n";
    for (const mlir::Diagnostic &note : diag.getNotes())
      WithColor::note(errs(), "quench-import") << note.str() << "\n";
    return mlir::success();
  });
  uint64_t inputBytes = 0;
  if (!sys::fs::file_size(inputPath, inputBytes))
    quench::setModelWeights({inputBytes, inputBytes, 0});
  quench::setCurrentStage("import");
  bool gguf = StringRef(inputPath).ends_with(".gguf") ||
              quench::isGGUFFile(inputPath);
  if (gguf && !shapes.empty()) {
    WithColor::error(errs(), "quench-import")
        << "--shape applies to ONNX models only\n";
    return 1;
  }
  if (gguf && funcName != "main") {
    WithColor::error(errs(), "quench-import")
        << "--func-name applies to ONNX models only\n";
    return 1;
  }
  mlir::OwningOpRef<mlir::ModuleOp> module =
      gguf ? quench::importGGUFFile(inputPath, &context)
           : quench::importONNXFile(inputPath, &context, options);
  if (!module)
    return 1;
  quench::setCurrentStage("write");

  mlir::OpPrintingFlags flags;
  if (elideWeights)
    flags.elideLargeElementsAttrs(16).elideLargeResourceString(16);
  std::string err = quench::writeFileAtomically(
      outputPath, [&](llvm::raw_ostream &os) {
        if (emitBytecode || StringRef(outputPath).ends_with(".mlirbc")) {
          mlir::BytecodeWriterConfig config("quench-import");
          return mlir::succeeded(mlir::writeBytecodeToFile(*module, os, config));
        }
        module->print(os, flags);
        return true;
      });
  if (!err.empty()) {
    WithColor::error(errs(), "quench-import") << err << "\n";
    return 1;
  }
  return 0;
}
