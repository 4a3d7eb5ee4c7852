#!/bin/bash
# avahi-publish-netns.sh — avahi-daemon 0.8 (Debian) as an mDNS publisher for discovery tests.
#
# Run it INSIDE a private network namespace whose lo is up with multicast on, e.g.
#   unshare --net bash -c 'ip link set lo up; ip link set lo multicast on; avahi-publish-netns.sh --seconds 20 & …'
# It refuses to run in the main namespace (it checks that lo is the only interface).
#
# It gives avahi-daemon a private mount namespace: a tmpfs over /run/avahi-daemon (pid file,
# socket) and the static service files and hosts file of this directory (avahi-services/) bound
# over /etc/avahi/services and /etc/avahi/hosts; no D-Bus (enable-dbus=no), no chroot, no
# privilege drop, lo only. Published (SRV targets resolve through the hosts file, the addresses
# need not exist):
#   127.0.0.6 "Wohnzimmer"    Apple TV 4K (gen 2): MRP, AirPlay, RAOP, Companion with big (real-size)
#                             TXT records, so a legacy unicast answer for several service types at
#                             once exceeds 512 bytes: avahi then drops records *without* setting TC
#                             (its log says "not fitting in legacy unicast packet, dropping")
#   127.0.0.8 "Schlafzimmer"  Apple TV 3: DMAP, Home Sharing, AirPlay, RAOP (small TXT records)
# An answer for ONE service type fits in 512 bytes. (avahi drops records of a one-type answer too
# when several big instances of that type share one responder; a legacy query cannot recover them:
# avahi ignores legacy queries that carry known answers.)
# Prints "ready" on stdout once avahi reports every service established; exits after --seconds
# (default 30) or on SIGTERM, stopping avahi (which is also bounded by `timeout`: it never
# outlives --seconds + 15 s, even if this script is killed with SIGKILL). Logs: $AVAHI_LOG (default: a temp file, printed on failure).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=30
services_dir=$here/avahi-services
while [[ $# -gt 0 ]]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --services) services_dir=$2; shift 2 ;;
        *) echo "usage: $0 [--seconds N] [--services DIR]" >&2; exit 2 ;;
    esac
done
die() { echo "avahi-publish-netns: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root"
command -v avahi-daemon >/dev/null || die "avahi-daemon is not installed (apt-get install avahi-daemon)"
ifaces=$(ip -o link show | awk -F": " "{print \$2}" | tr "\n" " " | sed "s/ $//")
[[ $ifaces == lo ]] || die "not in a private network namespace (interfaces: $(echo $ifaces)); run it under unshare --net"
ip link show lo | grep -q MULTICAST || die "lo has no MULTICAST flag (ip link set lo multicast on)"

work=$(mktemp -d "${TMPDIR:-/tmp}/atv-avahi.XXXXXX")
log=${AVAHI_LOG:-$work/avahi.log}
cat > "$work/avahi.conf" <<EOF
[server]
host-name=atv-avahi-test
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=no
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
publish-addresses=yes
EOF
expected=$(ls "$services_dir"/*.service | wc -l)

unshare --mount --propagation private bash -c '
    set -e
    mount -t tmpfs -o mode=0755 tmpfs /run/avahi-daemon 2>/dev/null || { mkdir -p /run/avahi-daemon; mount -t tmpfs -o mode=0755 tmpfs /run/avahi-daemon; }
    mount --bind "$2" /etc/avahi/services
    mount --bind "$2/hosts" /etc/avahi/hosts
    exec timeout --kill-after=2 "$3" avahi-daemon -f "$1" --no-drop-root --no-chroot --no-rlimits
' sh "$work/avahi.conf" "$services_dir" "$((${seconds%.*} + 15))" > "$log" 2>&1 &
pid=$!
sleeper=
cleanup() {
    [[ -n $sleeper ]] && kill "$sleeper" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' TERM INT

for _ in $(seq 100); do
    n=$(grep -c "successfully established" "$log" || true)
    [[ $n -ge $expected ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "avahi-daemon exited"; }
    sleep 0.1
done
n=$(grep -c "successfully established" "$log" || true)
[[ $n -ge $expected ]] || { cat "$log" >&2; die "only $n of $expected services established"; }
echo ready
sleep "$seconds" &
sleeper=$!
wait "$sleeper" || true
