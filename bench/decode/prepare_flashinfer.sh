#!/bin/bash
# Prepares .device/flashinfer/: what the GPU machine (no network, no
# FlashInfer) needs to run FlashInfer's BatchDecodeWithPagedKVCacheWrapper in
# bench_decode.py, small enough to travel with the working tree. Run here
# (no GPU needed; CUDA 13 nvcc and a CPython 3.12 are); safe to re-run.
#
# FlashInfer compiles its kernels on first use (JIT) from 400 MB of sources
# and headers shipped in its 101 MB wheel. Instead, this compiles here, for
# sm_90a, the only two modules the benchmark loads (flashinfer_prebuild.py:
# fp16 / head_dim 128 CUDA-core batch decode and the fa2 tensor-core one) and
# ships them inside a trimmed flashinfer package, where FlashInfer loads
# prebuilt modules from (flashinfer/data/aot) without compiling:
#   flashinfer-VERSION-sm90a.tar.xz  the package's Python files and the few
#                 data files its module specs read, no kernel sources or
#                 headers (CUTLASS, CCCL, csrc), plus the two modules
#   wheels/       cp312 wheels of the Python dependencies that `import
#                 flashinfer` needs beyond torch / numpy / cuda-bindings
#   STAMP         content hash; flashinfer_env.sh reinstalls when it changes
# On the device: source bench/decode/flashinfer_env.sh (from the repo root).
#
# Downloads, a Python 3.12 build environment (torch, only for import; about
# 1 GB) and the build tree live in $FLASHINFER_PREP_CACHE
# (default /tmp/kvcc-flashinfer). A first run takes about 5 minutes here
# (3 of compiling with one nvcc process, 1 of xz); later runs about 20 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/.device/flashinfer
CACHE=${FLASHINFER_PREP_CACHE:-/tmp/kvcc-flashinfer}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
FI_VERSION=0.7.4
TORCH_VERSION=2.11.0  # the device's torch (+cu130); only imported here
# Wheels for the device. apache-tvm-ffi is FlashInfer's binding layer: the
# prebuilt modules are compiled against its headers, so it is pinned and
# always installed; the others only where the device lacks the module.
FI_DEPS="apache-tvm-ffi==0.1.15.post2 requests==2.34.2 urllib3==2.8.0
  idna==3.20 certifi==2026.10.19.post1 charset-normalizer==3.5.3 tqdm==4.70.1
  nvidia-ml-py==13.615.71 typing-extensions==4.16.0 jinja2==3.1.6
  markupsafe==3.0.4"

PY312=${PY312:-$(ls -d ~/.pyenv/versions/3.12*/bin/python 2>/dev/null | tail -1)}
PY312=${PY312:-$(command -v python3.12 || true)}
[ -x "$PY312" ] || { echo "need a CPython 3.12 (set PY312)" >&2; exit 1; }
[ -x "$CUDA_HOME/bin/nvcc" ] || { echo "no nvcc in $CUDA_HOME" >&2; exit 1; }
mkdir -p "$CACHE/dl" "$CACHE/wheels"

download() {  # DIR SPEC...: the device's recipe (cp312, manylinux x86_64)
  local dir=$1; shift
  "$PY312" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$@"
}

echo "== downloads ($CACHE)"
download "$CACHE/dl" "flashinfer-python==$FI_VERSION"
# shellcheck disable=SC2086
download "$CACHE/wheels" $FI_DEPS
FI_WHEEL=$CACHE/dl/flashinfer_python-$FI_VERSION-py3-none-any.whl
# Keep one version of each package: the wheels named by FI_DEPS only.
WHEELS=()
for spec in $FI_DEPS; do
  name=$(echo "${spec%%==*}" | tr '[:upper:]-' '[:lower:]_')
  f=$(ls "$CACHE/wheels/${name}-${spec##*==}-"*.whl)
  WHEELS+=("$f")
done

echo "== build environment"
VENV=$CACHE/venv
if ! "$VENV/bin/python" -c "import torch, ninja" 2>/dev/null; then
  "$PY312" -m venv "$VENV"
  # torch from PyPI is the CUDA build; without its 3 GB of CUDA wheels it
  # imports against the toolkit's libraries plus these three small ones.
  "$VENV/bin/pip" install -q --no-deps --no-warn-conflicts "torch==$TORCH_VERSION" \
    nvidia-cufile==1.20.0.107 nvidia-cusparselt-cu13==0.10.0 \
    nvidia-nvshmem-cu13==3.8.0
  "$VENV/bin/pip" install -q --no-warn-conflicts filelock fsspec jinja2 networkx sympy \
    typing-extensions numpy packaging ninja
fi
export LD_LIBRARY_PATH=$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# The full package (sources and headers) to compile with.
SITE=$CACHE/build-site
if [ "$(cat "$SITE/.installed" 2>/dev/null)" != "$FI_VERSION ${WHEELS[*]}" ]; then
  rm -rf "$SITE"
  "$VENV/bin/pip" install -q --no-index --no-deps --no-compile --target "$SITE" \
    "$FI_WHEEL" "${WHEELS[@]}"
  echo "$FI_VERSION ${WHEELS[*]}" > "$SITE/.installed"
fi

echo "== compiling the benchmark's modules (sm_90a, one nvcc job)"
rm -rf "$CACHE/aot"
PYTHONPATH=$SITE PATH=$VENV/bin:$CUDA_HOME/bin:$PATH \
  FLASHINFER_WORKSPACE_BASE=$CACHE/ws FLASHINFER_CUDA_ARCH_LIST=9.0a \
  nice -n 10 "$VENV/bin/python" -W ignore \
  "$ROOT/bench/decode/flashinfer_prebuild.py" --aot-dir "$CACHE/aot" \
  --keep-list "$CACHE/keep.txt"

echo "== trimmed package"
STAGE=$CACHE/stage
rm -rf "$STAGE"
mkdir -p "$STAGE"
# Python files and small data; no kernel sources (*.cu, data/csrc), headers
# (data/include, CUTLASS, CCCL, spdlog) or byte code.
tar -C "$SITE" --exclude=flashinfer/data/csrc --exclude=flashinfer/data/include \
  --exclude=flashinfer/data/cutlass --exclude=flashinfer/data/cccl \
  --exclude=flashinfer/data/spdlog --exclude='*.cu' --exclude=__pycache__ \
  -cf - flashinfer "flashinfer_python-$FI_VERSION.dist-info" | tar -C "$STAGE" -xf -
# The data files that the two modules' specs read (templates, sources they
# copy), and the modules themselves.
tar -C "$SITE/flashinfer/data" -cf - -T "$CACHE/keep.txt" |
  tar -C "$STAGE/flashinfer/data" -xf -
cp -r "$CACHE/aot" "$STAGE/flashinfer/data/aot"
TARBALL=flashinfer-$FI_VERSION-sm90a.tar.xz
STAGE_HASH=$(cd "$STAGE" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$CACHE/$TARBALL.hash" 2>/dev/null)" != "$STAGE_HASH" ] ||
   [ ! -f "$CACHE/$TARBALL" ]; then
  tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime=2026-01-01 -cf - . | xz -9 -T1 > "$CACHE/$TARBALL.tmp"
  mv "$CACHE/$TARBALL.tmp" "$CACHE/$TARBALL"
  echo "$STAGE_HASH" > "$CACHE/$TARBALL.hash"
fi

echo "== $OUT"
rm -rf "$OUT"
mkdir -p "$OUT/wheels"
cp "$CACHE/$TARBALL" "$OUT/"
cp "${WHEELS[@]}" "$OUT/wheels/"
{
  echo "flashinfer-python $FI_VERSION (trimmed, prebuilt sm_90a modules:"
  ls "$CACHE/aot"
  echo ")"
  ls "$OUT/wheels"
} > "$OUT/VERSIONS"
(cd "$OUT" && find . -type f ! -name STAMP | LC_ALL=C sort | xargs sha256sum |
  sha256sum | cut -c1-16) > "$OUT/STAMP"

echo "== check: install as on the device, load the modules without nvcc"
CHECK_SITE=$CACHE/check-site
(
  export PYTHON=$VENV/bin/python FLASHINFER_SITE=$CHECK_SITE
  # shellcheck source=bench/decode/flashinfer_env.sh
  source "$ROOT/bench/decode/flashinfer_env.sh" || exit 1
  PATH=$VENV/bin:/usr/bin:/bin "$VENV/bin/python" -W ignore - <<'EOF'
import os
import torch
import flashinfer
from flashinfer.decode import get_batch_decode_module
from flashinfer.prefill import get_batch_prefill_module
site = os.environ["FLASHINFER_SITE"]
assert flashinfer.__file__.startswith(site), flashinfer.__file__
args = (torch.float16, torch.float16, torch.float16, torch.int32, 128, 128, 0,
        False, False)
decode = get_batch_decode_module(*args)
prefill = get_batch_prefill_module("fa2", *args, False, False)
assert callable(decode.plan) and callable(decode.run)
assert callable(prefill.plan) and callable(prefill.paged_run)
print(f"ok: flashinfer {flashinfer.__version__} from {site}, decode and fa2 "
      "prefill modules load (FLASHINFER_DISABLE_JIT=1, no nvcc on PATH)")
EOF
)
echo "$OUT: $(du -sb "$OUT" | cut -f1) bytes ($(du -sh "$OUT" | cut -f1))"
