# kvcc: the two commands of the README.
#   make demo    install what is missing, build, compile examples/ with kvcc
#                and run them against a float64 reference (CPU; GPU too when
#                one is present)
#   make check   install what is missing, build, run every test (lit + gtest)
BUILD ?= build
LLVM_PREFIX ?= /usr/lib/llvm-22
JOBS ?= $(shell nproc)
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_FLAGS := $(if $(NVCC),-DKVCC_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER=$(NVCC),-DKVCC_ENABLE_CUDA=OFF)

.PHONY: deps configure build check demo docs clean

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
	  -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld -DCMAKE_SHARED_LINKER_FLAGS=-fuse-ld=lld \
	  -DCMAKE_MODULE_LINKER_FLAGS=-fuse-ld=lld \
	  -DMLIR_DIR=$(LLVM_PREFIX)/lib/cmake/mlir \
	  -DLLVM_EXTERNAL_LIT=$(LLVM_PREFIX)/bin/lit $(CUDA_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

check: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD)

docs: build
	cmake --build $(BUILD) --target kvcc-docs

clean:
	rm -rf $(BUILD)
