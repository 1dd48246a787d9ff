#!/usr/bin/env bash
# Builds the firmware example (examples/firmware) for the Cortex-M boards and runs it
# under QEMU with semihosting.
#
#   scripts/firmware.sh run an386     Cortex-M4F (mps2-an386), thumbv7em-none-eabihf
#   scripts/firmware.sh run an547     Cortex-M55 (mps3-an547), thumbv8m.main-none-eabihf
#   scripts/firmware.sh check         both boards, then the host test compares their
#                                     weights hash, epoch losses and accuracy with the
#                                     host's (tests/firmware_parity.rs)
#   scripts/firmware.sh size          .text by origin at opt-level "s" and 3
#
# Uses Debian's rustc-web (scripts/cross-setup.sh installs it) with -Zbuild-std=core,
# since rustup has no ARM targets here. Logs go to target/firmware/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/cross-setup.sh

board_target() {
  case "$1" in
    an386) echo "mps2-an386 thumbv7em-none-eabihf" ;;
    an547) echo "mps3-an547 thumbv8m.main-none-eabihf" ;;
    *) echo "unknown board '$1' (an386 or an547)" >&2; return 2 ;;
  esac
}

# build TARGET [PROFILE]: builds the ELF (`elf` gives its path). With `no-panic-proof`
# the panic handler calls a function defined nowhere, so the build links only if the
# optimised firmware has no panic path: every binary run or measured here is proven.
# Called as a command, not in `$(...)`: there a failed build (a panic path's failed
# link among them) would go unnoticed and leave the previous ELF to be run.
build() {
  local target=$1 profile=${2:-release}
  (cd examples/firmware &&
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --locked --quiet \
      --profile "$profile" -Zbuild-std=core -Zbuild-std-features=compiler-builtins-mem \
      --features no-panic-proof --target "$target" --target-dir "$root/target/cross" >&2)
}

# elf TARGET [PROFILE]: the path `build` writes.
elf() {
  echo "$root/target/cross/$1/${2:-release}/mlp-kernels-firmware"
}

# run BOARD: runs the firmware, its output on stdout and in target/firmware/BOARD.log.
run() {
  local machine target elf
  read -r machine target < <(board_target "$1")
  build "$target"
  elf=$(elf "$target")
  mkdir -p target/firmware
  echo "== $machine ($target): $elf" >&2
  # QEMU exits with the firmware's semihosting exit status; a hang is a failure.
  timeout 600 qemu-system-arm -machine "$machine" -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" | tee "target/firmware/$1.log"
  return "${PIPESTATUS[0]}"
}

size() {
  local target elf profile
  for profile in release release-o3; do
    for target in thumbv7em-none-eabihf thumbv8m.main-none-eabihf; do
      build "$target" "$profile"
      elf=$(elf "$target" "$profile")
      echo "== $target, profile $profile"
      llvm-size-22 -A "$elf" | grep -E '^\.(vector_table|text|rodata|data|bss) '
      python3 scripts/firmware_size.py "$elf"
    done
  done
}

case "${1:-check}" in
  run) run "${2:-an386}" ;;
  size) size ;;
  check)
    run an386
    run an547
    FIRMWARE_LOGS="$root/target/firmware/an386.log:$root/target/firmware/an547.log" \
      cargo test --test firmware_parity -- --nocapture
    ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
