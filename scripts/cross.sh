#!/usr/bin/env bash
# Builds and tests mlp-kernels on the targets that the host toolchain cannot reach.
#
#   scripts/cross.sh consumer   the no_std consumer (tests/no_std_consumer) for
#                               thumbv7em-none-eabihf, thumbv8m.main-none-eabihf,
#                               x86_64-unknown-none (no SSE) and wasm32-unknown-unknown,
#                               linked to prove no panic path on the three ELF targets
#   scripts/cross.sh aarch64    the crate's full `cargo test` for aarch64-unknown-linux-gnu
#                               (NEON through `wide`), run under qemu-aarch64; not the
#                               benches package, whose peers (gemm, criterion) took
#                               most of the step's build time and test nothing there
#
# rustup has no other targets here, so both use Debian's rustc-web (1.96, with its
# library source) and -Zbuild-std; scripts/cross-setup.sh installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/cross-setup.sh
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
cargo=/usr/bin/cargo

consumer_build() {
  $cargo build --locked --release --manifest-path tests/no_std_consumer/Cargo.toml \
    -Zbuild-std=core -Zbuild-std-features=compiler-builtins-mem \
    --target-dir "$root/target/cross" --target "$@"
}

consumer() {
  local t lib
  for t in thumbv7em-none-eabihf thumbv8m.main-none-eabihf x86_64-unknown-none \
    wasm32-unknown-unknown; do
    echo "== no_std consumer for $t"
    consumer_build "$t"
    # The link-time proof of no panic path (scripts/no-panic.sh) on the ELF targets.
    lib=$root/target/cross/$t/release/libno_std_consumer.a
    [ "$t" = wasm32-unknown-unknown ] || bash scripts/no-panic.sh link "$lib"
  done
  echo "== negative control for thumbv7em-none-eabihf: a reachable panic must fail the link"
  consumer_build thumbv7em-none-eabihf --features reachable-panic
  lib=$root/target/cross/thumbv7em-none-eabihf/release/libno_std_consumer.a
  local log
  log=$(ld.lld-22 --gc-sections --entry=mlp_kernels_negative_control -u mlp_kernels_smoke \
    -o /dev/null "$lib" 2>&1 || true)
  if grep -q mlp_kernels_reached_a_panic <<<"$log"; then
    echo "negative control: the reachable panic fails the link, as it must"
  else
    echo "a reachable panic linked on thumbv7em-none-eabihf: the proof proves nothing" >&2
    exit 1
  fi
  # Leave the proven build in place for anything that reads it later.
  consumer_build thumbv7em-none-eabihf
}

aarch64() {
  echo "== cargo test for aarch64-unknown-linux-gnu under qemu-aarch64"
  # Without debug info: nothing here is debugged, and the build (std included) took
  # 349 s instead of 463 s on Zen 3.
  CARGO_PROFILE_DEV_DEBUG=false CARGO_PROFILE_TEST_DEBUG=false \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    $cargo test --locked -Zbuild-std --target aarch64-unknown-linux-gnu -p mlp-kernels \
      --target-dir "$root/target/cross" "$@"
}

case "${1:-}" in
  consumer) consumer ;;
  aarch64) shift; aarch64 "$@" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
