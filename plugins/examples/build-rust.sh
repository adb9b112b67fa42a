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
# Toolchain: Debian's rustc 1.63 + libstd-rust-dev-wasm32 (see
# /work/shared/GUESTS.md). rustup's rustc has no wasm std here, hence the
# explicit /usr/bin paths.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
check=0
if [ "${1:-}" = "--check" ]; then check=1; fi

RUSTC=${RUSTC:-/usr/bin/rustc}
CARGO=${CARGO:-/usr/bin/cargo}
for tool in "$RUSTC" "$CARGO"; do
	if ! [ -x "$tool" ]; then
		echo "build-rust: skipped: $(basename "$tool") not installed ($tool)"
		exit 0
	fi
done
if ! [ -d "$("$RUSTC" --print sysroot)/lib/rustlib/wasm32-unknown-unknown" ]; then
	echo "build-rust: skipped: libstd-rust-dev-wasm32 not installed (no wasm32-unknown-unknown std for $RUSTC)"
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
