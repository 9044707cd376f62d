#!/bin/sh
# Render /etc/nginx/templates/*.template into /tmp/nginx/conf.d (HTTP) and
# /etc/nginx/stream/*.template into /tmp/nginx/stream.d (TCP: MLLP) with the environment, as the
# official image's entrypoint does: only the ${NAMES} set in the environment are replaced, so
# NGINX's own $variables stay as they are. Then run NGINX in the foreground.
set -eu
mkdir -p /tmp/nginx/conf.d /tmp/nginx/stream.d
defined=$(env | cut -d= -f1 | sed 's/^/$/' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
    name=$(basename "$template" .template)
    envsubst "$defined" < "$template" > "/tmp/nginx/conf.d/$name"
done
for template in /etc/nginx/stream/*.template; do
    name=$(basename "$template" .template)
    envsubst "$defined" < "$template" > "/tmp/nginx/stream.d/$name"
done
exec nginx -c /etc/nginx/painkiller-main.conf -g 'daemon off;' "$@"
