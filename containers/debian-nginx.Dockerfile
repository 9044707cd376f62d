# The NGINX base where no registry is reachable: Debian bookworm's nginx and its TCP proxy
# (libnginx-mod-stream, for MLLP), envsubst (for the templates) and curl (for the healthcheck), on
# the debootstrap base (BASE). See doc/containers.md.
ARG BASE=localhost/painkiller/debian:bookworm
FROM ${BASE}
# The suite (bookworm) is the pin: its point releases bring security fixes, which a pinned
# package version would keep out (and the mirror drops superseded versions).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-stream gettext-base curl ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
