# Sourced by the hack/ scripts that supply a pinned binary built from the Go module proxy
# (seaweedfs.sh, registry.sh): the cache they share, and how a binary gets into it.

# PODIUM_CACHE_ROOT is where provisioned binaries are cached, outside the repository.
PODIUM_CACHE_ROOT="${PODIUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/podium}"

# provision BIN BUILD prints BIN, the path of a binary in its own cache directory, after building
# it with the function BUILD unless it is there already. BUILD gets a temporary path in the same
# directory to write the binary to; the binary is moved into place only when BUILD succeeds, so
# the cache never holds a half-written file. One provisioner at a time: a second run waits for the
# first, then finds the binary in place. The caller defines log.
provision() {
  local bin=$1 build=$2
  local dir
  dir="$(dirname "$bin")"
  mkdir -p "$dir"
  if [[ -x "$bin" ]]; then
    echo "$bin"
    return 0
  fi
  exec 9>"$dir/.lock"
  if ! flock -n 9; then
    log "another run is provisioning $dir; waiting for it"
    flock 9
  fi
  if [[ ! -x "$bin" ]]; then
    rm -f "$dir"/.tmp.*
    local tmp
    tmp="$dir/.tmp.$(basename "$bin").$$"
    if ! "$build" "$tmp"; then
      rm -f "$tmp"
      return 1
    fi
    chmod +x "$tmp"
    mv -f "$tmp" "$bin"
    log "ready at $bin"
  fi
  echo "$bin"
}
