#!/usr/bin/env bash
# Rebuilds every example daemon and test fixture under plugins/examples whose
# toolchain is installed, in place.
#
#   ./build.sh           rebuild and overwrite the committed .wasm files
#   ./build.sh --check   rebuild into a temporary directory and fail if any
#                        result differs from the committed file
#
# Convention: example folder X holds the built module X/X.wasm. This script
# builds the Go and WAT examples itself (lang_of picks the builder from what
# a folder contains) and then runs every build-*.sh beside it (one per other
# language) with the same argument. To add a language here instead: a line
# in lang_of, a build_LANG function (args: source folder, output file) and a
# tool_LANG variable naming the command it needs.
# Test fixtures are testdata/*.wat, each built to the .wasm beside it.
# A missing toolchain is reported and its modules skipped (the committed
# .wasm files stay usable); it is not an error, so Go-only machines can run
# --check too.
set -euo pipefail
cd "$(dirname "$0")"

check=0
case "${1:-}" in
--check) check=1 ;;
"") ;;
*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# Go: reproducible only with identical flags and toolchain. -trimpath drops
# local paths, -buildvcs=false keeps the commit id out (it would change the
# module on every commit), GOWASM/GOFLAGS are pinned so the caller's
# environment cannot change the code.
tool_go="go"
build_go() {
	(cd "$1" && env GOOS=wasip1 GOARCH=wasm GOWASM= GOFLAGS= CGO_ENABLED=0 \
		go build -buildmode=c-shared -buildvcs=false -trimpath -ldflags="-s -w" -o "$2" .)
}

# WAT: wabt's wat2wasm (apt-get install -y wabt). Output has no name section.
tool_wat="wat2wasm"
build_wat() {
	local src
	src=$(ls "$1"/*.wat 2>/dev/null | head -n 1) || true
	[[ -n "$src" ]] || { echo "no .wat source in $1" >&2; return 1; }
	wat2wasm "$src" -o "$2"
}

lang_of() {
	local d=$1
	if [[ -f $d/go.mod ]]; then echo go
	elif compgen -G "$d/*.wat" >/dev/null; then echo wat
	else echo unknown
	fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failed=0 skipped=0 built=0
declare -A warned=()

# one LANG SRC COMMITTED: build SRC with build_LANG and either install the
# result as COMMITTED or, with --check, compare it with COMMITTED.
one() {
	local lang=$1 src=$2 committed=$3 tool out
	tool="tool_$lang"
	if ! command -v "${!tool}" >/dev/null; then
		if [[ -z "${warned[$lang]:-}" ]]; then
			echo "toolchain missing for $lang: '${!tool}' not found; skipping its modules" >&2
			warned[$lang]=1
		fi
		skipped=$((skipped + 1))
		return
	fi
	out="$tmp/$(echo "$committed" | tr / _)"
	if ! "build_$lang" "$src" "$out"; then
		echo "FAIL build $committed" >&2
		failed=$((failed + 1))
		return
	fi
	built=$((built + 1))
	if ((check)); then
		if ! cmp -s "$out" "$committed"; then
			echo "DIFFERS $committed (rebuilt $(wc -c <"$out") bytes, committed $(wc -c <"$committed" 2>/dev/null || echo 0))" >&2
			[[ $lang == go ]] && echo "  (Go output depends on the toolchain: this is $(go env GOVERSION))" >&2
			failed=$((failed + 1))
		fi
	else
		cp "$out" "$committed"
	fi
}

for dir in */; do
	dir=${dir%/}
	lang=$(lang_of "$dir")
	# Folders of other languages belong to their build-*.sh.
	[[ $dir == testdata || $lang == unknown ]] && continue
	one "$lang" "$dir" "$dir/$dir.wasm"
done

# Fixtures: build each .wat alone (build_wat takes the first .wat of a folder).
for src in testdata/*.wat; do
	name=$(basename "$src" .wat)
	mkdir -p "$tmp/src/$name"
	cp "$src" "$tmp/src/$name/"
	one wat "$tmp/src/$name" "testdata/$name.wasm"
done

mode=built; ((check)) && mode=checked
echo "build.sh: $mode $built Go/WAT modules, skipped $skipped, failed $failed"

for script in build-*.sh; do
	[[ -f $script ]] || continue
	if ! bash "$script" "$@"; then
		echo "FAIL $script" >&2
		failed=$((failed + 1))
	fi
done
((failed == 0))
