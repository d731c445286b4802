# The Concourse resource image: static check, in and out in /opt/resource.
#
# Build from the repository root:
#   docker build -t buildah-image-resource .
# The base images are build args, so the image can be built from local bases:
#   docker build --build-arg GO_IMAGE=localhost/golang --build-arg BASE_IMAGE=localhost/debian .
# GOPROXY (and GOFLAGS) are passed through to `go mod download` when given.
# Behind a TLS-intercepting proxy, pass its CA as PEM text:
#   docker build --build-arg EXTRA_CA_CERTS="$(cat corp-ca.pem)" .

ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS builder
ARG GOPROXY
ARG GOFLAGS
# cgo needs gcc and the static libseccomp; the golang images lack libseccomp-dev. qemu-user-static
# is for the final stage.
RUN if ! dpkg -s gcc libc6-dev libseccomp-dev pkg-config ca-certificates qemu-user-static >/dev/null 2>&1; then \
      apt-get update \
      && apt-get install -y --no-install-recommends gcc libc6-dev libseccomp-dev pkg-config ca-certificates qemu-user-static \
      && rm -rf /var/lib/apt/lists/*; \
    fi
# Behind a TLS-intercepting proxy, the module proxy's certificate is signed by a CA of its own:
# EXTRA_CA_CERTS (PEM text, one or more certificates) is added to the bundle before the download,
# and the final image's bundle is this one, so registries behind the same proxy verify too.
ARG EXTRA_CA_CERTS
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      case "$EXTRA_CA_CERTS" in \
        *"-----BEGIN CERTIFICATE-----"*) printf '%s\n' "$EXTRA_CA_CERTS" >> /etc/ssl/certs/ca-certificates.crt ;; \
        *) echo "EXTRA_CA_CERTS: expected PEM certificates (-----BEGIN CERTIFICATE-----)" >&2; exit 1 ;; \
      esac; \
    fi
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces buildah with the patched copy there (third_party/buildah/PATCHES).
COPY third_party/ third_party/
RUN go mod download
# Compile the heavy dependencies before the sources arrive: a change of the sources then rebuilds
# only this module (seconds, not minutes). Same tags as below, or the cache is not reused.
RUN CGO_ENABLED=1 go build -tags 'containers_image_openpgp exclude_graphdriver_btrfs seccomp netgo osusergo' \
      github.com/containers/buildah/imagebuildah github.com/google/go-containerregistry/pkg/v1/remote
COPY . .
RUN CGO_ENABLED=1 go build \
      -tags 'containers_image_openpgp exclude_graphdriver_btrfs seccomp netgo osusergo' \
      -ldflags '-s -w -linkmode external -extldflags "-static"' \
      -o /opt/resource/ ./cmd/check ./cmd/in ./cmd/out

FROM ${BASE_IMAGE}
# The binaries are static: they need only the CA bundle, taken from the
# builder so that no package manager or network is needed here.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /opt/resource/ /opt/resource/
# Statically linked QEMU user-mode interpreters: a put with params.platforms runs the RUN steps of
# these architectures under them (out registers one with binfmt_misc when none is).
COPY --from=builder /usr/bin/qemu-aarch64-static /usr/bin/qemu-arm-static /usr/bin/qemu-ppc64le-static \
     /usr/bin/qemu-s390x-static /usr/bin/qemu-riscv64-static /usr/bin/
