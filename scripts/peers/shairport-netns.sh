#!/bin/bash
# shairport-netns.sh — a real RAOP (AirPlay 1) receiver for tests: shairport-sync 3.3.8 on
# 127.0.0.1 inside a private network namespace, with its own dbus-daemon and avahi-daemon (it will
# not start without mDNS; avahi never runs in the main namespace). The PCM it plays (44.1 kHz s16le
# stereo, volume ignored) goes to a file. Needs root (ip netns).
#
# Usage:
#   shairport-netns.sh start OUTFILE [PORT]      start; prints the namespace name (e.g. atv-sp-1234)
#                                                 on stdout once RTSP answers on 127.0.0.1:PORT
#   shairport-netns.sh stop NAME                  stop everything started for NAME, delete the namespace
#   shairport-netns.sh run OUTFILE [PORT] -- CMD… start, run CMD inside the namespace, stop;
#                                                 exits with CMD's status
#   in-netns.sh NAME CMD…                         run a command inside the namespace (sender, test…)
#
# PORT is the RTSP port (default 5000). shairport-sync's UDP ports are PORT+1001 … PORT+1010
# (6001–6010 for 5000). Inside the namespace only 127.0.0.1 exists; nothing leaks to the host
# network. State, configs and logs live in /tmp/atv-peers/NAME/ (kept after stop if KEEP_LOGS=1).
# Environment: SP_NAME (service name, default "ATVTest"), SP_PASSWORD (optional RTSP password),
# SP_TIMEOUT (seconds to wait for readiness, default 15), SP_VERBOSE=1 (shairport-sync -vv),
# SP_GENERAL_EXTRA (extra lines for the `general` section, e.g. 'audio_backend_silent_lead_in_time = 1.0;').
#
# Helpers next to this script: raop-probe.py (minimal ALAC RAOP sender, answers timing and
# retransmit requests), pcm-compare.py SENT CAPTURE (where the sent PCM appears in the capture),
# udp-loss-relay.py and rtsp-port-proxy.py (put a seeded lossy UDP relay into the audio path).
# Example (≈ 1.1 s start-up, then the sender):
#   shairport-netns.sh run /tmp/cap.pcm 5000 -- python3 raop-probe.py --seconds 2 --sent /tmp/sent.pcm
#   python3 pcm-compare.py /tmp/sent.pcm /tmp/cap.pcm
#
# Observed with shairport-sync 3.3.8 (Debian) here:
# - Audio that was sent is written bit-exact (ignore_volume_control); the silence it generates
#   itself before the first frame is dithered (samples 0 / -1), so find the start by |x| > 1.
# - It plays the first frame at sync time + (sync latency field + 11025 frames) and replaces the
#   first 9 packets (3168 frames, 71.8 ms) of a session with silence, whatever the order of
#   timing replies and sync, the start delay (0–1.5 s) or the latency (11025–77175).
# - It sent 7 timing requests per 3–4 s session; its log shows an Audio-Latency: 11025 header.
# - Retransmit requests (0x80 0xD5) arrive on the sender's control port for lost packets.
# - `diagnostics.drop_this_fraction_of_audio_packets` is a built-in alternative to the relay.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
state_root=/tmp/atv-peers

die() { echo "shairport-netns: $*" >&2; exit 1; }

# Kill the pids recorded for NAME, then anything still inside the namespace (all started by us).
stop_ns() {
    local name=$1 dir=$state_root/$1
    [[ $name == atv-sp-* ]] || die "refusing to stop '$name' (not a namespace made by this script)"
    if [[ -f $dir/pids ]]; then
        while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done < "$dir/pids"
    fi
    if ip netns list | grep -qw "$name"; then
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [[ -z $(ip netns pids "$name" 2>/dev/null) ]] && break
            sleep 0.2
        done
        for pid in $(ip netns pids "$name" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns delete "$name" 2>/dev/null || true
    fi
    [[ ${KEEP_LOGS:-0} == 1 ]] || rm -rf "$dir"
}

start_ns() {
    local out=$1 port=${2:-5000}
    [[ $(id -u) == 0 ]] || die "needs root (ip netns)"
    command -v shairport-sync >/dev/null || die "shairport-sync is not installed (apt-get install shairport-sync)"
    command -v avahi-daemon >/dev/null || die "avahi-daemon is not installed (apt-get install avahi-daemon)"
    command -v dbus-daemon >/dev/null || die "dbus-daemon is not installed (apt-get install dbus)"
    local name=atv-sp-$$ udp_base=$((port + 1001))
    local dir=$state_root/$name
    mkdir -p "$dir" && chmod 700 "$dir"
    : > "$out"
    out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

    ip netns add "$name"
    trap 'stop_ns "$name"' ERR
    ip -n "$name" link set lo up
    ip -n "$name" link set lo multicast on

    # Private system bus: avahi-daemon and shairport-sync's avahi client find it through
    # DBUS_SYSTEM_BUS_ADDRESS; the socket lives in our state directory.
    cat > "$dir/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/dbus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
    ip netns exec "$name" dbus-daemon --config-file="$dir/dbus.conf" --nofork --nopidfile \
        > "$dir/dbus.log" 2>&1 &
    echo $! >> "$dir/pids"
    export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$dir/dbus.sock
    for _ in $(seq 50); do [[ -S $dir/dbus.sock ]] && break; sleep 0.1; done
    [[ -S $dir/dbus.sock ]] || die "dbus-daemon did not start (see $dir/dbus.log)"

    # avahi-daemon on lo only. Its pid file and socket are fixed paths under /run/avahi-daemon, so
    # it gets a private mount namespace with a tmpfs there (other namespaces may run their own).
    cat > "$dir/avahi.conf" <<EOF
[server]
host-name=$name
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
publish-addresses=yes
EOF
    mkdir -p /run/avahi-daemon
    ip netns exec "$name" unshare --mount --propagation private sh -c \
        'mount -t tmpfs -o mode=0755 tmpfs /run/avahi-daemon && exec avahi-daemon -f "$1" --no-drop-root --no-chroot --no-rlimits' \
        sh "$dir/avahi.conf" > "$dir/avahi.log" 2>&1 &
    echo $! >> "$dir/pids"
    for _ in $(seq 100); do grep -q "Server startup complete" "$dir/avahi.log" && break; sleep 0.1; done
    grep -q "Server startup complete" "$dir/avahi.log" || die "avahi-daemon did not start (see $dir/avahi.log)"

    local password_line=""
    [[ -n ${SP_PASSWORD:-} ]] && password_line="password = \"$SP_PASSWORD\";"
    cat > "$dir/shairport-sync.conf" <<EOF
general = {
  name = "${SP_NAME:-ATVTest}";
  port = $port;
  udp_port_base = $udp_base;
  udp_port_range = 10;
  mdns_backend = "avahi";
  output_backend = "stdout";
  ignore_volume_control = "yes";
  $password_line
  ${SP_GENERAL_EXTRA:-}
};
metadata = {
  enabled = "no";  // otherwise it creates /tmp/shairport-sync-metadata on the shared filesystem
};
sessioncontrol = {
  allow_session_interruption = "yes";
  session_timeout = 20;
};
EOF
    local verbose=()
    [[ ${SP_VERBOSE:-0} == 1 ]] && verbose=(-vv)
    # -u: log to stderr; -o stdout: PCM to stdout, redirected to the output file.
    ip netns exec "$name" shairport-sync -c "$dir/shairport-sync.conf" -u "${verbose[@]}" \
        > "$out" 2> "$dir/shairport-sync.log" &
    echo $! >> "$dir/pids"

    local deadline=$((SECONDS + ${SP_TIMEOUT:-15}))
    until ip netns exec "$name" python3 - "$port" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
sys.exit(0 if s.recv(4096).startswith(b"RTSP/1.0 ") else 1)
EOF
    do
        (( SECONDS < deadline )) || die "shairport-sync did not answer on port $port (see $dir/shairport-sync.log)"
        kill -0 "$(tail -1 "$dir/pids")" 2>/dev/null || die "shairport-sync exited: $(tail -3 "$dir/shairport-sync.log")"
        sleep 0.1
    done
    trap - ERR
    echo "$name"
}

case ${1:-} in
    start)
        [[ $# -ge 2 ]] || die "usage: $0 start OUTFILE [PORT]"
        start_ns "$2" "${3:-5000}" ;;
    stop)
        [[ $# -eq 2 ]] || die "usage: $0 stop NAME"
        stop_ns "$2" ;;
    run)
        [[ $# -ge 2 ]] || die "usage: $0 run OUTFILE [PORT] -- CMD..."
        out=$2; shift 2
        port=5000
        if [[ ${1:-} != -- ]]; then port=${1:-5000}; shift || true; fi
        [[ ${1:-} == -- ]] || die "usage: $0 run OUTFILE [PORT] -- CMD..."
        shift
        name=$(start_ns "$out" "$port")
        trap 'stop_ns "$name"' EXIT INT TERM
        status=0
        "$here/in-netns.sh" "$name" "$@" || status=$?
        exit $status ;;
    *)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 2 ;;
esac
