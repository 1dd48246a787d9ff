#!/usr/bin/env bash
# Proves at link time that no panic is reachable from the public kernels.
#
#   scripts/no-panic.sh            the no_std consumer (tests/no_std_consumer, which
#                                  calls every public kernel on opaque inputs) for
#                                  the host, and the negative control
#   scripts/no-panic.sh link LIB   the proof for a consumer staticlib already built
#                                  for a bare-metal ELF target (scripts/cross.sh)
#
# The consumer's panic handler calls a function that is defined nowhere. It is built
# at opt-level 3 with fat LTO and panic=abort, and its staticlib is linked with only
# the consumer's entry point as a root, unused sections dropped and undefined
# symbols refused. A panic path that survives optimisation keeps the handler, so the
# link fails; a link that succeeds has none. On failure, scripts/panic_sites.py
# names the source lines (host objects only).
#
# The negative control builds the consumer once more with a function that indexes
# out of bounds on an opaque index, and requires that link to fail.
#
# On the host it also requires every SIMD intrinsic (`core::arch`'s `_mm*`) to be
# inlined in the proven object: one left out of line costs a call per vector. Its
# negative control adds a function that calls one out of line, and requires the
# check to find it.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${NO_PANIC_TARGET_DIR:-$PWD/target/no-panic}
mkdir -p "$target_dir"

# build [FEATURES]: the host staticlib, with line tables for panic_sites.py (they
# change no code). Called as a command (not in `$(...)`, where a failed build would
# go unnoticed and leave an older library in place).
build() {
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --locked --release --quiet --manifest-path tests/no_std_consumer/Cargo.toml \
    --target-dir "$target_dir" "$@"
}
host_lib=$target_dir/release/libno_std_consumer.a

# host_link LIB: a shared object whose roots are the consumer's exported functions.
host_link() {
  cc -shared -o "$target_dir/proof.so" -Wl,--no-undefined -Wl,--gc-sections \
    -Wl,--undefined=mlp_kernels_smoke -Wl,--undefined=mlp_kernels_negative_control \
    -Wl,--undefined=mlp_kernels_outlined_intrinsic "$1" 2>"$target_dir/link.log"
}

# elf_link LIB: a static executable that starts at the consumer's entry point.
elf_link() {
  ld.lld-22 --gc-sections --entry=mlp_kernels_smoke -u mlp_kernels_smoke \
    -o "$target_dir/proof.elf" "$1" 2>"$target_dir/link.log" &&
    # lld only warns about a missing entry point: require the root in the output.
    llvm-nm-22 --defined-only "$target_dir/proof.elf" | grep -qw mlp_kernels_smoke
}

# outlined: the SIMD intrinsics in the linked host object that are functions of their
# own (none when every one is inlined).
outlined() { nm -C "$target_dir/proof.so" | grep -E 'core_arch::.*::_mm'; }

# judge LINK LIB NAME
judge() {
  if "$1" "$2"; then
    echo "no panic path in $3: the consumer links without a panic handler"
    return 0
  fi
  if ! grep -q mlp_kernels_reached_a_panic "$target_dir/link.log"; then
    cat "$target_dir/link.log" >&2
    echo "the link of $3 failed for another reason" >&2
    exit 1
  fi
  echo "a panic path remains in $3: the link needs mlp_kernels_reached_a_panic" >&2
  [ "$1" = host_link ] && python3 scripts/panic_sites.py "$2" >&2
  exit 1
}

case "${1:-host}" in
  host)
    build
    judge host_link "$host_lib" "the host build"
    nm -D --defined-only "$target_dir/proof.so" | grep -qw mlp_kernels_smoke
    # The proven object runs, and every call in it succeeds: a call that always
    # returned Err would let the optimiser drop the kernel it was meant to cover.
    python3 -c 'import ctypes, sys; n = ctypes.CDLL(sys.argv[1]).mlp_kernels_smoke(); \
print(f"the proven consumer runs: {n} failed calls"); sys.exit(n != 0)' "$target_dir/proof.so"
    # A closure has not its caller's target features, so intrinsics called in one that
    # is not inlined stay out of line (the sparse rows' store lost 5% of an epoch so).
    if outlined >&2; then
      echo "the SIMD intrinsics above are called out of line: inline the code that calls them" >&2
      exit 1
    fi
    echo "every SIMD intrinsic is inlined in the proven consumer"
    build --features outlined-intrinsic
    host_link "$host_lib"
    if ! outlined >/dev/null; then
      echo "negative control: an intrinsic left out of line was not found, so the check checks nothing" >&2
      exit 1
    fi
    echo "negative control: an intrinsic left out of line is found, as it must be"
    build --features reachable-panic
    if host_link "$host_lib" || ! grep -q mlp_kernels_reached_a_panic "$target_dir/link.log"; then
      echo "negative control: a reachable panic linked, so the proof proves nothing" >&2
      exit 1
    fi
    echo "negative control: a reachable panic fails the link, as it must"
    ;;
  link) judge elf_link "$2" "$2" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
