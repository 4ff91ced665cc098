# Sourced by the scripts that need a Python tool from PyPI. Debian 12's
# python3 may lack venv/pip, and its system pip refuses installs (PEP 668),
# so every tool lives in a virtualenv of its own under ~/.cache/orderly.

# ensure_venv DIR: creates the virtualenv DIR if needed (installing python3
# and python3-venv with apt when missing).
ensure_venv() {
  local dir=$1
  if [ -x "$dir/bin/pip" ]; then return; fi
  if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1 ||
    ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  python3 -m venv "$dir"
}
