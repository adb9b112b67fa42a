#!/usr/bin/env bash
# Builds the AssemblyScript example guests (as-echo, as-counter, as-coop)
# into plugins/examples/as-<name>/as-<name>.wasm.
#
#   build-as.sh           rebuild and overwrite the committed .wasm files
#   build-as.sh --check   rebuild into a temp dir; exit 1 if any differs
#
# A missing toolchain is not an error: the project's tests need Go only, so
# the script says "skipped: <tool> not installed" and exits 0.
#
# The compiler comes from npm and is never committed; install it with
#   npm install --prefix /tmp/as-toolchain assemblyscript@0.28.20
# (or into sdk-guest/assemblyscript, whose node_modules is ignored), or point
# ASC at an asc binary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
want_version=0.28.20
check=0
if [ "${1:-}" = "--check" ]; then check=1; fi

if [ -z "${ASC:-}" ]; then
	for c in "$repo/sdk-guest/assemblyscript/node_modules/.bin/asc" \
		/tmp/as-toolchain/node_modules/.bin/asc "$(command -v asc || true)"; do
		if [ -n "$c" ] && [ -x "$c" ]; then ASC=$c; break; fi
	done
fi
if [ -z "${ASC:-}" ] || ! command -v "$ASC" >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	echo "build-as: skipped: assemblyscript (asc) not installed"
	exit 0
fi
got=$("$ASC" --version 2>/dev/null | sed 's/^Version //' || true)
if [ "$got" != "$want_version" ]; then
	# Another compiler version emits other bytes, so comparing is meaningless.
	if [ $check = 1 ]; then
		echo "build-as: skipped: assemblyscript $want_version not installed (found ${got:-no usable version})"
		exit 0
	fi
	echo "build-as: warning: assemblyscript $got, the committed modules use $want_version"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

status=0
for name in echo counter coop; do
	dir=as-$name
	out="$tmp/$dir.wasm" want="$here/$dir/$dir.wasm"
	# --use abort= drops the env.abort import (aborts become traps);
	# --runtime stub is a bump allocator without GC, the smallest runtime.
	(cd "$here" && "$ASC" "$dir/$name.ts" -O3 --noAssert --runtime stub --use abort= -o "$out")
	if [ $check = 1 ]; then
		if cmp -s "$out" "$want"; then
			echo "build-as: $dir.wasm up to date"
		else
			echo "build-as: $dir.wasm differs from a fresh build"
			status=1
		fi
	else
		cp "$out" "$want"
		echo "build-as: wrote $want ($(wc -c <"$want") bytes)"
	fi
done
exit $status
