#!/usr/bin/env bash
# The TopK anchors of bench/bench_gpu.py (FlashInfer's flashinfer.top_k, CUB's DeviceBatchedTopK: bench/anchors)
# on a GPU machine that has no network. Steps:
#
#   here:  bash bench/anchors.sh prepare [DIR]        # DIR (default .anchors in the repo root, which git must
#                                                     # ignore): whl/apache_tvm_ffi-*.whl and
#                                                     # flashinfer-topk-0.7.2.post1.zip, about 10 MB
#          bash bench/anchors.sh aot PATH/topk.so [DIR]   # optional: a top-k module FlashInfer's JIT built
#                                                     # (here or on a GPU machine), 9.5 MB: no build there
#   there: bash bench/anchors.sh run [bench_gpu.py options]   # in the repo root, with .gpu and .anchors carried
#          bash bench/anchors.sh build [--background]   # the same installs, then only the two builds
#                     # (FlashInfer's JIT, CUB's harness), cached in /tmp: a later `run` on that machine finds them
#                     # built. --background: in a process of its own that outlives the call (log:
#                     # /tmp/anchors-build.log), for a build longer than one call; then
#          bash bench/anchors.sh wait [SECONDS]   # until it has finished (default 580 s), printing its log
#
# flashinfer-python's wheel is 62 MB (332 MB unpacked), too much to carry beside the tree and .gpu (64 MiB a call),
# so `prepare` keeps what its top-k path reads, unchanged: the package's top-level modules and its jit/ and trace/
# subpackages (bench/anchors/flashinfer_topk.py imports flashinfer.topk without running flashinfer/__init__.py),
# the four JIT sources of the top-k module and the two headers beside them (data/csrc), FlashInfer's headers
# (data/include) and the CCCL headers it vendors (data/cccl: cub, libcudacxx, thrust), which the CUB harness builds
# against too, plus the wheel's METADATA and a SUBSET.txt naming the wheel and its sha256. The GPU machine has
# torch, numpy, CuPy, nvcc, ninja, filelock, jinja2, packaging, requests and nvidia-ml-py; apache-tvm-ffi (FlashInfer's
# JIT modules are tvm-ffi libraries) travels as its wheel.
#
# `run` does what the project's GPU runs do (loaders from .gpu/deb, .gpu's wheels and the project's own in .gpu/proj
# into /tmp/site), adds apache-tvm-ffi and the FlashInfer subset there, and runs
# `python3 bench/bench_gpu.py --only topk "$@"` from /tmp. FlashInfer's JIT build of its top-k module takes minutes
# the first time on a machine (cub_topk.cu: 838 s on one core here, 555 s on two with nvcc's --split-compile,
# which the bench sets); the bench runs it beside its own columns. docs/performance.md gives the figures and the
# way through `build --background` and `wait` when one call is not enough.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
FLASHINFER=0.7.2.post1
TVM_FFI=0.1.15.post2   # flashinfer-python 0.7.2.post1 requires apache-tvm-ffi >=0.1.11,<0.2
cmd=${1:-}; [ $# -gt 0 ] && shift

prepare() {
  local dir=${1:-$here/.anchors} w
  w=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$w" "flashinfer-python==$FLASHINFER" "apache-tvm-ffi==$TVM_FFI"
  mkdir -p "$dir/whl"
  rm -f "$dir"/whl/*.whl "$dir"/flashinfer-topk-*.zip
  cp "$w"/apache_tvm_ffi-*.whl "$dir/whl/"
  python3 - "$w"/flashinfer_python-"$FLASHINFER"-*.whl "$dir/flashinfer-topk-$FLASHINFER.zip" <<'EOF'
import hashlib, sys, zipfile
src, dst = sys.argv[1:3]
CSRC = ("topk.cu", "cub_topk.cu", "flashinfer_topk_binding.cu", "flashinfer_fast_topk_clusters_binding.cu",
        "topk_transform_checks.h", "tvm_ffi_utils.h")


def keep(name: str) -> bool:
    parts = name.split("/")
    if parts[0].endswith(".dist-info"):
        return parts[1] == "METADATA"
    if parts[0] != "flashinfer" or name.endswith("/"):
        return False
    if len(parts) == 2:
        return name.endswith(".py")
    if parts[1] in ("jit", "trace"):
        return True
    if parts[1] == "data":
        return (parts[2] == "csrc" and len(parts) == 4 and parts[3] in CSRC) or parts[2] == "include" or (
            parts[2] == "cccl" and "/".join(parts[3:5]) in ("cub/cub", "libcudacxx/include", "thrust/thrust"))
    return False


sha = hashlib.sha256(open(src, "rb").read()).hexdigest()
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
    names = [n for n in zin.namelist() if keep(n)]
    for n in names:
        zout.writestr(zin.getinfo(n), zin.read(n))
    zout.writestr("flashinfer/SUBSET.txt",
                  f"{len(names)} of the {len(zin.namelist())} files of {src.rsplit('/', 1)[-1]} (sha256 {sha}),\n"
                  "unchanged: the ones its top-k path reads (bench/anchors.sh prepare says which).\n")
print(f"{dst}: {len(names)} files of {len(zin.namelist())}")
EOF
  rm -rf "$w"
  du -sh "$dir"/whl/* "$dir"/*.zip; du -sh "$dir"
  if git -C "$here" rev-parse -q --git-dir >/dev/null 2>&1 && ! git -C "$here" check-ignore -q "$dir"; then
    echo "note: git does not ignore $dir; it would travel as part of the tree (echo /.anchors/ >>.git/info/exclude)" >&2
  fi
}

# A top-k module FlashInfer's JIT built (its cached_ops/topk/topk.so, for sm_90a), kept as DIR/aot/topk.so.xz with
# the build.ninja beside it that says how: `install` puts it where FlashInfer looks for ahead-of-time modules
# (flashinfer/data/aot/topk/topk.so), which it then loads instead of building (jit/env.py get_aot_artifacts).
aot() {
  local so=${1:?aot PATH/topk.so [DIR]} dir=${2:-$here/.anchors}
  mkdir -p "$dir/aot"
  xz -6 -T0 -c "$so" > "$dir/aot/topk.so.xz"
  [ -e "$(dirname "$so")/build.ninja" ] && cp "$(dirname "$so")/build.ninja" "$dir/aot/topk.build.ninja"
  du -sh "$dir/aot"/*
}

# Once per machine: installing again would give the JIT's sources and headers new mtimes, and ninja would then
# rebuild FlashInfer's module that `build` or an earlier `run` left in /tmp/flashinfer-ws.
install() {
  cd "$here"
  for f in .gpu/deb/*.deb; do dpkg -x "$f" /; done
  ldconfig
  if [ ! -e /tmp/site/.anchors-installed ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/whl/*.whl \
      .gpu/proj/*.whl .anchors/whl/*.whl
    python3 -m zipfile -e .anchors/flashinfer-topk-*.zip /tmp/site
    if [ -e .anchors/aot/topk.so.xz ]; then
      mkdir -p /tmp/site/flashinfer/data/aot/topk
      xz -dc .anchors/aot/topk.so.xz > /tmp/site/flashinfer/data/aot/topk/topk.so
    fi
    touch /tmp/site/.anchors-installed
  fi
  export PYTHONPATH=/tmp/site XDG_RUNTIME_DIR=/tmp PYTHONUNBUFFERED=1
  cd /tmp
}

run() {
  install
  python3 "$here/bench/bench_gpu.py" --only topk "$@"
}

build() {
  if [ "${1:-}" = --background ]; then
    rm -f /tmp/anchors-build.done
    setsid nohup bash "$here/bench/anchors.sh" build > /tmp/anchors-build.log 2>&1 < /dev/null &
    echo "building in the background (pid $!): bash bench/anchors.sh wait"
    return
  fi
  install
  python3 - "$here/bench" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
import anchors
print(json.dumps(anchors.load_all(anchors.make_anchors()), indent=1, default=str))
EOF
  touch /tmp/anchors-build.done
}

wait_build() {
  local limit=${1:-580} t=0
  while [ ! -e /tmp/anchors-build.done ] && [ "$t" -lt "$limit" ]; do sleep 5; t=$((t + 5)); done
  cat /tmp/anchors-build.log 2>/dev/null || echo "no /tmp/anchors-build.log: start with build --background" >&2
  [ -e /tmp/anchors-build.done ] || { echo "still building after ${t} s" >&2; return 1; }
}

case "$cmd" in
  prepare) prepare "$@" ;;
  aot) aot "$@" ;;
  run) run "$@" ;;
  build) build "$@" ;;
  wait) wait_build "$@" ;;
  *) echo "usage: bash bench/anchors.sh prepare [DIR] | aot PATH/topk.so [DIR] | run [bench_gpu.py options] |" \
       "build [--background]" \
       "| wait [SECONDS]" >&2; exit 2 ;;
esac
