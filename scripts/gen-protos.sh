#!/usr/bin/env bash
# Regenerates Sources/ATVMRP/Generated/*.pb.swift from Protos/*.proto.
# The generated files are committed; run this only after editing a .proto.
#  - protoc: Debian's protobuf-compiler (installed here if missing; not part of scripts/setup).
#  - protoc-gen-swift: built from apple/swift-protobuf at the version Package.swift uses, in a
#    scratch directory (.build-protoc, gitignored). Never the SwiftProtobufPlugin build-tool plugin.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT_PROTOBUF_VERSION=1.39.0
SCRATCH=.build-protoc
OUT=Sources/ATVMRP/Generated

if ! command -v protoc >/dev/null 2>&1; then
  echo "gen-protos: installing protobuf-compiler"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null
fi

mkdir -p "$SCRATCH"
SRC="$SCRATCH/swift-protobuf"
if [ ! -d "$SRC/.git" ]; then
  git -c advice.detachedHead=false clone -q --depth 1 --branch "$SWIFT_PROTOBUF_VERSION" https://github.com/apple/swift-protobuf.git "$SRC"
fi
PLUGIN="$SRC/.build/release/protoc-gen-swift"
if [ ! -x "$PLUGIN" ]; then
  echo "gen-protos: building protoc-gen-swift $SWIFT_PROTOBUF_VERSION (about a minute)"
  (cd "$SRC" && swift build -c release --product protoc-gen-swift >/dev/null)
fi

rm -rf "$OUT"
mkdir -p "$OUT"
protoc --plugin=protoc-gen-swift="$PLUGIN" \
       --swift_opt=Visibility=Package \
       --swift_out="$OUT" \
       -I Protos Protos/*.proto
echo "gen-protos: $(ls "$OUT" | wc -l) files in $OUT ($(protoc --version), protoc-gen-swift $("$PLUGIN" --version 2>/dev/null | awk '{print $NF}'))"
