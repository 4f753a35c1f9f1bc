# ticketrush: one static binary in a small image, run as a non-root user.
#
#   docker build -t ticketrush .
#   docker run -p 8080:8080 -e TICKETRUSH_ADMIN_TOKEN=… ticketrush
#
# Without TICKETRUSH_DB it serves from the embedded SQLite file in
# /var/lib/ticketrush (mount a volume there to keep it); compose.yaml runs it
# on PostgreSQL or Redis.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change reuses the downloaded modules' layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: the SQLite driver is pure Go, so the binary links
# statically and runs on any base image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ticketrush ./cmd/ticketrush

# Alpine rather than distroless: its busybox wget lets the health check ask
# /healthz without a shell-less image needing a second binary.
FROM alpine:3.22
RUN addgroup -S -g 10001 ticketrush \
 && adduser -S -u 10001 -G ticketrush -h /var/lib/ticketrush -s /sbin/nologin ticketrush \
 && mkdir -p /var/lib/ticketrush \
 && chown ticketrush:ticketrush /var/lib/ticketrush
COPY --from=build /out/ticketrush /usr/local/bin/ticketrush
WORKDIR /var/lib/ticketrush
# A numeric user, so that a runtime enforcing non-root can verify it.
USER 10001:10001
ENV TICKETRUSH_ADDR=:8080 \
    TICKETRUSH_DB=sqlite:/var/lib/ticketrush/ticketrush.db
EXPOSE 8080
VOLUME ["/var/lib/ticketrush"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1
# serve shuts down gracefully on SIGTERM, which docker stop sends.
ENTRYPOINT ["ticketrush"]
CMD ["serve"]
