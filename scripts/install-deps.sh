#!/usr/bin/env bash
# Installs what kvcc needs to build and test on Debian 12, only where missing.
#   scripts/install-deps.sh            compiler + runtime + tests
#   KVCC_DEPS=runtime scripts/install-deps.sh   runtime only (no LLVM/MLIR)
set -euo pipefail

packages=(cmake ninja-build g++ libgtest-dev libbenchmark-dev python3-numpy)
if [[ "${KVCC_DEPS:-all}" != runtime ]]; then
  # LLVM/MLIR 22 from Debian; lit and FileCheck come with llvm-22-tools;
  # clang-22 and lld-22 link against libMLIR.so fastest.
  packages+=(llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools clang-22 lld-22)
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
fi
