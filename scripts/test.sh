#!/usr/bin/env bash
# The whole test suite: formatting, vet, and every package's tests under the
# race detector. Long soak/load runs live in benchmarks, not here.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 15m ./... "$@"
