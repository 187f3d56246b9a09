//===- ModelABI.cpp - the C ABI of compiled models ------------------------===//
//
// The object-side half of the model ABI whose C-side half is quench_model /
// quench_model_run in the runtime. The two must agree on layouts:
//   quench_io_info = { ptr name, i32 dtype, i32 rank, ptr shape }   (24 B)
//   quench_model   = { i32 abi, i32 nin, i32 nout, i32 weights_storage,
//                      ptr name, ptr inputs, ptr outputs, ptr entry,
//                      ptr weights, i64 weights_size,
//                      ptr generation, ptr metadata,
//                      i64 metadata_size, ptr buffer_sizes,
//                      i64 num_buffer_sizes }                       (104 B)
//   quench_generation_info = { i32 input_ids, i32 attention_mask,
//                      i32 position_ids, i32 past_length, i32 logits,
//                      i32 num_state, ptr state, i64 capacity }    (40 B)
// and the runtime static_asserts those sizes.
//
//===----------------------------------------------------------------------===//

#include "quench/Target/CPU/ModelABI.h"

#include "quench/Dialect/Quench/IR/ModuleAttrs.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Support/MappedFile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Analysis/ConstantFolding.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/InstIterator.h"
#include "llvm/IR/Module.h"
#include "llvm/Object/ArchiveWriter.h"
#include "llvm/Support/Path.h"

using namespace llvm;

namespace {
// Values of quench_dtype (runtime.h); part of the ABI.
enum DType {
  F32 = 1, F16 = 2, BF16 = 3, F64 = 4, I8 = 5, U8 = 6, I16 = 7, U16 = 8,
  I32 = 9, U32 = 10, I64 = 11, U64 = 12, Bool = 13
};
constexpr unsigned kModelABIVersion = 5;
// QUENCH_TENSOR_ALIGNMENT (runtime.h): the alignment the buffer cache keeps.
constexpr uint64_t kTensorAlignment = 64;
// Values of quench_weight_storage (runtime.h); part of the ABI.
enum WeightStorageKind { WeightsNone = 0, WeightsEmbedded = 1, WeightsAppended = 2 };
constexpr int kMaxRank = 8;
} // namespace

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

static StringRef dtypeName(int dtype) {
  static const char *names[] = {"invalid", "f32", "f16", "bf16", "f64",
                                "i8",      "u8",  "i16", "u16",  "i32",
                                "u32",     "i64", "u64", "bool"};
  return dtype >= 0 && dtype <= Bool ? names[dtype] : "invalid";
}

std::string quench::TensorSignature::typeString() const {
  std::string s = dtypeName(dtype).str() + "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += ", ";
    s += shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return s + "]";
}

static const StringSet<> &cKeywords() {
  static const StringSet<> kw = {
      "auto",     "break",    "case",     "char",   "const",    "continue",
      "default",  "do",       "double",   "else",   "enum",     "extern",
      "float",    "for",      "goto",     "if",     "inline",   "int",
      "long",     "register", "restrict", "return", "short",    "signed",
      "sizeof",   "static",   "struct",   "switch", "typedef",  "union",
      "unsigned", "void",     "volatile", "while",  "main",     "bool",
      "true",     "false"};
  return kw;
}

bool quench::isValidModelName(StringRef name) {
  if (name.empty() || name.size() > 64 || isDigit(name.front()))
    return false;
  if (!llvm::all_of(name, [](char c) { return isAlnum(c) || c == '_'; }))
    return false;
  // Reserved for the runtime's own symbols.
  if (name.starts_with("quench_") || name == "quench")
    return false;
  return !cKeywords().contains(name);
}

std::string quench::modelNameFromPath(StringRef path) {
  StringRef stem = sys::path::stem(path);
  if (stem.starts_with("lib") && stem.size() > 3)
    stem = stem.drop_front(3);
  std::string name;
  for (char c : stem)
    name.push_back(isAlnum(c) || c == '_' ? c : '_');
  if (name.empty() || isDigit(name.front()))
    name.insert(name.begin(), '_');
  return name;
}

/// The runtime dtype of an MLIR element type, or 0.
static int dtypeOf(mlir::Type type) {
  if (type.isF32())
    return F32;
  if (type.isF16())
    return F16;
  if (type.isBF16())
    return BF16;
  if (type.isF64())
    return F64;
  if (auto it = dyn_cast<mlir::IntegerType>(type)) {
    bool isUnsigned = it.isUnsigned();
    switch (it.getWidth()) {
    case 1:
      return it.isSignless() ? Bool : 0;
    case 8:
      return isUnsigned ? U8 : I8;
    case 16:
      return isUnsigned ? U16 : I16;
    case 32:
      return isUnsigned ? U32 : I32;
    case 64:
      return isUnsigned ? U64 : I64;
    default:
      return 0;
    }
  }
  return 0;
}

static Expected<quench::TensorSignature>
signatureOf(mlir::Type type, mlir::StringAttr nameAttr, StringRef kind,
            unsigned index) {
  quench::TensorSignature sig;
  sig.name = nameAttr ? nameAttr.getValue().str()
                      : (kind + "_" + Twine(index)).str();
  // Memrefs are buffers a model updates in place (KV caches): the same C
  // description as a tensor.
  auto tensor = dyn_cast<mlir::RankedTensorType>(type);
  if (auto memref = dyn_cast<mlir::MemRefType>(type);
      memref && memref.getLayout().isIdentity())
    tensor = mlir::RankedTensorType::get(memref.getShape(),
                                         memref.getElementType());
  std::string typeStr;
  raw_string_ostream os(typeStr);
  type.print(os);
  if (!tensor)
    return makeError(kind + " '" + sig.name + "' has type " + typeStr +
                     ": compiled models take and return ranked tensors");
  if (tensor.getRank() > kMaxRank)
    return makeError(kind + " '" + sig.name + "' has rank " +
                     Twine(tensor.getRank()) + "; the C ABI supports up to " +
                     Twine(kMaxRank));
  sig.dtype = dtypeOf(tensor.getElementType());
  if (!sig.dtype)
    return makeError(kind + " '" + sig.name + "' has type " + typeStr +
                     ", whose element type has no C ABI dtype (supported: "
                     "f32 f16 bf16 f64 i8/ui8 i16/ui16 i32/ui32 i64/ui64 i1)");
  for (int64_t d : tensor.getShape())
    sig.shape.push_back(mlir::ShapedType::isDynamic(d) ? -1 : d);
  return sig;
}

Expected<quench::ModelSignature>
quench::getModelSignature(mlir::func::FuncOp func, StringRef modelName) {
  ModelSignature sig;
  sig.modelName = modelName.str();
  mlir::FunctionType type = func.getFunctionType();
  StringSet<> seen;
  for (unsigned i = 0; i < type.getNumInputs(); ++i) {
    auto s = signatureOf(type.getInput(i),
                         func.getArgAttrOfType<mlir::StringAttr>(
                             i, quench::QuenchDialect::getNameAttrName()),
                         "input", i);
    if (!s)
      return s.takeError();
    if (!seen.insert(s->name).second)
      return makeError("two inputs are named '" + s->name + "'");
    sig.inputs.push_back(std::move(*s));
  }
  seen.clear();
  for (unsigned i = 0; i < type.getNumResults(); ++i) {
    auto s = signatureOf(type.getResult(i),
                         func.getResultAttrOfType<mlir::StringAttr>(
                             i, quench::QuenchDialect::getNameAttrName()),
                         "output", i);
    if (!s)
      return s.takeError();
    if (!seen.insert(s->name).second)
      return makeError("two outputs are named '" + s->name + "'");
    sig.outputs.push_back(std::move(*s));
  }
  if (auto roles = func->getAttrOfType<mlir::DictionaryAttr>(
          "quench.generation")) {
    GenerationSignature gen;
    auto find = [](ArrayRef<TensorSignature> ts, StringRef name) {
      for (auto [i, t] : llvm::enumerate(ts))
        if (t.name == name)
          return static_cast<int>(i);
      return -1;
    };
    auto role = [&](StringRef key, ArrayRef<TensorSignature> ts) {
      auto name = roles.getAs<mlir::StringAttr>(key);
      return name ? find(ts, name.getValue()) : -1;
    };
    gen.inputIds = role("input_ids", sig.inputs);
    gen.attentionMask = role("attention_mask", sig.inputs);
    gen.positionIds = role("position_ids", sig.inputs);
    gen.pastLength = role("past_length", sig.inputs);
    gen.logits = role("logits", sig.outputs);
    if (auto capacity = roles.getAs<mlir::IntegerAttr>("capacity"))
      gen.capacity = capacity.getInt();
    if (auto state = roles.getAs<mlir::ArrayAttr>("state"))
      for (auto name : state.getAsRange<mlir::StringAttr>())
        gen.state.push_back(find(sig.inputs, name.getValue()));
    if (gen.inputIds < 0 || gen.pastLength < 0 || gen.logits < 0 ||
        gen.state.empty() || llvm::is_contained(gen.state, -1) ||
        gen.capacity <= 0)
      return makeError("the function's quench.generation roles do not name "
                       "its inputs and outputs");
    sig.generation = std::move(gen);
  }
  return sig;
}

Error quench::applyKVCacheToEntry(mlir::ModuleOp module, ModelEntry &entry,
                                  const QuenchKVCacheOptions &options,
                                  bool required, StringRef unsupportedTarget,
                                  bool derive) {
  auto func = module.lookupSymbol<mlir::func::FuncOp>(entry.graphFunc);
  if (!func)
    return makeError("the module has no function '" + entry.graphFunc + "'");
  mlir::MLIRContext *ctx = module.getContext();
  StringRef nameAttr = quench::QuenchDialect::getNameAttrName();
  // The pass reads the names from the function, where prepareModelEntry
  // took them off.
  for (auto [i, t] : llvm::enumerate(entry.signature.inputs))
    func.setArgAttr(i, nameAttr, mlir::StringAttr::get(ctx, t.name));
  for (auto [i, t] : llvm::enumerate(entry.signature.outputs))
    func.setResultAttr(i, nameAttr, mlir::StringAttr::get(ctx, t.name));
  auto stripNames = [&] {
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      func.removeArgAttr(i, nameAttr);
    for (unsigned i = 0; i < func.getNumResults(); ++i)
      func.removeResultAttr(i, mlir::StringAttr::get(ctx, nameAttr));
    func->removeAttr("quench.generation");
  };
  QuenchKVCacheOptions kvOptions = options;
  if (derive) {
    if (!unsupportedTarget.empty()) {
      stripNames();
      return makeError("--derive-kv-cache: the " + unsupportedTarget +
                       " target does not run generation models with a KV "
                       "cache yet");
    }
    std::string tokens;
    if (failed(quench::applyDeriveKVCache(func, options, tokens))) {
      stripNames();
      return makeError("cannot derive a KV cache from the model exported "
                       "without past (see above)");
    }
    kvOptions.inputIds = tokens;
  }
  if (!derive && !required && !quench::hasPastInputs(func, options.past)) {
    stripNames();
    return Error::success();
  }
  if (!unsupportedTarget.empty()) {
    stripNames();
    return makeError("the model has past key/value inputs, and the " +
                     unsupportedTarget +
                     " target does not run generation models with a KV "
                     "cache yet: compile with --kv-cache=none to run the "
                     "graph as it is");
  }
  if (failed(quench::applyKVCache(func, kvOptions)))
    return makeError("cannot keep the past keys/values in a cache (see "
                     "above; --kv-cache=none compiles the graph as it is)");
  auto sig = getModelSignature(func, entry.signature.modelName);
  stripNames();
  if (!sig)
    return sig.takeError();
  sig->metadata = std::move(entry.signature.metadata);
  entry.signature = std::move(*sig);
  return Error::success();
}

Expected<std::string> quench::resolveModelName(StringRef explicitName,
                                               StringRef path) {
  std::string name =
      explicitName.empty() ? modelNameFromPath(path) : explicitName.str();
  if (!isValidModelName(name))
    return makeError("invalid model name '" + name +
                     "': use --name with a C identifier (letters, digits, "
                     "'_'; not a C keyword, not starting with 'quench_')");
  return name;
}

std::string quench::cInterfaceName(StringRef funcName) {
  return ("_mlir_ciface_" + funcName).str();
}

Expected<mlir::func::FuncOp>
quench::findEntryFunction(mlir::ModuleOp module, StringRef entryName) {
  SmallVector<mlir::func::FuncOp> candidates;
  for (auto f : module.getOps<mlir::func::FuncOp>()) {
    if (!entryName.empty() ? f.getSymName() == entryName
                           : (f.isPublic() && !f.isDeclaration()))
      candidates.push_back(f);
  }
  if (candidates.size() == 1 && !candidates.front().isDeclaration())
    return candidates.front();
  if (!entryName.empty())
    return makeError("the module has no function '" + entryName +
                     "' with a body");
  std::string names;
  for (auto f : candidates)
    names += " @" + f.getSymName().str();
  return makeError(candidates.empty()
                       ? Twine("the module has no public function to compile")
                       : Twine("the module has several public functions:") +
                             names + "; choose one with --entry");
}

Expected<quench::ModelEntry>
quench::prepareModelEntry(mlir::ModuleOp module, StringRef entryName,
                          StringRef modelName) {
  auto found = findEntryFunction(module, entryName);
  if (!found)
    return found.takeError();
  mlir::func::FuncOp entry = *found;
  auto sig = getModelSignature(entry, modelName);
  if (!sig)
    return sig.takeError();
  ModelEntry out;
  out.signature = std::move(*sig);
  if (auto metadata =
          module->getAttrOfType<mlir::StringAttr>(
              quench::kModelMetadataAttrName))
    out.signature.metadata = metadata.getValue().str();
  // A private, model-specific name: `main` stays free for executables and
  // the symbol cannot clash with another model's.
  out.graphFunc = modelName.str() + "_graph";
  mlir::MLIRContext *ctx = module.getContext();
  if (module.lookupSymbol(out.graphFunc))
    return makeError("the module already has a symbol '" + out.graphFunc +
                     "'");
  if (failed(mlir::SymbolTable::replaceAllSymbolUses(
          entry, mlir::StringAttr::get(ctx, out.graphFunc), module)))
    return makeError("cannot rename the entry function");
  entry.setSymName(out.graphFunc);
  entry->setAttr("llvm.emit_c_interface", mlir::UnitAttr::get(ctx));
  // The names now live in the signature; LLVM has no use for them.
  for (unsigned i = 0; i < entry.getNumArguments(); ++i)
    entry.removeArgAttr(i, quench::QuenchDialect::getNameAttrName());
  for (unsigned i = 0; i < entry.getNumResults(); ++i)
    entry.removeResultAttr(
        i,
        mlir::StringAttr::get(ctx, quench::QuenchDialect::getNameAttrName()));
  return out;
}

/// An internal constant global holding a NUL-terminated string.
static Constant *stringConstant(Module &m, StringRef s, const Twine &name) {
  Constant *init = ConstantDataArray::getString(m.getContext(), s);
  auto *gv = new GlobalVariable(m, init->getType(), true,
                                GlobalValue::PrivateLinkage, init, name);
  gv->setUnnamedAddr(GlobalValue::UnnamedAddr::Global);
  gv->setAlignment(Align(1));
  return gv;
}

/// The quench_io_info array for `tensors`.
static Constant *ioInfoArray(Module &m, ArrayRef<quench::TensorSignature> tensors,
                             StringRef prefix, StructType *infoTy) {
  LLVMContext &ctx = m.getContext();
  auto *i32 = Type::getInt32Ty(ctx);
  auto *i64 = Type::getInt64Ty(ctx);
  auto *ptr = PointerType::getUnqual(ctx);
  SmallVector<Constant *> infos;
  for (auto [i, t] : llvm::enumerate(tensors)) {
    Constant *shape = ConstantPointerNull::get(ptr);
    if (!t.shape.empty()) {
      SmallVector<uint64_t> dims(t.shape.begin(), t.shape.end());
      Constant *init = ConstantDataArray::get(ctx, dims);
      auto *gv = new GlobalVariable(m, init->getType(), true,
                                    GlobalValue::PrivateLinkage, init,
                                    prefix + "_shape" + Twine(i));
      gv->setAlignment(Align(8));
      shape = gv;
    }
    (void)i64;
    infos.push_back(ConstantStruct::get(
        infoTy, {stringConstant(m, t.name, prefix + "_name" + Twine(i)),
                 ConstantInt::get(i32, t.dtype),
                 ConstantInt::get(i32, t.shape.size()), shape}));
  }
  if (infos.empty())
    return ConstantPointerNull::get(ptr);
  auto *arrTy = ArrayType::get(infoTy, infos.size());
  auto *gv = new GlobalVariable(m, arrTy, true, GlobalValue::PrivateLinkage,
                                ConstantArray::get(arrTy, infos), prefix);
  gv->setAlignment(Align(8));
  return gv;
}

/// `v` folded to a constant, or null: MLIR's memref lowering computes a
/// static buffer size as ptrtoint(getelementptr(null, n)) plus the
/// alignment, which translation may leave as instructions over constants.
static Constant *foldToConstant(Value *v, const DataLayout &dl,
                                unsigned depth = 0) {
  if (auto *c = dyn_cast<Constant>(v))
    return ConstantFoldConstant(c, dl);
  auto *inst = dyn_cast<Instruction>(v);
  if (!inst || depth >= 8 || inst->mayReadOrWriteMemory() ||
      isa<PHINode, CallBase>(inst))
    return nullptr;
  SmallVector<Constant *> operands;
  for (Value *op : inst->operands()) {
    Constant *c = foldToConstant(op, dl, depth + 1);
    if (!c)
      return nullptr;
    operands.push_back(c);
  }
  return ConstantFoldInstOperands(inst, operands, dl);
}

/// The value of `v` if it folds to an integer of at most 64 bits.
static std::optional<uint64_t> foldToInteger(Value *v, const DataLayout &dl) {
  auto *ci = dyn_cast_or_null<ConstantInt>(foldToConstant(v, dl));
  if (!ci || ci->getBitWidth() > 64)
    return std::nullopt;
  return ci->getZExtValue();
}

std::vector<uint64_t> quench::collectStaticBufferSizes(const Module &m) {
  std::vector<uint64_t> sizes;
  const DataLayout &dl = m.getDataLayout();
  for (const Function &f : m.functions())
    for (const Instruction &inst : instructions(f)) {
      auto *call = dyn_cast<CallInst>(&inst);
      Function *callee = call ? call->getCalledFunction() : nullptr;
      if (!callee)
        continue;
      std::optional<uint64_t> size;
      if (callee->getName() == "_mlir_memref_to_llvm_alloc" &&
          call->arg_size() == 1) {
        size = foldToInteger(call->getArgOperand(0), dl);
      } else if (callee->getName() == "_mlir_memref_to_llvm_aligned_alloc" &&
                 call->arg_size() == 2) {
        // Buffers aligned beyond the tensor alignment bypass the cache.
        std::optional<uint64_t> align =
            foldToInteger(call->getArgOperand(0), dl);
        if (align && *align <= kTensorAlignment)
          size = foldToInteger(call->getArgOperand(1), dl);
      }
      if (size)
        sizes.push_back(*size);
    }
  return sizes;
}

Error quench::addModelABI(Module &m, const ModelSignature &sig,
                          StringRef cInterfaceFunc, bool withMain,
                          GlobalVariable *weightImage, WeightStorage storage) {
  LLVMContext &ctx = m.getContext();
  auto *i32 = Type::getInt32Ty(ctx);
  auto *i64 = Type::getInt64Ty(ctx);
  auto *ptr = PointerType::getUnqual(ctx);
  auto *voidTy = Type::getVoidTy(ctx);
  const std::string &name = sig.modelName;
  if (!isValidModelName(name))
    return makeError("invalid model name '" + name + "'");

  Function *graph = m.getFunction(cInterfaceFunc);
  if (!graph || graph->isDeclaration())
    return makeError("the lowered module has no function '" + cInterfaceFunc +
                     "'");
  size_t numArgs = sig.inputs.size() + (sig.outputs.empty() ? 0 : 1);
  if (graph->arg_size() != numArgs)
    return makeError("'" + cInterfaceFunc + "' takes " +
                     Twine(graph->arg_size()) + " arguments, expected " +
                     Twine(numArgs));
  for (StringRef sym : {name + "_model", name + "_run", name + "_entry"})
    if (m.getNamedValue(sym))
      return makeError("the model already defines the symbol '" + sym +
                       "'; choose another --name");

  // Exported symbols; everything else becomes internal.
  StringSet<> exported = {name + "_model", name + "_run"};
  if (withMain)
    exported.insert("main");
  for (Function &f : m.functions())
    if (!f.isDeclaration() && !exported.contains(f.getName()) &&
        !f.getName().starts_with("llvm."))
      f.setLinkage(GlobalValue::InternalLinkage);
  for (GlobalVariable &g : m.globals())
    if (!g.isDeclaration() && !g.getName().starts_with("llvm.") &&
        !exported.contains(g.getName()))
      g.setLinkage(GlobalValue::InternalLinkage);

  // void <name>_entry(void **args): unpacks the argument array into the
  // C-interface wrapper's pointer arguments. Results come first there.
  auto *entry = Function::Create(FunctionType::get(voidTy, {ptr}, false),
                                 GlobalValue::InternalLinkage, name + "_entry",
                                 m);
  {
    IRBuilder<> b(BasicBlock::Create(ctx, "entry", entry));
    Value *args = entry->getArg(0);
    SmallVector<Value *> callArgs;
    auto load = [&](size_t i) {
      Value *slot = b.CreateConstInBoundsGEP1_64(ptr, args, i);
      return b.CreateLoad(ptr, slot);
    };
    if (!sig.outputs.empty())
      callArgs.push_back(load(sig.inputs.size()));
    for (size_t i = 0; i < sig.inputs.size(); ++i)
      callArgs.push_back(load(i));
    b.CreateCall(graph, callArgs);
    b.CreateRetVoid();
  }

  // The buffers one run allocates (read before the descriptor's own code
  // is added; the functions are final: no inlining has run yet).
  std::vector<uint64_t> bufferSizes = collectStaticBufferSizes(m);
  Constant *bufferTable = ConstantPointerNull::get(ptr);
  if (!bufferSizes.empty()) {
    Constant *init = ConstantDataArray::get(ctx, ArrayRef(bufferSizes));
    auto *gv = new GlobalVariable(m, init->getType(), true,
                                  GlobalValue::PrivateLinkage, init,
                                  name + "_buffer_sizes");
    gv->setAlignment(Align(8));
    bufferTable = gv;
  }

  // const quench_model <name>_model.
  auto *infoTy = StructType::get(ctx, {ptr, i32, i32, ptr});
  auto *modelTy = StructType::get(ctx, {i32, i32, i32, i32, ptr, ptr, ptr, ptr,
                                        ptr, i64, ptr, ptr, i64, ptr, i64});
  Constant *generation = ConstantPointerNull::get(ptr);
  if (const std::optional<GenerationSignature> &gen = sig.generation) {
    SmallVector<uint32_t> state(gen->state.begin(), gen->state.end());
    Constant *stateInit = ConstantDataArray::get(ctx, state);
    auto *stateVar = new GlobalVariable(m, stateInit->getType(), true,
                                        GlobalValue::PrivateLinkage, stateInit,
                                        name + "_generation_state");
    stateVar->setAlignment(Align(4));
    auto *genTy =
        StructType::get(ctx, {i32, i32, i32, i32, i32, i32, ptr, i64});
    Constant *genInit = ConstantStruct::get(
        genTy, {ConstantInt::get(i32, gen->inputIds),
                ConstantInt::getSigned(i32, gen->attentionMask),
                ConstantInt::getSigned(i32, gen->positionIds),
                ConstantInt::get(i32, gen->pastLength),
                ConstantInt::get(i32, gen->logits),
                ConstantInt::get(i32, gen->state.size()), stateVar,
                ConstantInt::get(i64, gen->capacity)});
    auto *genVar = new GlobalVariable(m, genTy, true,
                                      GlobalValue::PrivateLinkage, genInit,
                                      name + "_generation");
    genVar->setAlignment(Align(8));
    generation = genVar;
  }
  int storageKind = !weightImage ? WeightsNone
                    : storage == WeightStorage::Appended ? WeightsAppended
                                                          : WeightsEmbedded;
  // (Both arms uint64_t: with a bare 0 the conditional converts the
  // TypeSize to int and truncates images of 4 GB and more.)
  uint64_t weightBytes =
      weightImage
          ? m.getDataLayout().getTypeAllocSize(weightImage->getValueType())
                .getFixedValue()
          : uint64_t(0);
  Constant *weights =
      weightImage ? static_cast<Constant *>(weightImage)
                  : ConstantPointerNull::get(PointerType::getUnqual(ctx));
  Constant *modelInit = ConstantStruct::get(
      modelTy,
      {ConstantInt::get(i32, kModelABIVersion),
       ConstantInt::get(i32, sig.inputs.size()),
       ConstantInt::get(i32, sig.outputs.size()),
       ConstantInt::get(i32, storageKind),
       stringConstant(m, name, name + "_model_name"),
       ioInfoArray(m, sig.inputs, name + "_inputs", infoTy),
       ioInfoArray(m, sig.outputs, name + "_outputs", infoTy), entry, weights,
       ConstantInt::get(i64, weightBytes), generation,
       sig.metadata.empty()
           ? ConstantPointerNull::get(ptr)
           : stringConstant(m, sig.metadata, name + "_metadata"),
       ConstantInt::get(i64, sig.metadata.size()), bufferTable,
       ConstantInt::get(i64, bufferSizes.size())});
  auto *model = new GlobalVariable(m, modelTy, true,
                                   GlobalValue::ExternalLinkage, modelInit,
                                   name + "_model");
  model->setAlignment(Align(8));

  // quench_status <name>_run(inputs, n_in, outputs, n_out, pool, err).
  auto *runTy = FunctionType::get(i32, {ptr, i64, ptr, i64, ptr, ptr}, false);
  FunctionCallee modelRun = m.getOrInsertFunction(
      "quench_model_run",
      FunctionType::get(i32, {ptr, ptr, i64, ptr, i64, ptr, ptr}, false));
  auto *run = Function::Create(runTy, GlobalValue::ExternalLinkage,
                               name + "_run", m);
  {
    IRBuilder<> b(BasicBlock::Create(ctx, "entry", run));
    SmallVector<Value *> callArgs = {model};
    for (Argument &a : run->args())
      callArgs.push_back(&a);
    b.CreateRet(b.CreateCall(modelRun, callArgs));
  }

  if (withMain) {
    if (m.getFunction("main"))
      return makeError("the model defines a function 'main'; cannot add the "
                       "executable's main");
    FunctionCallee modelMain = m.getOrInsertFunction(
        "quench_model_main", FunctionType::get(i32, {ptr, i32, ptr}, false));
    auto *mainFn = Function::Create(FunctionType::get(i32, {i32, ptr}, false),
                                    GlobalValue::ExternalLinkage, "main", m);
    IRBuilder<> b(BasicBlock::Create(ctx, "entry", mainFn));
    b.CreateRet(b.CreateCall(
        modelMain, {model, mainFn->getArg(0), mainFn->getArg(1)}));
  }
  return Error::success();
}

/// A C comment-safe version of a name (no "*/").
static std::string commentSafe(StringRef s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    out.push_back(isPrint(s[i]) ? s[i] : '?');
    if (s[i] == '*' && i + 1 < s.size() && s[i + 1] == '/')
      out.push_back(' ');
  }
  return out;
}

std::string quench::generateHeader(const ModelSignature &sig,
                                   StringRef source) {
  const std::string &n = sig.modelName;
  std::string upper = StringRef(n).upper();
  std::string s;
  raw_string_ostream os(s);
  auto table = [&](StringRef what, ArrayRef<TensorSignature> ts) {
    os << " * " << what << ":\n";
    if (ts.empty())
      os << " *   (none)\n";
    for (auto [i, t] : llvm::enumerate(ts))
      os << " *   [" << i << "] " << commentSafe(t.name) << "  "
         << t.typeString() << "\n";
  };
  os << "/* " << n << ".h: C interface of the model '" << n
     << "', generated by quench-compile\n"
     << " * from " << commentSafe(sys::path::filename(source))
     << ". Do not edit.\n *\n";
  table("Inputs (pass them in this order)", sig.inputs);
  table("Outputs (returned in this order)", sig.outputs);
  os << " * A '?' dim is dynamic: it takes any size at run time. Dims that "
        "the model\n"
        " * needs to agree across inputs (a shared sequence length, ...) "
        "must agree.\n *\n"
        " * Link: the model's object (or static library), the Quench "
        "runtime\n"
        " * (libquench_runtime.a) and -lm -lpthread; CMake: "
        "quench_add_model().\n"
        " * Every symbol is prefixed by the model name, so several models "
        "link into\n"
        " * one program. Besides its constant weights the model has no "
        "global state:\n"
        " * it may run on several threads at once.\n"
        " */\n";
  os << "#ifndef QUENCH_MODEL_" << upper << "_H\n#define QUENCH_MODEL_"
     << upper << "_H\n\n#include <quench/runtime.h>\n\n"
     << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
  os << "#define " << upper << "_NUM_INPUTS " << sig.inputs.size() << "\n"
     << "#define " << upper << "_NUM_OUTPUTS " << sig.outputs.size()
     << "\n\n";
  os << "/* The model's description: name, and the name, dtype and shape of "
        "every input\n"
        " * and output (quench_io_info; -1 marks a dynamic dim). Use it with "
        "the\n"
        " * runtime's quench_model_run or quench_model_main. */\n"
     << "extern const quench_model " << n << "_model;\n\n";
  os << "/* Runs the model once: quench_model_run(&" << n
     << "_model, ...). See runtime.h.\n"
        " *  inputs:  " << upper << "_NUM_INPUTS tensors in the order above "
        "(read only; the caller\n"
        " *           keeps them). dtype, rank and static dims must match, "
        "else\n"
        " *           QUENCH_ERR_DTYPE_MISMATCH / QUENCH_ERR_SHAPE_MISMATCH "
        "and nothing runs.\n"
        " *  outputs: room for " << upper << "_NUM_OUTPUTS descriptors. On "
        "success each holds a new\n"
        " *           buffer the caller frees with quench_tensor_free; on "
        "failure all\n"
        " *           are zeroed.\n"
        " *  pool:    thread pool for the model's parallel loops "
        "(quench_threadpool_create),\n"
        " *           or NULL to run on the calling thread only.\n"
        " *  err:     optional; receives the status and a one-line "
        "message.\n"
        " * Returns QUENCH_OK or an error status. */\n"
     << "quench_status " << n
     << "_run(const quench_tensor *inputs, size_t num_inputs,\n"
     << std::string(15 + n.size(), ' ')
     << "quench_tensor *outputs, size_t num_outputs,\n"
     << std::string(15 + n.size(), ' ')
     << "quench_threadpool *pool, quench_error *err);\n\n";
  if (!sig.metadata.empty())
    os << "/* The model carries metadata kept by the importer (a JSON object "
          "of " << sig.metadata.size() << "\n * bytes, e.g. a GGUF "
          "tokenizer; docs/gguf.md): quench_model_metadata(&"
       << n << "_model,\n * &size) returns it. */\n\n";
  if (const std::optional<GenerationSignature> &gen = sig.generation) {
    const TensorSignature &logits = sig.outputs[gen->logits];
    std::string p = "static inline ";
    os << "/* Generation: the model keeps the keys and values of earlier "
          "positions in a\n"
          " * session's cache (quench-compile --kv-cache; docs/"
          "generation.md). A session is\n"
          " * one sequence: create it with a capacity in positions (0: "
          "the default\n"
          " * below), append the prompt with "
       << n << "_prefill, then one token per\n"
          " * step with " << n << "_decode; pick tokens with quench_sample. "
          "Sessions are\n"
          " * independent (one per thread); see runtime.h. */\n"
       << "#define " << upper << "_DEFAULT_CAPACITY " << gen->capacity
       << "\n#define " << upper << "_VOCAB_SIZE " << logits.shape.back()
       << "\n\n"
       << p << "quench_session *" << n
       << "_session_create(int64_t capacity,\n"
       << "    quench_error *err) {\n"
       << "  return quench_session_create(&" << n
       << "_model, capacity, err);\n}\n"
       << p << "void " << n
       << "_session_destroy(quench_session *s) {\n"
       << "  quench_session_destroy(s);\n}\n"
       << p << "void " << n << "_session_reset(quench_session *s) {\n"
       << "  quench_session_reset(s);\n}\n"
       << "/* Appends n prompt tokens; last_logits (" << upper
       << "_VOCAB_SIZE floats, may be NULL)\n"
          " * receives the logits of the last one. */\n"
       << p << "quench_status " << n
       << "_prefill(quench_session *s, const int64_t *tokens,\n"
       << "    int64_t n, float *last_logits, quench_threadpool *pool,\n"
       << "    quench_error *err) {\n"
       << "  return quench_session_prefill(s, tokens, n, last_logits, pool, "
          "err);\n}\n"
       << "/* Appends one token; last_logits receives its logits. */\n"
       << p << "quench_status " << n
       << "_decode(quench_session *s, int64_t token,\n"
       << "    float *last_logits, quench_threadpool *pool, quench_error "
          "*err) {\n"
       << "  return quench_session_decode(s, token, last_logits, pool, "
          "err);\n}\n"
       << "/* Sets an input the session does not fill (e.g. an encoder-"
          "decoder's\n"
          " * encoder_attention_mask and cross-attention keys/values) for "
          "every later\n"
          " * run; the session keeps a copy. */\n"
       << p << "quench_status " << n
       << "_session_set_input(quench_session *s, const char *name,\n"
       << "    const quench_tensor *value, quench_error *err) {\n"
       << "  return quench_session_set_input(s, name, value, err);\n}\n\n";
  }
  os << "#ifdef __cplusplus\n} /* extern \"C\" */\n#endif\n\n#endif /* "
        "QUENCH_MODEL_"
     << upper << "_H */\n";
  return s;
}

namespace {
/// Forwards everything to `out` a chunk at a time and releases the pages of
/// each chunk written (a no-op unless they belong to a MappedFile).
class ReleasingStream final : public raw_ostream {
public:
  explicit ReleasingStream(raw_ostream &out)
      : raw_ostream(/*unbuffered=*/true), out(out) {}

private:
  void write_impl(const char *ptr, size_t size) override {
    constexpr size_t kChunk = 32u << 20;
    while (size) {
      size_t n = std::min(size, kChunk);
      out.write(ptr, n);
      out.flush();
      quench::releaseMappedPages(ArrayRef<char>(ptr, n));
      ptr += n;
      size -= n;
    }
  }
  uint64_t current_pos() const override { return out.tell(); }
  raw_ostream &out;
};
} // namespace

Error quench::writeStaticArchive(raw_ostream &os, StringRef memberName,
                                 MemoryBufferRef object) {
  NewArchiveMember member(object);
  member.MemberName = memberName;
  ReleasingStream stream(os);
  return writeArchiveToStream(stream, {std::move(member)},
                              SymtabWritingMode::NormalSymtab,
                              object::Archive::K_GNU, /*Deterministic=*/true,
                              /*Thin=*/false);
}
