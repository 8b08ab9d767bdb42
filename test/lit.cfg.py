# -*- Python -*-
import os
import shutil

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "KVCC"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kvcc_obj_root, "test")
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]

config.substitutions.append(("%kvcc_libs", config.kvcc_lib_dir))
config.substitutions.append(("%kvcc_src", config.kvcc_src_root))
config.substitutions.append(
    ("%kv_plugin", os.path.join(config.kvcc_lib_dir, "libKVPlugin.so")))

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.kvcc_tools_dir, append_path=True)

tools = [
    "kv-opt",
    "kv-translate",
    "kvcc",
    "kvcc-run",
    ToolSubst("mlir-opt", unresolved="fatal"),
    ToolSubst("mlir-translate", unresolved="fatal"),
]
llvm_config.add_tool_substitutions(
    tools, [config.kvcc_tools_dir, config.llvm_tools_dir])

if config.kvcc_cuda_enabled and config.cuda_compiler:
    config.available_features.add("nvcc")
    # nvcc with kvrt's device headers, for tests that read the PTX of the
    # kernels kvcc emits.
    runtime_include = os.path.join(config.kvcc_src_root, "runtime", "include")
    nvcc_ptx = "%s -std=c++17 -O3 -ptx -I%s" % (config.cuda_compiler,
                                                  runtime_include)
    # %nvcc_ptx_for takes the target (-arch=sm_75 ...) from the test.
    config.substitutions.append(("%nvcc_ptx_for", nvcc_ptx))
    config.substitutions.append(("%nvcc_ptx", nvcc_ptx + " -arch=sm_90a"))
    # ptxas's report (-v) of an sm_90a cubin: registers, spills and its
    # "Potential Performance Loss" notes (wgmma serialized, setmaxnreg
    # ignored), which arrive on stderr.
    config.substitutions.append((
        "%ptxas_report_sm90a",
        "%s -std=c++17 -O3 -cubin -arch=sm_90a -Xptxas -v -I%s" % (
            config.cuda_compiler, runtime_include)))

# nvdisasm, to read the SASS of kvcc's sm_90a kernels: $KVCC_NVDISASM, on
# PATH, beside nvcc, or where scripts/install-deps.sh unpacks it.
if "nvcc" in config.available_features:
    candidates = [os.environ.get("KVCC_NVDISASM"), shutil.which("nvdisasm"),
                  os.path.join(os.path.dirname(config.cuda_compiler), "nvdisasm"),
                  os.path.join(os.environ.get("KVCC_TOOLS_DIR") or
                               os.path.expanduser("~/.cache/kvcc-tools"),
                               "bin", "nvdisasm")]
    nvdisasm = next((c for c in candidates if c and os.access(c, os.X_OK)),
                    None)
    if nvdisasm:
        config.available_features.add("nvdisasm")
        config.substitutions.append(("%nvdisasm", nvdisasm))

# The upstream CPU pipeline (bufferize, lower to LLVM) both the original and
# the raised model graphs take in the raising equivalence tests.
config.substitutions.append((
    "%upstream_to_llvm",
    "one-shot-bufferize{bufferize-function-boundaries=1 "
    "function-boundary-type-conversion=identity-layout-map},"
    "func.func(convert-linalg-to-loops),expand-strided-metadata,lower-affine,"
    "convert-scf-to-cf,convert-math-to-llvm,finalize-memref-to-llvm,"
    "convert-arith-to-llvm,convert-index-to-llvm,convert-cf-to-llvm,"
    "convert-func-to-llvm,reconcile-unrealized-casts"))
llvm_lib_dir = os.path.join(os.path.dirname(config.llvm_tools_dir), "lib")
config.substitutions.append((
    "%shared_lib",
    "clang-22 -O1 -shared -fPIC -w -L%s -lmlir_c_runner_utils -Wl,-rpath,%s "
    "-L%s -lkvrt -Wl,-rpath,%s" % (llvm_lib_dir, llvm_lib_dir,
                                   config.kvcc_lib_dir, config.kvcc_lib_dir)))
config.substitutions.append(
    ("%libkvrt", os.path.join(config.kvcc_lib_dir, "libkvrt.so")))

import subprocess
if subprocess.run(["/usr/bin/python3", "-c", "import numpy"],
                  capture_output=True).returncode == 0:
    config.available_features.add("numpy")
