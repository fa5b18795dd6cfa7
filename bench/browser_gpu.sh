#!/usr/bin/env bash
# The tuner page in Chromium on a GPU machine that has no network (bench/browser_gpu.py drives it there), with
# everything it needs carried in parts small enough for one transfer each. Steps:
#
#   here:  bash bench/browser_gpu.sh prepare DIR [MB]   # DIR/base (source, wheels, loader debs) and DIR/part-NN,
#                                                       # each at most MB (default 40) with base in part 1's budget
#   there: bash SRC/bench/browser_gpu.sh setup DIR/base # source to /tmp/stt/src, wheels to /tmp/stt/site, loaders
#          bash SRC/bench/browser_gpu.sh take DIR/part-NN    # once per part, in any number of calls
#          bash SRC/bench/browser_gpu.sh unpack              # parts checked and unpacked to /tmp/stt/chromium
#          bash SRC/bench/browser_gpu.sh native OUT.json [--kernels topk,where_nd]   # the native wgpu-py full run
#          bash SRC/bench/browser_gpu.sh browser OUTDIR [browser_gpu.py options]
#          bash SRC/bench/browser_gpu.sh bg NAME native|browser ARGS...   # the same, in the background: a step
#          bash SRC/bench/browser_gpu.sh wait NAME [SECONDS]              # longer than one call (10 minutes)
#
# Chromium is Debian 12's `chromium` (the binary from its .deb) with the part of `chromium-common` it reads, and
# the shared libraries it links that the GPU machine may lack (all of `ldd`'s list but glibc; `unpack` links only
# those the machine's `ldconfig -p` does not list into a private folder on LD_LIBRARY_PATH: nothing is written to
# /usr). DejaVu fonts and a fonts.conf of its own, for the screenshot. The Vulkan and GL loaders as in
# shared/device/prepare.sh, and VK_DRIVER_FILES at the NVIDIA driver's manifest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
stt=${STT:-/tmp/stt}
cmd=${1:-}; [ $# -gt 0 ] && shift

prepare() {
  local dir=${1:?prepare DIR [MB]} mb=${2:-40} w
  w=$(mktemp -d)
  mkdir -p "$dir/base/whl" "$dir/base/deb" "$w/deb" "$w/payload" "$w/chr/locales" "$w/lib" "$w/fonts" /tmp/amd64/partial
  rm -f "$dir"/part-* "$dir"/base/whl/* "$dir"/base/deb/*
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq >/dev/null
  (cd "$w/deb" && apt-get $o download -qq chromium chromium-common 2>/dev/null)
  (cd "$dir/base/deb" && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 \
    2>/dev/null)
  # what chromium reads of chromium-common: resources, ICU data, V8 snapshots, one locale, ANGLE, SwiftShader
  dpkg-deb -x "$w"/deb/chromium-common_*.deb "$w/x"
  local c=$w/x/usr/lib/chromium
  cp "$c"/{chrome_100_percent.pak,resources.pak,icudtl.dat,v8_context_snapshot.bin,snapshot_blob.bin} "$w/chr/"
  cp "$c"/{libEGL.so,libGLESv2.so,libvk_swiftshader.so,vk_swiftshader_icd.json,libvulkan.so.1} "$w/chr/"
  cp "$c"/chrome_crashpad_handler "$w/chr/"
  cp "$c"/locales/en-US.pak "$w/chr/locales/"
  # the libraries it links (glibc's own left out) and NSS's plugins, under their sonames; the binary comes from
  # the .deb below, so `ldd` reads the one installed here (the same version: checked)
  dpkg-deb -x "$w"/deb/chromium_*.deb "$w/y"
  ldd "$w/y/usr/lib/chromium/chromium" | awk '/=>/ {print $1, $3}' \
    | grep -vE '^(libc|libm|libdl|libpthread|librt|libresolv)\.so' | while read -r n p; do
      [ -e "$p" ] || { echo "missing here: $n (install chromium here first)" >&2; exit 1; }
      cp -L "$p" "$w/lib/$n"; done
  local nss=/usr/lib/x86_64-linux-gnu
  for n in libfreebl3 libfreeblpriv3 libnssckbi libnssdbm3 libsoftokn3; do
    cp -L "$nss/$n.so" "$w/lib/"; [ -e "$nss/$n.chk" ] && cp -L "$nss/$n.chk" "$w/lib/"; done
  cp /usr/share/fonts/truetype/dejavu/DejaVuSans{,-Bold}.ttf /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf \
    "$w/fonts/"
  rm -rf "$w/x" "$w/y"
  (cd "$w" && tar -cf - chr lib fonts | xz -6 -T2 > payload/common.tar.xz)
  cp "$w"/deb/chromium_*.deb "$w/payload/chromium.deb"
  (cd "$w/payload" && tar -cf "$w/payload.tar" chromium.deb common.tar.xz)
  # wheels the server and wgpu-py need there (the GPU image has numpy, jinja2, anyio, click, h11, idna ...);
  # fastapi 0.165 imports opentelemetry
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dir/base/whl" fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic_core==2.50.5 uvicorn==0.54.0 \
    python-multipart==0.0.34 annotated-doc==0.0.7 annotated-types==0.8.0 typing_extensions==4.16.0 \
    typing-inspection==0.4.5 opentelemetry-api==1.45.2 wgpu==0.32.0 rendercanvas==2.7.2 cffi==2.1.1 pycparser==3.12 2>&1 | grep -v WARN || true
  # this checkout's committed code, without the committed results (they stay here), and the package built from it
  # as a wheel (installed there beside the others, so the bench scripts import spiraltorch_tuner normally)
  git -C "$here" archive HEAD -- . ':!bench/results' > "$dir/base/src.tar"
  python3 -m pip wheel -q --no-deps -w "$dir/base/whl" "$here" 2>&1 | grep -v WARN || true
  local base_mb first rest
  base_mb=$(du -sm "$dir/base" | cut -f1)
  first=$(( (mb - base_mb) * 1000000 ))
  rest=$(( mb * 1000000 ))
  head -c "$first" "$w/payload.tar" > "$dir/part-01"
  tail -c +$((first + 1)) "$w/payload.tar" | split -b "$rest" -d --numeric-suffixes=2 -a 2 - "$dir/part-"
  (cd "$w" && sha256sum payload.tar | cut -d' ' -f1) > "$dir/base/payload.sha256"
  ls "$dir"/part-* | wc -l > "$dir/base/nparts"
  rm -rf "$w"
  du -sh "$dir"/base "$dir"/part-*
}

setup() {
  local base=${1:?setup DIR/base}
  mkdir -p "$stt/src" "$stt/site" "$stt/parts"
  tar -xf "$base/src.tar" -C "$stt/src"
  cp "$base/payload.sha256" "$base/nparts" "$stt/"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$stt/site" \
    "$base"/whl/*.whl
  if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
    for f in "$base"/deb/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  echo "setup: source, $(ls "$base"/whl | wc -l) wheels; $(ldconfig -p | grep -c .) libraries known to ldconfig"
}

take() {
  local part=${1:?take PART}
  cp "$part" "$stt/parts/$(basename "$part")"
  echo "took $(basename "$part"): $(ls "$stt/parts" | wc -l) of $(cat "$stt/nparts") parts"
}

unpack() {
  local p=$stt/chromium
  cat "$stt"/parts/part-* > "$stt/payload.tar"
  [ "$(sha256sum "$stt/payload.tar" | cut -d' ' -f1)" = "$(cat "$stt/payload.sha256")" ] \
    || { echo "payload checksum differs: parts missing or damaged ($(ls "$stt/parts"))" >&2; exit 1; }
  rm -rf "$p" && mkdir -p "$p/lib" "$stt/x"
  tar -xf "$stt/payload.tar" -C "$stt/x"
  tar -xJf "$stt/x/common.tar.xz" -C "$stt/x"
  dpkg-deb --fsys-tarfile "$stt/x/chromium.deb" | tar -x -C "$stt/x" ./usr/lib/chromium/chromium
  mv "$stt/x/chr"/* "$p/" && mv "$stt/x/usr/lib/chromium/chromium" "$p/chromium"
  mv "$stt/x/fonts" "$p/fonts"
  local n linked=()
  for f in "$stt/x/lib"/*; do
    n=$(basename "$f")
    case $n in *.chk|libfreebl*|libsoftokn3.so|libnssckbi.so|libnssdbm3.so) mv "$f" "$p/lib/"; continue ;; esac
    if ! ldconfig -p | grep -q "^[[:space:]]*$n "; then mv "$f" "$p/lib/"; linked+=("$n"); fi
  done
  cat > "$p/fonts.conf" <<EOF
<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>$p/fonts</dir><cachedir>$stt/fontcache</cachedir></fontconfig>
EOF
  rm -rf "$stt/x" "$stt/payload.tar"
  echo "unpack: chromium in $p; ${#linked[@]} libraries the machine lacks: ${linked[*]}"
  echo "unpack: $(du -sh "$p/lib" | cut -f1) of them; $(LD_LIBRARY_PATH=$p/lib "$p/chromium" --version 2>&1 | tail -1)"
  env_file
}

env_file() {
  local p=$stt/chromium
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  {
    # only what the machine lacks: Chromium finds its own libvulkan/ANGLE beside its binary, and wgpu-py (native)
    # keeps the system's Vulkan loader
    echo "export LD_LIBRARY_PATH=$p/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
    echo "export FONTCONFIG_FILE=$p/fonts.conf PYTHONPATH=$stt/site PYTHONUNBUFFERED=1"
    [ -e "$icd" ] && echo "export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd"
    [ -e "$egl" ] && echo "export __EGL_VENDOR_LIBRARY_FILENAMES=$egl"
    echo "export XDG_RUNTIME_DIR=$stt/xdg HOME=$stt/home DBUS_SESSION_BUS_ADDRESS=disabled:"
  } > "$stt/env"
  mkdir -p "$stt/xdg" "$stt/home" && chmod 700 "$stt/xdg"
}

case "$cmd" in
  prepare) prepare "$@" ;;
  setup) setup "$@" ;;
  take) take "$@" ;;
  unpack) unpack ;;
  native)
    [ -e "$stt/env" ] || env_file
    . "$stt/env"
    out=${1:?native OUT.json [tune_gpu.py options]}; shift
    python3 "$stt/src/bench/tune_gpu.py" --out "$out" --preset full "$@" ;;
  browser)
    . "$stt/env"
    out=${1:?browser OUTDIR [options]}; shift
    python3 "$stt/src/bench/browser_gpu.py" --chromium "$stt/chromium/chromium" --out "$out" "$@" ;;
  bg)      # a step in a process of its own that outlives the call (a machine's call lasts at most 10 minutes)
    name=${1:?bg NAME native|browser ARGS...}; shift
    rm -f "$stt/$name.done"
    setsid nohup bash -c 'bash "$0" "$@" > "'"$stt/$name.log"'" 2>&1; echo $? > "'"$stt/$name.done"'"' \
      "$stt/src/bench/browser_gpu.sh" "$@" < /dev/null > /dev/null 2>&1 &
    echo "$name: running in the background (log $stt/$name.log): bash bench/browser_gpu.sh wait $name" ;;
  wait)    # until a bg step has finished (at most SECONDS, default 570), then its log's end; 1 while it runs
    name=${1:?wait NAME [SECONDS]}; limit=${2:-570}; t=0
    while [ ! -e "$stt/$name.done" ] && [ "$t" -lt "$limit" ]; do sleep 5; t=$((t + 5)); done
    tail -c 3000 "$stt/$name.log" 2>/dev/null || true
    [ -e "$stt/$name.done" ] || { echo "$name: still running after ${t} s" >&2; exit 1; }
    echo "$name: finished, exit status $(cat "$stt/$name.done")" ;;
  *) echo "usage: bash bench/browser_gpu.sh prepare DIR [MB] | setup BASE | take PART | unpack | native OUT.json |" \
          "browser OUTDIR [options] | bg NAME STEP ARGS... | wait NAME [SECONDS]" >&2; exit 2 ;;
esac
