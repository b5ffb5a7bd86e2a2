#!/bin/sh
# Rendered by torchstack. One layer: installs exactly one group of the image's lock (the file
# mounted at /run/torchstack/group.txt) into /opt/venv, from hashes only, with no resolver and
# no dependencies, then makes the layer's bytes reproducible (finish-layer.py).
# usage: install-group.sh EPOCH GROUP DEFAULT_INDEX_URL [DEFAULT_EXTRA_INDEX_URL]
# (GROUP names the layer in `docker history`; EPOCH is every mtime the layer gets.)
set -eu
run=/run/torchstack
secrets=$run/secrets
epoch=$1
group=$2
index=$3
extra=${4:-}
# Credentials never appear in the Dockerfile or history: torchstack passes the real index URLs
# as BuildKit secrets, and the CA bundle too.
[ -s "$secrets/index-url" ] && index=$(cat "$secrets/index-url")
[ -s "$secrets/extra-index-url" ] && extra=$(cat "$secrets/extra-index-url")
[ -s "$secrets/ca-bundle" ] && export SSL_CERT_FILE="$secrets/ca-bundle"
# The download cache is a BuildKit cache mount: a rebuild downloads nothing it had before.
export UV_CACHE_DIR=$run/cache UV_LINK_MODE=copy UV_NO_PROGRESS=1 TMPDIR=$run/cache
set -- --index-url "$index"
[ -n "$extra" ] && [ "$extra" != "$index" ] && set -- "$@" --extra-index-url "$extra"
"$run/uv/uv" pip install --no-config --python /opt/venv/bin/python --require-hashes \
    --no-deps --no-build "$@" -r "$run/group.txt" \
    || { echo "torchstack: installing layer group $group failed; see uv's message above" >&2
         exit 1; }
PYTHONHASHSEED=0 /usr/bin/python3 "$run/finish-layer.py" "$epoch" "$run/group.txt"
