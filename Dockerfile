# wasmesh node image: docker build -t wasmesh .
#
# Build stage: a static binary (no cgo: wazero compiles wasm itself).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/wasmesh ./cmd/wasmesh

# Run stage: Debian slim, so an operator can exec a shell and the CLI.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --home-dir /var/lib/wasmesh --create-home --uid 10001 wasmesh
COPY --from=build /out/wasmesh /usr/local/bin/wasmesh
COPY LICENSE /usr/share/doc/wasmesh/LICENSE
USER wasmesh
# The node key, daemon records, checkpoints and journal: keep it on a
# volume, or every restart is a new node that lost its daemons.
VOLUME /var/lib/wasmesh
# 7401/tcp admin API (and /metrics), 7402/udp QUIC mesh, 7946 gossip.
EXPOSE 7401/tcp 7402/udp 7946/tcp 7946/udp
ENTRYPOINT ["wasmesh", "node", "--data", "/var/lib/wasmesh"]
# A real cluster: mount the secrets (docker secrets land in /run/secrets)
# and the node's certificate (node.crt, ca.crt in the volume, or --ca).
# Set --advertise to the address peers reach this container at. For a
# one-container try: docker run --rm wasmesh --dev
CMD ["--listen", "0.0.0.0:7402", "--gossip", "0.0.0.0:7946", \
     "--admin", "0.0.0.0:7401", "--admin-token-file", "/run/secrets/wasmesh-admin-token", \
     "--cluster-secret-file", "/run/secrets/wasmesh-cluster-secret", "--log-format", "json"]
