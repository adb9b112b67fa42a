#!/usr/bin/env bash
# Prints the README's "Guest languages" table: per language, the counter
# example's module size, spawn time, per-event cost and snapshot size after
# 1,000 events, all from one run of the benchmarks in tests/conformance
# (plus a native Go baseline for the event cost).
#
#   scripts/lang-table.sh              # -benchtime=2000x
#   BENCHTIME=10000x scripts/lang-table.sh
#   scripts/lang-table.sh saved.txt    # format a saved run instead
#
# The raw `go test -bench` output goes to stderr, the markdown to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

benchtime=${BENCHTIME:-2000x}
cmd=(go test ./tests/conformance/ -run '^$' -bench '^Benchmark(Spawn|Event|Snapshot)$' -benchtime="$benchtime" -count=1)
if [ $# -gt 0 ]; then
	raw=$(cat "$1")
else
	echo "+ ${cmd[*]}" >&2
	raw=$("${cmd[@]}")
	echo "$raw" >&2
fi

# The command as one would type it (quoted), for the note under the table.
shown="go test ./tests/conformance/ -run '^\$' -bench '^Benchmark(Spawn|Event|Snapshot)\$' -benchtime=$benchtime -count=1"

echo "$raw" | awk -v cmd="$shown" '
function bytes(n) {
	if (n >= 1048576) return sprintf("%.2f MiB", n / 1048576)
	if (n >= 1024) return sprintf("%.1f KiB", n / 1024)
	return sprintf("%d B", n)
}
function dur(ns) {
	if (ns >= 1e6) return sprintf("%.2f ms", ns / 1e6)
	if (ns >= 1e3) return sprintf("%.1f µs", ns / 1e3)
	return sprintf("%.0f ns", ns)
}
# BenchmarkEvent/rust-2   2000   3137 ns/op [value unit]...
/^Benchmark(Spawn|Event|Snapshot)\// {
	split($1, p, "/"); bench = p[1]; sub(/^Benchmark/, "", bench)
	lang = p[2]; sub(/-[0-9]+$/, "", lang)
	if (!(lang in seen)) { seen[lang] = 1; order[++n] = lang }
	v[bench, lang, "ns"] = $3
	for (i = 5; i + 1 <= NF; i += 2) v[bench, lang, $(i + 1)] = $i
}
END {
	if (n == 0) { print "lang-table: no benchmark results" > "/dev/stderr"; exit 1 }
	name["go"] = "Go (`GOOS=wasip1`, c-shared reactor)"
	name["wat"] = "WAT (hand-written)"
	name["rust"] = "Rust"; name["c"] = "C (C++ shares the header)"
	name["as"] = "AssemblyScript"; name["zig"] = "Zig"
	name["native"] = "native Go function (no wasm, no host)"
	print "| language | counter module | spawn | per event | snapshot after 1,000 events (state / encoded) |"
	print "|---|---:|---:|---:|---:|"
	for (i = 1; i <= n; i++) {
		l = order[i]; label = (l in name) ? name[l] : l
		mod = (("Spawn", l, "module-bytes") in v) ? bytes(v["Spawn", l, "module-bytes"]) : "—"
		sp = (("Spawn", l, "ns") in v) ? dur(v["Spawn", l, "ns"]) : "—"
		ev = (("Event", l, "ns") in v) ? dur(v["Event", l, "ns"]) : "—"
		sn = (("Snapshot", l, "snapshot-bytes") in v) ? bytes(v["Snapshot", l, "snapshot-bytes"]) " / " bytes(v["Snapshot", l, "encoded-bytes"]) : "—"
		printf "| %s | %s | %s | %s | %s |\n", label, mod, sp, ev, sn
	}
	print ""
	print "Command: `" cmd "` (or `scripts/lang-table.sh`)."
}'
