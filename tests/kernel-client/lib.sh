# Shared by the run-*.sh scripts (sourced, not run): starting nfs-ganesha and
# `weir serve` on this host for a guest run, so each script says only what
# differs. Every function logs through the caller's `log`.

# Install what ganesha needs (root).
ensure_ganesha_packages() {
    local missing=() p
    for p in nfs-ganesha nfs-ganesha-vfs rpcbind netcat-openbsd; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update -q >&2
        apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
}

# Exit 2 when something already listens on one of the ports.
ensure_ports_free() {
    local port
    for port in "$@"; do
        if nc -z 127.0.0.1 "$port" 2>/dev/null; then log "port $port is already in use"; exit 2; fi
    done
}

# wait_ports PID PORT...: until every port answers (30 s) or PID exits; 1 if not up.
wait_ports() {
    local pid=$1 port
    shift
    for _ in $(seq 300); do
        local up=1
        for port in "$@"; do nc -z 127.0.0.1 "$port" 2>/dev/null || up=0; done
        ((up)) && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Stop a server this script started (its wrapper stops what it started).
stop_pid() {
    if [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; then
        kill "$1"
        wait "$1" 2>/dev/null || true
    fi
}

# start_ganesha WORK EXPORT_DIR NFS_PORT MOUNT_PORT: nfs-ganesha (VFS) exporting
# EXPORT_DIR at /export on 127.0.0.1; sets ganesha_pid; config and logs in WORK.
# rpcbind runs in a private network namespace and both in a private mount
# namespace with their own /run, so nothing here touches another rpcbind or
# ganesha on the machine.
start_ganesha() {
    local work=$1 export_dir=$2 nfs_port=$3 mnt_port=$4
    mkdir -p "$export_dir"
    cat >"$work/ganesha.conf" <<CONF
NFS_CORE_PARAM {
    Protocols = 3;
    Bind_addr = 127.0.0.1;
    NFS_Port = $nfs_port;
    MNT_Port = $mnt_port;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = true;
}
NFSV4 { Graceless = true; }
EXPORT {
    Export_Id = 1;
    Path = "$export_dir";
    Pseudo = "/export";
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = None;
    SecType = sys;
    FSAL { Name = VFS; }
}
CONF
    # The wrapper is PID $ganesha_pid: it starts rpcbind and ganesha, and stops both on TERM.
    unshare -m --propagation private bash -c '
        set -e
        mount -t tmpfs -o mode=0755 tmpfs /run
        mkdir -p /run/rpcbind /run/ganesha
        unshare -n rpcbind -w -f &
        rpcbind_pid=$!
        for _ in $(seq 100); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
        ganesha.nfsd -F -f "$1/ganesha.conf" -L "$1/ganesha.log" -p "$1/ganesha.pid" &
        ganesha_pid=$!
        trap "kill \$ganesha_pid \$rpcbind_pid 2>/dev/null; wait" TERM INT
        wait $ganesha_pid
        echo "ganesha exited ($?)" >&2
        kill $rpcbind_pid 2>/dev/null
        wait
    ' ganesha-wrapper "$work" >"$work/wrapper.log" 2>&1 &
    ganesha_pid=$!
    if ! wait_ports "$ganesha_pid" "$nfs_port" "$mnt_port"; then
        log "ganesha did not start; logs in $work"
        tail -n 20 "$work/wrapper.log" "$work/ganesha.log" >&2 || true
        return 1
    fi
    log "ganesha serving $export_dir on 127.0.0.1:$nfs_port (MOUNT $mnt_port); work dir $work"
}

# build_weir ROOT: build target/debug/weir and print its path; WEIR_BIN, when
# set, is the binary to use instead (`cargo xtask test` builds it once).
build_weir() {
    if [[ -n ${WEIR_BIN:-} ]]; then
        [[ -x $WEIR_BIN ]] || { log "no weir binary at WEIR_BIN=$WEIR_BIN"; return 1; }
        echo "$WEIR_BIN"
        return
    fi
    log "building weir"
    (cd "$1" && "${CARGO:-cargo}" build --quiet --bin weir)
    local weir=${CARGO_TARGET_DIR:-$1/target}/debug/weir
    [[ $weir == /* ]] || weir=$1/$weir
    echo "$weir"
}

# start_weir WEIR WORK PORT SERVE_ARGS...: `weir serve` with a fresh data dir
# in WORK, NFS, MOUNT and NLM on 127.0.0.1:PORT; sets weir_pid; log in WORK/weir.log.
# The guest works as root and reaches Weir through qemu's forwarder (an
# unprivileged port on 127.0.0.1): tests/weir-root-export.toml says both are
# fine. WEIR_CONFIG, when set, is the config file instead (it must say the same).
start_weir() {
    local weir=$1 work=$2 port=$3
    shift 3
    mkdir -p "$work/data"
    "$weir" serve --config "${WEIR_CONFIG:-$(dirname "${BASH_SOURCE[0]}")/../weir-root-export.toml}" \
        --data-dir "$work/data" \
        --nfs-listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --smb-listen 127.0.0.1:0 \
        "$@" >"$work/weir.log" 2>&1 &
    weir_pid=$!
    if ! wait_ports "$weir_pid" "$port"; then
        log "FAIL: weir is not serving NFS on 127.0.0.1:$port after 30 s; log in $work/weir.log:"
        tail -n 20 "$work/weir.log" >&2
        return 1
    fi
}

# finish STATUS WORK: say PASS (and remove WORK unless KCLIENT_KEEP is set) or
# FAIL (keeping WORK for its logs), and exit with STATUS.
finish() {
    if (($1 == 0)); then
        log "PASS"
        [[ -n ${KCLIENT_KEEP:-} ]] || rm -rf "$2"
    else
        log "FAIL (status $1); logs in $2"
    fi
    exit "$1"
}
