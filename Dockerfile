# fronttier in a container: a static binary on distroless, as a non-root user.
#
#   docker build --build-arg VERSION=v1.2.3 -t fronttier .
#   docker run -p 80:80 -p 443:443 -p 127.0.0.1:9090:9090 \
#     -v /srv/fronttier/etc:/etc/fronttier -v /srv/fronttier/state:/var/lib/fronttier fronttier
#
# Mount /etc/fronttier writable by uid 65532: the management API writes
# changes back to config.toml. The config must listen on 0.0.0.0:80/:443
# (and the management API on an address the host can reach, with a token)
# to be reachable from outside the container.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Shown by `fronttier version`; without it, the module's build information.
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w ${VERSION:+-X main.version=${VERSION}}" \
      -o /out/fronttier ./cmd/fronttier \
 && mkdir -p /out/etc/fronttier /out/var/lib/fronttier

# distroless/static: CA certificates, tzdata, /etc/passwd with "nonroot"
# (65532), and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fronttier /usr/local/bin/fronttier
COPY --from=build --chown=65532:65532 /out/etc/fronttier /etc/fronttier
COPY --from=build --chown=65532:65532 /out/var/lib/fronttier /var/lib/fronttier
USER nonroot:nonroot
# Relative paths in the config (cache_dir, log files) are taken from here.
WORKDIR /var/lib/fronttier
VOLUME ["/etc/fronttier", "/var/lib/fronttier"]
# HTTP, HTTPS, management API and /metrics.
EXPOSE 80 443 9090
ENTRYPOINT ["/usr/local/bin/fronttier"]
CMD ["--config", "/etc/fronttier/config.toml"]
