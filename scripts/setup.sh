#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: Debian packages, the
# project's virtualenv, and the guest assets (kernel + initrd). Each step
# checks first and does nothing when already satisfied, so `make test` can
# call it every time.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
mapfile -t PACKAGES < <(grep -v '^\s*#' scripts/debian-packages.txt | grep -v '^\s*$')

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# --- Debian packages ------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
# The guest's Python is taken from Debian packages with `apt-get download`,
# which needs package lists even when nothing is missing on the host.
if (( ${#missing[@]} )) || ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    say "updating package lists"
    $SUDO apt-get update -q
fi
if (( ${#missing[@]} )); then
    say "installing Debian packages: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    # docker.io is installed for the tests, which start a private dockerd: the system one
    # its package enables would take over the host's bridges and iptables. Not ours to run.
    if [[ " ${missing[*]} " == *" docker.io "* && -d /run/systemd/system ]]; then
        say "stopping the system dockerd the docker.io package started (tests run their own)"
        $SUDO systemctl disable --now docker.service docker.socket || true
    fi
fi

# --- virtualenv -------------------------------------------------------------
# Debian's interpreter, not whatever `python3` a shell shim points at.
PY=/usr/bin/python3
stamp="$VENV/.strongbox-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
    say "creating virtualenv $VENV"
    [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    rm -f "$VENV"/.strongbox-*
    touch "$stamp"
fi

# --- guest assets (cached by the hash of their inputs) ----------------------
"$VENV/bin/strongbox" guest build
