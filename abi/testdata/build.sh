#!/usr/bin/env bash
# Rebuilds the committed test modules from their sources and reports any that
# changed. Needs wabt (apt-get install -y wabt) and Go; the tests themselves
# need only Go, because the built .wasm files are committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
changed=0
check() { # file built-by-command...
  local out=$1; shift
  local tmp; tmp=$(mktemp)
  "$@" "$tmp"
  if [ ! -f "$out" ] || ! cmp -s "$tmp" "$out"; then
    echo "updated $out"; changed=1; cp "$tmp" "$out"
  fi
  rm -f "$tmp"
}
for wat in *.wat; do
  check "${wat%.wat}.wasm" wat2wasm --enable-tail-call --enable-multi-memory "$wat" -o
done
(cd goguest && check ../go_reactor.wasm env GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -ldflags="-s -w" -trimpath -o)
if [ -d ../../host/instrument/testdata ]; then
  cd ../../host/instrument/testdata
  for wat in *.wat; do
    names=""; [ "$wat" = names.wat ] && names=--debug-names # the name-section test needs one
    check "${wat%.wat}.wasm" wat2wasm --enable-tail-call --enable-multi-memory $names "$wat" -o
  done
fi
[ $changed = 0 ] && echo "all test modules up to date"
exit 0
