# The Python base where no registry is reachable: Debian bookworm's python3 and venv, on the
# minimal Debian that `make images` made with debootstrap (BASE). See doc/containers.md.
ARG BASE=localhost/painkiller/debian:bookworm
FROM ${BASE}
# The suite (bookworm) is the pin: its point releases bring security fixes, which a pinned
# package version would keep out (and the mirror drops superseded versions).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
