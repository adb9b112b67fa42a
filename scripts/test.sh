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
# The location directory at 20 in-process nodes: under -race the same test
# runs 8 (20 race-instrumented nodes do not join up on 2 cores in time).
go test -count=1 -timeout 5m -run '^TestDirectoryCluster$' ./node/
