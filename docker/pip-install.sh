#!/bin/sh
# `pip install` into /opt/venv in the image's build stage, with what the build context brings:
#   docker/wheels/*.whl           local wheels, looked at beside the indexes (e.g. a CPU torch)
#   docker/constraints.txt        version pins for every package installed
#   docker/ca-certificates/*.crt  CAs of a TLS-intercepting proxy; the Dockerfile has added them
#                                 to the system store, and pip is pointed at it (pip's own
#                                 certifi copy does not have them)
# pip's indexes and proxies come from the build args (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL,
# PIP_FIND_LINKS, PIP_TRUSTED_HOST, HTTPS_PROXY, ...); options given here add to them.
set -eu
here=$(dirname "$0")
set -- --find-links "$here/wheels" "$@"
if [ -f "$here/constraints.txt" ]; then
    set -- --constraint "$here/constraints.txt" "$@"
fi
if ls "$here"/ca-certificates/*.crt >/dev/null 2>&1; then
    set -- --cert /etc/ssl/certs/ca-certificates.crt "$@"
fi
exec /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check "$@"
