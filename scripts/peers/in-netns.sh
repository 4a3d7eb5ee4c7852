#!/bin/bash
# in-netns.sh NAME CMD… — run CMD inside a namespace made by shairport-netns.sh (only 127.0.0.1
# there), with the same user, environment and working directory. Exits with CMD's status.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 NAME CMD..." >&2; exit 2; }
name=$1; shift
[[ $name == atv-* ]] || { echo "in-netns: '$name' is not a test namespace" >&2; exit 2; }
exec ip netns exec "$name" "$@"
