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
#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
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
  kvcc::registerAllDialects(registry);
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
  for (func::FuncOp func : getEntryFunctions(*module))
    if (failed(computeEntryABI(func, *target)))
      return 1;

  note() << "kvcc: " << inputFile << " -> " << outputDir << " (target "
         << stringifyTarget(*target) << ")\n";
  describeModule(*module, *target);

  if (std::error_code ec = llvm::sys::fs::create_directories(outputDir))
    return fail("cannot create '" + outputDir + "': " + ec.message());
  auto outPath = [&](const llvm::Twine &file) {
    SmallString<256> path(outputDir);
    llvm::sys::path::append(path, file);
    return std::string(path);
  };
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
