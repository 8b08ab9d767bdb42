#!/usr/bin/env bash
# Installs what kvcc needs to build and test on Debian 12, only where missing.
#   scripts/install-deps.sh            compiler + runtime + tests
#   KVCC_DEPS=runtime scripts/install-deps.sh   runtime only (no LLVM/MLIR)
set -euo pipefail

packages=(cmake ninja-build g++ libgtest-dev libbenchmark-dev python3-numpy)
if [[ "${KVCC_DEPS:-all}" != runtime ]]; then
  # LLVM/MLIR 22 from Debian; lit and FileCheck come with llvm-22-tools;
  # clang-22 and lld-22 link against libMLIR.so fastest; libclang-rt-22-dev
  # holds clang's AddressSanitizer/UBSan runtimes, which .ci/run's sanitizer
  # build of kvrt links (clang-22 alone does not pull it in).
  packages+=(llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools clang-22 lld-22
             libclang-rt-22-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} packages present"
fi
if ! command -v nvcc >/dev/null 2>&1 && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "install-deps: nvcc not found: building without CUDA (KVCC_ENABLE_CUDA=OFF)"
elif [[ "${KVCC_DEPS:-all}" != runtime ]] &&
  ! command -v nvdisasm >/dev/null 2>&1 &&
  [[ ! -x /usr/local/cuda/bin/nvdisasm ]]; then
  # nvdisasm, for the lit test that reads the SASS of kvcc's sm_90a kernels
  # (test/e2e/cuda-wgmma-overlap.mlir): NVIDIA's wheel from PyPI, unpacked
  # where test/lit.cfg.py looks (the CUDA packages here come without it).
  tools="${KVCC_TOOLS_DIR:-$HOME/.cache/kvcc-tools}"
  if [[ ! -x "$tools/bin/nvdisasm" ]]; then
    wheel_dir=$(mktemp -d)
    if python3 -m pip download -q --no-deps --only-binary=:all: \
      -d "$wheel_dir" "nvidia-cuda-nvdisasm==13.5.37" >/dev/null 2>&1; then
      mkdir -p "$tools/bin"
      python3 - "$wheel_dir" "$tools/bin" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/bin/nvdisasm"))
    target = os.path.join(sys.argv[2], "nvdisasm")
    with z.open(name) as src, open(target, "wb") as dst:
        dst.write(src.read())
    os.chmod(target, 0o755)
PY
      echo "install-deps: nvdisasm 13.5.37 in $tools/bin"
    else
      echo "install-deps: could not fetch nvdisasm from PyPI: the SASS test will be skipped"
    fi
    rm -rf "$wheel_dir"
  fi
fi
