#!/usr/bin/env bash
# Installs what building and testing Carry needs on a fresh Debian machine: a C
# toolchain, make and perl (SQLCipher and its vendored OpenSSL are compiled from
# source), Python 3 (schema checks), and a JDK with Maven (the Kotlin tests). Rust
# comes from rustup, which the machine image provides.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v make >/dev/null 2>&1 || need+=(make)
command -v perl >/dev/null 2>&1 || need+=(perl)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
command -v strip >/dev/null 2>&1 || need+=(binutils)
# The demo makes its NHS login client key with the openssl command.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The JVM test toolchain: a JDK and Maven; Maven fetches the rest from Maven Central.
command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
for c in rustfmt clippy; do
  if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$c"
  fi
done
# The dependency advisory scan (`make audit`) reads the offline RustSec snapshot in
# ../shared/advisory-db with cargo-audit, pinned.
if ! cargo audit --version 2>/dev/null | grep -q ' 0.22.2$'; then
  echo "installing cargo-audit 0.22.2"
  cargo install cargo-audit --locked --version 0.22.2 --quiet
fi
# A clean `make test` leaves about 6 GB under target/ (debug build, test binaries,
# the Python and PostgreSQL scratch); say so up front rather than fail mid-build.
mkdir -p target
free_kb=$(df -Pk target | awk 'NR==2 {print $4}')
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((7 * 1024 * 1024)) ]; then
  echo "warning: $((free_kb / 1024)) MB free where target/ lives; a clean make test needs about 6 GB" >&2
fi
