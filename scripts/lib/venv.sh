# Shared by scripts/interop.sh and scripts/fuzz.sh (sourced, not run): installing Debian packages,
# and a Python venv rebuilt only when its requirements file changes.

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

# apt_install PKG...: installs Debian packages quietly.
apt_install() {
  echo "== installing $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# ensure_venv VENV REQUIREMENTS BIN: makes VENV from REQUIREMENTS (pip), unless it was made from
# the same file (its sha256 is kept in VENV/.requirements.sha256) and VENV/bin/BIN exists.
ensure_venv() {
  local venv=$1 reqs=$2 bin=$3 py=${PYTHON:-python3} want have
  want=$(sha256sum "$reqs" | cut -d' ' -f1)
  have=$(cat "$venv/.requirements.sha256" 2>/dev/null || true)
  if [ "$want" != "$have" ] || [ ! -x "$venv/bin/$bin" ]; then
    echo "== creating $venv (${reqs##*/} ${want:0:12})"
    rm -rf "$venv"
    if ! "$py" -m venv "$venv" 2>/dev/null; then
      rm -rf "$venv"
      apt_install python3-venv
      "$py" -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r "$reqs"
    echo "$want" >"$venv/.requirements.sha256"
  else
    echo "== reusing $venv (${reqs##*/} ${want:0:12})"
  fi
}
