//===- kvcc.cpp - The kvcc compiler driver ----------------------*- C++ -*-===//
//
// Runs the whole chain in one command, as clang does over opt and llc:
//   kvcc program.mlir --target=cpu -o out/
// parses and verifies the kv program, prints what it will compile, writes
// the generated source, header and kvcc-run manifest, and builds
// lib<name>.so with the C++ compiler (CPU) or nvcc (CUDA), linked to kvrt.
//
//===----------------------------------------------------------------------===//

#include "kvcc/InitAll.h"
#include "kvcc/Target/KVTranslate.h"
#include "kvcc/Target/ModelGraph.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace mlir;
using namespace kvcc;
namespace cl = llvm::cl;

static cl::OptionCategory kvccCategory("kvcc options");
static cl::opt<std::string> inputFile(cl::Positional, cl::Required,
                                      cl::desc("<kv program .mlir>"),
                                      cl::cat(kvccCategory));
static cl::opt<std::string> outputDir("o", cl::desc("Output directory"),
                                      cl::value_desc("dir"), cl::init("."),
                                      cl::cat(kvccCategory));
static cl::opt<std::string> targetName("target",
                                       cl::desc("Target: cpu or cuda"),
                                       cl::init("cpu"), cl::cat(kvccCategory));
static cl::opt<std::string>
    moduleName("name",
               cl::desc("Base name of the outputs (default: input file stem)"),
               cl::cat(kvccCategory));
enum class Emit { Source, Library };
static cl::opt<Emit> emitKind(
    "emit", cl::desc("What to produce"), cl::init(Emit::Library),
    cl::values(clEnumValN(Emit::Source, "source",
                          "source, header and manifest only"),
               clEnumValN(Emit::Library, "library",
                          "also compile lib<name>.so (default)")),
    cl::cat(kvccCategory));
static cl::opt<std::string> cxxPath("cxx",
                                    cl::desc("C++ compiler for target cpu "
                                             "(default: $CXX, then c++)"),
                                    cl::cat(kvccCategory));
static cl::opt<std::string> nvccPath("nvcc",
                                     cl::desc("CUDA compiler for target cuda "
                                              "(default: nvcc on PATH)"),
                                     cl::cat(kvccCategory));
static cl::opt<std::string>
    cudaArch("cuda-arch", cl::desc("GPU architecture for nvcc"),
             cl::init("90a"), cl::cat(kvccCategory));
static cl::opt<std::string>
    kvrtInclude("kvrt-include", cl::desc("kvrt include directory"),
                cl::init(KVCC_RUNTIME_INCLUDE_DIR), cl::cat(kvccCategory));
static cl::opt<std::string>
    kvrtLibDir("kvrt-lib", cl::desc("Directory holding libkvrt.so"),
               cl::init(KVCC_RUNTIME_LIBRARY_DIR), cl::cat(kvccCategory));
static cl::opt<bool> quiet("q", cl::desc("Print errors only"),
                           cl::cat(kvccCategory));
static cl::opt<bool> raise(
    "raise",
    cl::desc("First run kv-raise-attention: compile a model graph (linalg "
             "from a front end) with its attention and KV cache raised"),
    cl::cat(kvccCategory));
static cl::opt<int64_t> raiseCapacity(
    "capacity", cl::desc("With --raise: cache capacity in tokens"),
    cl::init(4096), cl::cat(kvccCategory));
static cl::opt<int64_t> raisePageSize(
    "page-size", cl::desc("With --raise: tokens per cache page"),
    cl::init(16), cl::cat(kvccCategory));
static cl::opt<std::string> ccPath(
    "cc",
    cl::desc("Compiler for the LLVM IR of model graphs (default: clang-22, "
             "then clang on PATH)"),
    cl::cat(kvccCategory));

static llvm::raw_ostream &note() {
  return quiet ? llvm::nulls() : llvm::outs();
}

static int fail(const llvm::Twine &message) {
  llvm::WithColor::error(llvm::errs(), "kvcc") << message << "\n";
  return 1;
}

/// "1 token", "61 tokens".
static std::string plural(int64_t count, StringRef one,
                          StringRef many = StringRef()) {
  std::string text = std::to_string(count) + " ";
  if (count == 1)
    return text + one.str();
  return text + (many.empty() ? one.str() + "s" : many.str());
}

/// Prints one line per entry point and kv op: what the user asked for.
static void describeModule(ModuleOp module, Target target) {
  for (func::FuncOp func : getEntryFunctions(module)) {
    FailureOr<EntryABI> abi = computeEntryABI(func, target);
    if (failed(abi))
      continue;
    note() << "  entry " << abi->name << "(";
    llvm::interleaveComma(abi->params, note(),
                          [](const EntryParam &p) { note() << p.name; });
    note() << ")\n";
    for (Operation &op : func.getBody().front()) {
      if (auto append = dyn_cast<kv::AppendOp>(op)) {
        kv::CacheType cache = append.getCache().getType();
        auto key = append.getKey().getType();
        note() << "    kv.append     " << key.getDimSize(0) << " seqs x "
               << plural(key.getDimSize(1), "token") << " into a cache of "
               << cache.getNumHeads() << " kv heads x " << cache.getHeadDim()
               << " " << getDTypeName(cache.getElementType()) << ", page "
               << cache.getPageSize() << ", capacity " << cache.getCapacity()
               << "\n";
      } else if (auto attention = dyn_cast<kv::AttentionOp>(op)) {
        auto query = attention.getQuery().getType();
        int64_t group =
            query.getDimSize(2) / attention.getCache().getType().getNumHeads();
        note() << "    kv.attention  " << query.getDimSize(0) << " seqs x "
               << plural(query.getDimSize(1), "query", "queries") << ", "
               << query.getDimSize(2)
               << " q heads (GQA group " << group << "), scale "
               << llvm::format("%.6g", attention.getEffectiveScale())
               << (attention.getCausal() ? ", causal" : ", not causal")
               << "\n";
      }
    }
  }
}

/// Writes `text` of one output file, reporting failures.
template <typename Fn>
static LogicalResult writeOutput(StringRef path, Fn &&print) {
  std::string error;
  auto file = openOutputFile(path, &error);
  if (!file) {
    fail("cannot write '" + path + "': " + error);
    return failure();
  }
  if (failed(print(file->os())))
    return failure();
  file->keep();
  note() << "  wrote " << path << "\n";
  return success();
}

/// Finds a program by explicit path or on PATH.
static std::optional<std::string> findTool(StringRef explicitPath,
                                           ArrayRef<StringRef> names) {
  if (!explicitPath.empty()) {
    if (llvm::sys::fs::can_execute(explicitPath))
      return explicitPath.str();
    return std::nullopt;
  }
  for (StringRef name : names) {
    if (name.empty())
      continue;
    if (auto path = llvm::sys::findProgramByName(name))
      return *path;
  }
  return std::nullopt;
}

static LogicalResult compileLibrary(Target target, StringRef source,
                                    StringRef library) {
  std::vector<std::string> args;
  std::optional<std::string> compiler;
  std::string rpath = "-Wl,-rpath," + kvrtLibDir;
  if (target == Target::CPU) {
    const char *envCxx = std::getenv("CXX");
    compiler = findTool(cxxPath, {envCxx ? envCxx : "", "c++", "g++"});
    if (!compiler) {
      fail("no C++ compiler found (tried --cxx, $CXX, c++, g++); install "
           "one or pass --cxx=PATH, or use --emit=source");
      return failure();
    }
    args = {*compiler, "-std=c++17", "-O2", "-fPIC", "-shared"};
  } else {
    compiler = findTool(nvccPath, {"nvcc"});
    if (!compiler) {
      fail("nvcc not found" +
           (nvccPath.empty() ? llvm::Twine(" on PATH")
                             : llvm::Twine(" at '") + nvccPath + "'") +
           "; install the CUDA toolkit, pass --nvcc=PATH, or use "
           "--emit=source to write the .cu file only");
      return failure();
    }
    args = {*compiler,
            "-std=c++17",
            "-O3",
            "-gencode=arch=compute_" + cudaArch + ",code=sm_" + cudaArch,
            // kvrt launches the generated kernels: both must share one CUDA
            // runtime, or the launch fails with an invalid resource handle.
            "-cudart",
            "shared",
            "-Xcompiler",
            "-fPIC",
            "-shared"};
    rpath = "-Xlinker=-rpath," + kvrtLibDir;
  }
  args.insert(args.end(), {"-I" + kvrtInclude, source.str(), "-o",
                           library.str(), "-L" + kvrtLibDir, "-lkvrt", rpath});
  SmallVector<StringRef> argRefs(args.begin(), args.end());
  note() << "  compiling:";
  for (StringRef arg : argRefs)
    note() << " " << arg;
  note() << "\n";
  std::string error;
  int rc = llvm::sys::ExecuteAndWait(args[0], argRefs, std::nullopt, {}, 0, 0,
                                     &error);
  if (rc != 0) {
    fail("compiling '" + source + "' failed" +
         (error.empty() ? llvm::Twine(" (exit code ") + llvm::Twine(rc) + ")"
                        : llvm::Twine(": ") + error));
    return failure();
  }
  note() << "  built " << library << "\n";
  return success();
}

/// Builds lib<name>.so from the LLVM IR of a model graph, linked against
/// kvrt and MLIR's C runner utils (memref copies).
static LogicalResult compileModelLibrary(StringRef llvmIR, StringRef library) {
  std::optional<std::string> compiler =
      findTool(ccPath, {"clang-22", "clang"});
  if (!compiler) {
    fail("no clang found (tried --cc, clang-22, clang): model graphs are "
         "compiled from LLVM IR; install clang or use --emit=source");
    return failure();
  }
  std::vector<std::string> args = {
      *compiler, "-O2", "-fPIC", "-shared", "-Wno-override-module",
      llvmIR.str(), "-o", library.str(), "-L" + kvrtLibDir, "-lkvrt",
      "-Wl,-rpath," + kvrtLibDir, "-L" KVCC_MLIR_LIBRARY_DIR,
      "-lmlir_c_runner_utils", "-Wl,-rpath," KVCC_MLIR_LIBRARY_DIR};
  SmallVector<StringRef> argRefs(args.begin(), args.end());
  note() << "  compiling:";
  for (StringRef arg : argRefs)
    note() << " " << arg;
  note() << "\n";
  std::string error;
  if (llvm::sys::ExecuteAndWait(args[0], argRefs, std::nullopt, {}, 0, 0,
                                &error) != 0) {
    fail("compiling '" + llvmIR + "' failed" +
         (error.empty() ? llvm::Twine() : llvm::Twine(": ") + error));
    return failure();
  }
  note() << "  built " << library << "\n";
  return success();
}

/// The path of output file `file` in the output directory.
static std::string outputPath(const llvm::Twine &file) {
  SmallString<256> path(outputDir);
  llvm::sys::path::append(path, file);
  return std::string(path);
}

/// Compiles a model graph (kv ops among linalg/tensor code) through the LLVM
/// path: the kv-level IR, LLVM IR, a header and lib<name>.so.
static bool compileModelGraph(ModuleOp module, Target target,
                              const std::string &name) {
  if (target != Target::CPU) {
    fail("'" + inputFile + "' mixes kv ops with other computation: such "
         "model graphs compile for --target=cpu only so far");
    return false;
  }
  note() << "kvcc: " << inputFile << " -> " << outputDir
         << " (target cpu, model graph)\n";
  for (func::FuncOp func : getEntryFunctions(module)) {
    int64_t appends = 0, attentions = 0, caches = 0;
    func.walk([&](Operation *op) {
      appends += isa<kv::AppendOp>(op);
      attentions += isa<kv::AttentionOp>(op);
    });
    for (Type type : func.getArgumentTypes())
      caches += isa<kv::CacheType>(type);
    note() << "  entry " << func.getSymName() << ": "
           << func.getBody().front().getOperations().size() << " ops, "
           << attentions << " kv.attention, " << appends << " kv.append, "
           << caches << " cache arguments\n";
  }
  if (std::error_code ec = llvm::sys::fs::create_directories(outputDir)) {
    fail("cannot create '" + outputDir + "': " + ec.message());
    return false;
  }
  std::string llvmIR = outputPath(name + ".ll");
  if (failed(writeOutput(outputPath(name + ".kv.mlir"),
                         [&](raw_ostream &os) {
                           module.print(os);
                           return success();
                         })) ||
      failed(writeOutput(llvmIR,
                         [&](raw_ostream &os) {
                           return translateModelToLLVMIR(module, os);
                         })) ||
      failed(writeOutput(outputPath(name + ".h"), [&](raw_ostream &os) {
        return translateModelToHeader(module, name, os);
      })))
    return false;
  return emitKind != Emit::Library ||
         succeeded(compileModelLibrary(llvmIR, outputPath("lib" + name + ".so")));
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(kvccCategory);
  cl::ParseCommandLineOptions(
      argc, argv,
      "kvcc: compile a kv-dialect program into a library linked to kvrt\n");

  std::optional<Target> target = parseTarget(targetName);
  if (!target)
    return fail("unknown --target '" + targetName + "'; expected cpu or cuda");

  // Upstream dialects too: programs arrive mixed with arith, linalg, tensor.
  DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  kvcc::registerAllDialects(registry);
  mlir::registerAllPasses();
  kvcc::registerAllPasses();
  MLIRContext context(registry);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);

  std::string error;
  auto buffer = openInputFile(inputFile, &error);
  if (!buffer)
    return fail("cannot read '" + inputFile + "': " + error);
  sourceMgr.AddNewSourceBuffer(std::move(buffer), llvm::SMLoc());
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module || failed(verify(*module)))
    return 1;

  std::string name = moduleName.empty()
                         ? llvm::sys::path::stem(inputFile).str()
                         : moduleName.getValue();
  if (getEntryFunctions(*module).empty())
    return fail("'" + inputFile + "' has no public function to compile");
  if (raise) {
    PassManager pm(&context);
    kv::KVRaiseAttentionOptions options;
    options.capacity = raiseCapacity;
    options.pageSize = raisePageSize;
    options.remarks = !quiet;
    pm.addPass(kv::createKVRaiseAttention(options));
    if (failed(pm.run(*module)))
      return 1;
  }
  if (!isKVOnlyModule(*module))
    return compileModelGraph(*module, *target, name) ? 0 : 1;
  for (func::FuncOp func : getEntryFunctions(*module))
    if (failed(computeEntryABI(func, *target)))
      return 1;

  note() << "kvcc: " << inputFile << " -> " << outputDir << " (target "
         << stringifyTarget(*target) << ")\n";
  describeModule(*module, *target);

  if (std::error_code ec = llvm::sys::fs::create_directories(outputDir))
    return fail("cannot create '" + outputDir + "': " + ec.message());
  auto outPath = [](const llvm::Twine &file) { return outputPath(file); };
  std::string source =
      outPath(name + (*target == Target::CUDA ? ".cu" : ".cpp"));
  std::string library = outPath("lib" + name + ".so");

  if (failed(writeOutput(source,
                         [&](raw_ostream &os) {
                           return translateToSource(*module, *target, os);
                         })) ||
      failed(writeOutput(outPath(name + ".h"),
                         [&](raw_ostream &os) {
                           return translateToHeader(*module, *target, name,
                                                    os);
                         })) ||
      failed(writeOutput(outPath(name + ".kvcc"), [&](raw_ostream &os) {
        return translateToManifest(*module, *target,
                                   llvm::sys::path::filename(library), os);
      })))
    return 1;

  if (emitKind == Emit::Library &&
      failed(compileLibrary(*target, source, library)))
    return 1;
  return 0;
}
