#!/usr/bin/env bash
# sam2-webgpu: the one entry point. Installs what is missing (idempotent, fast when present).
#
#   ./build.sh serve [PORT]   build the wasm package and serve the demo on http://127.0.0.1:PORT/www/
#   ./build.sh test           every test: unit + parity on CPU and wgpu (llvmpipe), browser (WebGPU)
#   ./build.sh wasm [--release]  build the wasm package into www/pkg
#   ./build.sh package        build the release wasm and pack the npm package (sam2-webgpu) into dist/
#   ./build.sh bench-browser  benchmark the wasm build against onnxruntime-web in Chromium
#   ./build.sh setup          only install the tools
#
# Build outputs go to $CARGO_TARGET_DIR (default ~/.cache/sam2-webgpu/target) so repeated runs and
# fresh clones on the same machine reuse one build of burn.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam2-webgpu/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '\n== %s\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  ((${#missing[@]})) || return 0
  log "apt: installing ${missing[*]}"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

setup() {
  # Chromium (WebGPU through SwiftShader) and Mesa's Vulkan drivers (llvmpipe for native wgpu).
  apt_install chromium mesa-vulkan-drivers libvulkan1
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "rustup: adding wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
  local want; want=$(wasm_bindgen_version)
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    log "cargo: installing wasm-bindgen-cli $want"
    cargo install -q wasm-bindgen-cli --version "=$want"
  fi
  # npm dev tools: playwright-core (drives Debian's chromium), binaryen's wasm-opt (Debian's is
  # too old), vite and typescript (the package test), onnxruntime-web (the browser benchmark).
  local pkg
  for pkg in playwright-core binaryen vite typescript onnxruntime-web; do
    if [ ! -f "node_modules/$pkg/package.json" ]; then
      log "npm: installing the dev tools of package.json"
      npm ci --no-audit --no-fund --silent
      break
    fi
  done
}

wasm() {
  local profile=dev dir=debug
  if [ "${1:-}" = "--release" ]; then profile=release; dir=release; fi
  log "building wasm ($profile)"
  cargo build --lib --target wasm32-unknown-unknown --profile "$profile"
  wasm-bindgen --target web --out-dir www/pkg --out-name sam2_webgpu \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$dir/sam2_webgpu.wasm"
  if [ "$profile" = release ]; then
    log "wasm-opt -Oz"
    node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals --enable-reference-types \
      www/pkg/sam2_webgpu_bg.wasm -o www/pkg/sam2_webgpu_bg.wasm
  fi
  ls -l www/pkg/sam2_webgpu_bg.wasm
}

run_tests() {
  log "native tests (unit, weights, parity on flex and wgpu)"
  cargo test --all-targets -- --test-threads=1
  wasm
  log "browser tests (headless Chromium, WebGPU via SwiftShader)"
  node --test --test-concurrency=1 tests/browser/
}

package() {
  wasm --release
  mkdir -p dist
  log "npm pack www -> dist/"
  npm pack ./www --pack-destination dist
}

serve() {
  local port="${1:-8080}"
  wasm --release
  log "serving $ROOT on http://127.0.0.1:$port/www/ (Ctrl-C stops)"
  exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$ROOT"
}

cmd="${1:-test}"; shift || true
case "$cmd" in
  setup) setup ;;
  wasm) setup; wasm "$@" ;;
  test) setup; run_tests ;;
  serve) setup; serve "$@" ;;
  package) setup; package ;;
  bench-browser) setup; node tools/bench/browser.mjs "$@" ;;
  *) echo "usage: $0 [setup|wasm [--release]|test|serve [PORT]|package|bench-browser [--runs N]]" >&2; exit 2 ;;
esac
