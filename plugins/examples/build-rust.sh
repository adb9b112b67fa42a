#!/usr/bin/env bash
# Builds the Rust example guests (rust-echo, rust-counter, rust-coop) into
# plugins/examples/rust-<name>/rust-<name>.wasm.
#
#   build-rust.sh           rebuild and overwrite the committed .wasm files
#   build-rust.sh --check   rebuild into a temp dir; exit 1 if any differs
#
# A missing toolchain is not an error: the project's tests need Go only, so
# the script says "skipped: <tool> not installed" and exits 0.
#
# Toolchain: a rustc with the wasm32-unknown-unknown std, cargo, and lld
# (the wasm target links with rust-lld; without it: "linker rust-lld not
# found"). On Debian 12:
#   apt-get install rustc cargo libstd-rust-dev-wasm32 lld
# With rustup instead: rustup target add wasm32-unknown-unknown (rustup's
# toolchains bring rust-lld). The committed modules were built with
# Debian's rustc 1.63; another version builds working modules with other
# bytes. RUSTC and CARGO override the choice below.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
check=0
if [ "${1:-}" = "--check" ]; then check=1; fi

has_wasm_std() { [ -d "$("$1" --print sysroot 2>/dev/null)/lib/rustlib/wasm32-unknown-unknown" ]; }

# The first rustc on PATH with the wasm std, then Debian's /usr/bin/rustc:
# a rustup rustc earlier on PATH may lack the target.
if [ -z "${RUSTC:-}" ]; then
	for c in $(type -P -a rustc 2>/dev/null || true) /usr/bin/rustc; do
		if [ -x "$c" ] && has_wasm_std "$c"; then RUSTC=$c; break; fi
	done
fi
if [ -z "${RUSTC:-}" ]; then
	if command -v rustc >/dev/null 2>&1; then
		echo "build-rust: skipped: no rustc with the wasm32-unknown-unknown std (Debian: apt-get install libstd-rust-dev-wasm32; rustup: rustup target add wasm32-unknown-unknown)"
	else
		echo "build-rust: skipped: rustc not installed (Debian: apt-get install rustc cargo libstd-rust-dev-wasm32 lld)"
	fi
	exit 0
fi
# The cargo next to that rustc, else the one on PATH.
CARGO=${CARGO:-$(dirname "$RUSTC")/cargo}
if ! [ -x "$CARGO" ]; then CARGO=$(command -v cargo || true); fi
if [ -z "$CARGO" ]; then
	echo "build-rust: skipped: cargo not installed (Debian: apt-get install cargo)"
	exit 0
fi
if ! command -v rust-lld >/dev/null 2>&1 && ! command -v lld >/dev/null 2>&1 &&
	! ls "$("$RUSTC" --print sysroot)"/lib/rustlib/*/bin/rust-lld >/dev/null 2>&1; then
	echo "build-rust: skipped: lld not installed (the wasm target links with rust-lld; Debian: apt-get install lld)"
	exit 0
fi

want_version=1.63.0
got=$("$RUSTC" --version 2>/dev/null | awk '{print $2}' || true)
if [ "$got" != "$want_version" ]; then
	# Another compiler version emits other bytes, so comparing is meaningless.
	if [ $check = 1 ]; then
		echo "build-rust: skipped: rustc $want_version not installed (found ${got:-no usable version})"
		exit 0
	fi
	echo "build-rust: warning: rustc $got, the committed modules use $want_version"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Remapping the checkout path keeps the bytes independent of where the repo
# lives, so --check compares like with like on any machine.
export RUSTFLAGS="--remap-path-prefix=$repo=wasmesh"
export RUSTC CARGO_TARGET_DIR="$tmp/target"

status=0
for name in echo counter coop; do
	dir="$here/rust-$name"
	(cd "$dir" && "$CARGO" build --quiet --offline --release --target wasm32-unknown-unknown)
	built="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/rust_$name.wasm"
	want="$dir/rust-$name.wasm"
	if [ $check = 1 ]; then
		if cmp -s "$built" "$want"; then
			echo "build-rust: rust-$name.wasm up to date"
		else
			echo "build-rust: rust-$name.wasm differs from a fresh build"
			status=1
		fi
	else
		cp "$built" "$want"
		echo "build-rust: wrote $want ($(wc -c <"$want") bytes)"
	fi
	# cargo drops a Cargo.lock next to each manifest; it is ignored, but the
	# build should leave the tree as it found it.
	rm -f "$dir/Cargo.lock"
done
exit $status
