# Shared by run-against-ganesha.sh and run-against-weir.sh: installs what the suite needs
# when it is missing, and finds free things. Source it; it defines functions only.

NFSTESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

say() { echo "nfs-tests: $*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }

apt_updated=""
# apt_install PKG...: install Debian packages (as root), once per run.
apt_install() {
    if ! is_root || ! command -v apt-get >/dev/null; then
        say "missing Debian packages: $* (install them: sudo apt-get install -y $*)"
        return 1
    fi
    if [ -z "$apt_updated" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
        apt_updated=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# need CMD:PKG ...: make sure each command exists, installing its package when missing.
need() {
    local missing=() spec
    for spec in "$@"; do
        command -v "${spec%%:*}" >/dev/null 2>&1 || [ -x "${spec%%:*}" ] || missing+=("${spec#*:}")
    done
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# A Python 3.11 or 3.12 (pyNfsClient needs xdrlib, gone in 3.13) that can make a venv.
find_python() {
    local py
    for py in /usr/bin/python3 "$(command -v python3 2>/dev/null)" "$(command -v python3.11 2>/dev/null)"; do
        [ -n "$py" ] && [ -x "$py" ] || continue
        "$py" -c 'import sys, venv, ensurepip; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' \
            2>/dev/null && { echo "$py"; return 0; }
    done
    return 1
}

# The Python packages of the NFS and SMB suites: one venv holds both.
REQUIREMENTS=("$NFSTESTS_DIR/requirements.txt" "$NFSTESTS_DIR/../smb/requirements.txt")

# ensure_venv: prints the python of a venv with $REQUIREMENTS installed, kept in a cache
# directory outside the clone and keyed by a hash of the requirements and the interpreter.
ensure_venv() {
    local py
    py="$(find_python)" || { apt_install python3 python3-venv >/dev/null || return 1; py="$(find_python)"; } \
        || { say "no Python 3.11/3.12 with venv found"; return 1; }
    local cache="${WEIR_TESTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir-tests}"
    local key
    key="$( { cat "${REQUIREMENTS[@]}"; readlink -f "$py"; "$py" -V; } 2>&1 | sha256sum | cut -c1-16)"
    local venv="$cache/nfs-venv-$key"
    mkdir -p "$cache"
    (
        flock 9
        if [ ! -e "$venv/.complete" ]; then
            rm -rf "$venv"
            say "creating $venv"
            "$py" -m venv "$venv" >&2 &&
                "$venv/bin/python" -m pip install -q --disable-pip-version-check \
                    "${REQUIREMENTS[@]/#/-r}" >&2 &&
                touch "$venv/.complete"
        fi
    ) 9>"$cache/.nfs-venv.lock" || return 1
    [ -e "$venv/.complete" ] || return 1
    echo "$venv/bin/python"
}

# wait_port HOST PORT SECONDS: wait until something accepts TCP connections there.
wait_port() {
    local host=$1 port=$2 deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# stop_pid PID [NAME]: TERM, then KILL after 10 s; only the given process.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    say "${2:-process} $pid did not stop on TERM; killing it"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# run_suite PYTHON [pytest args]: run the suite with its own rootdir; returns pytest's code.
run_suite() {
    local py=$1
    shift
    (cd "$NFSTESTS_DIR" && "$py" -m pytest -p no:cacheprovider -rfEsxX "$@")
}
