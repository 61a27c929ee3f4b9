#!/usr/bin/env bash
# Supplies a headless-capable Chromium, the real browser that the page tests drive through the
# DevTools protocol (internal/testbrowser, with chromedp).
#
# Google's Chrome for Testing downloads, which browser test tools usually fetch on first use, are
# not reachable here, so this uses Debian's chromium package instead, from apt. It is installed
# system-wide rather than cached outside the repository like the other provisioned binaries:
#
#   /usr/bin/chromium   (or $PODIUM_CHROMIUM, taken as is, when set)
#
# The package is installed without its recommended packages (fonts beyond the default, the
# sandbox helper, desktop integration): the tests run Chromium headless and without its sandbox.
# Installing needs root; when not root, this tries sudo without a password prompt and otherwise
# fails, saying what to install.
#
# Usage: hack/chromium.sh          installs the package unless present and prints the binary's path
#        hack/chromium.sh --path   prints the path only, installing nothing
set -euo pipefail

BIN="${PODIUM_CHROMIUM:-/usr/bin/chromium}"

if [[ "${1:-}" == "--path" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "chromium: $*" >&2; }

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

if [[ -n "${PODIUM_CHROMIUM:-}" ]]; then
  log "PODIUM_CHROMIUM is set to $BIN, which is not an executable; unset it to use Debian's chromium package"
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found; install Chromium with your system's package manager and set PODIUM_CHROMIUM to its binary"
  exit 1
fi

# SUDO runs apt-get as root: directly when root, through sudo (without a prompt) otherwise.
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    log "not root and sudo is not available without a password; install Debian's chromium package" \
      "as root (apt-get install -y --no-install-recommends chromium), or set PODIUM_CHROMIUM to a Chromium binary"
    exit 1
  fi
fi

apt_install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends chromium >&2
}

log "installing Debian's chromium package (apt-get install --no-install-recommends chromium)"
if ! apt_install; then
  # Usually a missing or stale package list (a fresh container has none): refresh it once.
  log "install failed; updating the package lists (apt-get update) and retrying"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  apt_install
fi

if [[ ! -x "$BIN" ]]; then
  log "the chromium package is installed but $BIN is missing"
  exit 1
fi
log "ready at $BIN ($("$BIN" --version 2>/dev/null || echo "version unknown"))"
echo "$BIN"
