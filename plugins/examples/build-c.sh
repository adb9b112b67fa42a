#!/usr/bin/env bash
# Builds the C and C++ example guests (c-echo, c-counter, c-coop, cpp-echo,
# c-forwarder)
# into plugins/examples/<dir>/<dir>.wasm with clang/lld, no libc at all.
#
#   build-c.sh           rebuild and overwrite the committed .wasm files
#   build-c.sh --check   rebuild into a temp dir; exit 1 if any differs
#
# A missing toolchain is not an error: the project's tests need Go only, so
# the script says "skipped: <tool> not installed" and exits 0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
sdk=$(cd "$here/../../sdk-guest/c" && pwd)
check=0
if [ "${1:-}" = "--check" ]; then check=1; fi

CC=${CC:-clang}
CXX=${CXX:-clang++}
for tool in "$CC" "$CXX" wasm-ld; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "build-c: skipped: $tool not installed"
		exit 0
	fi
done

want_version=14.0.6
got=$("$CC" --version 2>/dev/null | sed -n 's/.*clang version \([0-9.]*\).*/\1/p;q' || true)
if [ "$got" != "$want_version" ]; then
	# Another compiler version emits other bytes, so comparing is meaningless.
	if [ $check = 1 ]; then
		echo "build-c: skipped: clang $want_version not installed (found ${got:-no usable version})"
		exit 0
	fi
	echo "build-c: warning: clang $got, the committed modules use $want_version"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# No libc and --strip-all: the modules import only "wasmesh" functions and
# carry no debug names or paths, so the bytes depend on the compiler alone.
# --stack-first puts the shadow stack below the data, so an overflow traps
# instead of silently overwriting statics (a trap leaves the stack pointer
# where it was, so a daemon that traps often does grow its stack).
common=(--target=wasm32-unknown-unknown -nostdlib -O2 -Wall -Wextra -Werror
	-I"$sdk" -Wl,--no-entry -Wl,--stack-first -Wl,--strip-all)

status=0
build() { # dir compiler source [flags...]
	local dir=$1 cc=$2 src=$3
	shift 3
	local out="$tmp/$dir.wasm" want="$here/$dir/$dir.wasm"
	"$cc" "${common[@]}" "$@" -o "$out" "$here/$dir/$src"
	if [ $check = 1 ]; then
		if cmp -s "$out" "$want"; then
			echo "build-c: $dir.wasm up to date"
		else
			echo "build-c: $dir.wasm differs from a fresh build"
			status=1
		fi
	else
		cp "$out" "$want"
		echo "build-c: wrote $want ($(wc -c <"$want") bytes)"
	fi
}

build c-echo "$CC" echo.c
build c-counter "$CC" counter.c
build c-coop "$CC" coop.c
build cpp-echo "$CXX" echo.cpp -fno-exceptions -fno-rtti
# -fno-builtin: without libc there is no memcpy for clang to turn the
# message-building loops into.
build c-forwarder "$CC" forwarder.c -fno-builtin
exit $status
