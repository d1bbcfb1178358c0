#!/usr/bin/env bash
# Install what nova_nb's browser tests need beyond the Python packages: Debian's chromium (driven by
# Playwright with executable_path, so no 'playwright install' download) and fonts to render pages.
#
# Idempotent: does nothing when chromium is already there. Installs with apt-get only as root on a
# Debian/Ubuntu system; otherwise it prints what to do and exits 0, and the browser tests skip with
# that reason. Exit status is non-zero only when an install was attempted and failed.
set -euo pipefail

say() { printf '\033[1m[nova_nb]\033[0m %s\n' "$*" >&2; }

find_chromium() {
  if [ -n "${NOVA_NB_CHROMIUM:-}" ] && [ -x "$NOVA_NB_CHROMIUM" ]; then echo "$NOVA_NB_CHROMIUM"; return 0; fi
  for c in /usr/bin/chromium /usr/bin/chromium-browser; do
    [ -x "$c" ] && { echo "$c"; return 0; }
  done
  command -v chromium 2>/dev/null && return 0
  return 1
}

if path=$(find_chromium); then
  say "browser tests: chromium found at $path"
  exit 0
fi

if [ "$(id -u)" != "0" ]; then
  say "browser tests: chromium is not installed and this is not root, so they will be skipped."
  say "  to run them: sudo apt-get install -y chromium fonts-dejavu-core   (or set NOVA_NB_CHROMIUM)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "browser tests: chromium is not installed and there is no apt-get here; they will be skipped."
  say "  install Chromium with your package manager, or point NOVA_NB_CHROMIUM at a Chromium binary"
  exit 0
fi

say "browser tests: installing chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
path=$(find_chromium) || { say "chromium was installed but is not on the expected paths"; exit 1; }
say "browser tests: $("$path" --version 2>/dev/null | head -1 || echo chromium) at $path"
