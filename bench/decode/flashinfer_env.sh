# shellcheck shell=bash
# Sourced on the GPU machine from the repository root, before the decode
# benchmark:
#   source bench/decode/flashinfer_env.sh && python3 bench/decode/bench_decode.py ...
# Installs .device/flashinfer/ (made here by prepare_flashinfer.sh) into
# $FLASHINFER_SITE (default /tmp/kvcc-flashinfer-site) when that is missing or
# stale: no network, no compiling, a few seconds. Then puts it first on
# PYTHONPATH and sets FlashInfer's environment so that `import flashinfer`
# uses the prebuilt sm_90a modules and never starts nvcc
# (FLASHINFER_DISABLE_JIT=1: a module that is not prebuilt raises at once).
# Returns non-zero, leaving the environment as it was, when it cannot.
# PYTHON (default python3) is the interpreter to install for.

_fi_dir=${FLASHINFER_DIR:-$PWD/.device/flashinfer}
_fi_py=${PYTHON:-python3}
_fi_site=${FLASHINFER_SITE:-/tmp/kvcc-flashinfer-site}
if [ ! -f "$_fi_dir/STAMP" ]; then
  echo "flashinfer_env: no $_fi_dir/STAMP (run bench/decode/prepare_flashinfer.sh)" >&2
  return 1
fi
if [ "$(cat "$_fi_site/.stamp" 2>/dev/null)" != "$(cat "$_fi_dir/STAMP")" ]; then
  rm -rf "$_fi_site"
  mkdir -p "$_fi_site" || return 1
  # apache-tvm-ffi always (the modules are built against it); the other
  # wheels only for modules the interpreter lacks (torch brings
  # typing_extensions and jinja2), so that no installed package is shadowed.
  _fi_wheels=$(cd "$_fi_dir/wheels" && "$_fi_py" - <<'EOF'
import glob
import importlib.metadata
import importlib.util

modules = {"requests": "requests", "urllib3": "urllib3", "idna": "idna",
           "certifi": "certifi", "charset_normalizer": "charset_normalizer",
           "tqdm": "tqdm", "nvidia_ml_py": "pynvml",
           "typing_extensions": "typing_extensions", "jinja2": "jinja2",
           "markupsafe": "markupsafe"}


def recent_typing_extensions():  # apache-tvm-ffi needs >= 4.13
    try:
        major, minor = importlib.metadata.version("typing_extensions").split(".")[:2]
        return (int(major), int(minor)) >= (4, 13)
    except Exception:
        return False


for wheel in sorted(glob.glob("*.whl")):
    name = wheel.split("-")[0].lower()
    module = modules.get(name)
    if module is None or importlib.util.find_spec(module) is None or (
            module == "typing_extensions" and not recent_typing_extensions()):
        print(wheel)
EOF
  ) || { echo "flashinfer_env: $_fi_py failed" >&2; return 1; }
  # shellcheck disable=SC2086  # one wheel file name a word
  (cd "$_fi_dir/wheels" &&
    "$_fi_py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target "$_fi_site" $_fi_wheels) || {
    echo "flashinfer_env: pip install into $_fi_site failed" >&2; return 1; }
  "$_fi_py" - "$_fi_dir"/flashinfer-*.tar.xz "$_fi_site" <<'EOF' || {
import sys
import tarfile

with tarfile.open(sys.argv[1]) as tar:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(sys.argv[2], filter="data")
    else:
        tar.extractall(sys.argv[2])
EOF
    echo "flashinfer_env: unpacking the flashinfer package failed" >&2; return 1; }
  cp "$_fi_dir/STAMP" "$_fi_site/.stamp"
  echo "flashinfer_env: installed into $_fi_site: $(cd "$_fi_site" && ls -d flashinfer *.dist-info | tr '\n' ' ')"
fi
export FLASHINFER_SITE=$_fi_site
case ":${PYTHONPATH:-}:" in
  *":$_fi_site:"*) ;;
  *) export PYTHONPATH=$_fi_site${PYTHONPATH:+:$PYTHONPATH} ;;
esac
export FLASHINFER_DISABLE_JIT=1
export FLASHINFER_CUDA_ARCH_LIST=9.0a
# Where FlashInfer writes the sources it renders for a module's spec (also
# for prebuilt modules) and its lock files.
export FLASHINFER_WORKSPACE_BASE=${FLASHINFER_WORKSPACE_BASE:-/tmp/kvcc-flashinfer-ws}
unset _fi_dir _fi_py _fi_site _fi_wheels
