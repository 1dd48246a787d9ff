#!/usr/bin/env bash
# Installs what the cross-target checks need, from Debian's packages only (rustup has no
# other targets here): a rustc 1.96 with its library source (rustc-web, used with
# -Zbuild-std=core), the lld it links with, qemu to run ARM firmware and aarch64 tests,
# and an aarch64 C toolchain to link the aarch64 test binaries.
# Idempotent: it installs only what is missing.
set -euo pipefail

pkgs=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 llvm-22
      qemu-system-arm qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross-setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
