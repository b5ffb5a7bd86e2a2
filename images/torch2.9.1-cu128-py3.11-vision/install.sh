#!/bin/sh
# Rendered by torchstack. Runs in the build stage only: installs this layer's Python packages
# into /opt/venv, then copies exactly what changed to /layer-delta, which the final stage COPYs.
# The CA bundle and index URLs are used here and never reach the final image.
set -eu
cd "$(dirname "$0")"
ca=/tmp/build-inputs/ca-bundle.crt
if [ -s "$ca" ]; then
    export PIP_CERT="$ca" SSL_CERT_FILE="$ca"
fi
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

stamp=/tmp/layer-stamp
touch "$stamp"
[ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv
pip=/opt/venv/bin/pip

# Parent packages are constraints: a layer may add packages, never change its parent's.
"$pip" freeze --all | grep -v '^-e ' > parent-freeze.txt
if [ -s requirements.txt ]; then
    "$pip" install --index-url "$PIP_INDEX_URL" -c parent-freeze.txt -r requirements.txt \
        || { echo "torchstack: installing requirements.txt from $PIP_INDEX_URL failed" >&2; exit 1; }
fi
if [ -s torch-requirements.txt ]; then
    "$pip" install --index-url "$TORCH_INDEX_URL" -c parent-freeze.txt -c requirements.txt \
        -r torch-requirements.txt \
        || { echo "torchstack: installing torch-requirements.txt from $TORCH_INDEX_URL failed;" \
                  "if that index is unreachable, point --index at a mirror" >&2; exit 1; }
fi
"$pip" check

# Move everything created or changed since the stamp to /layer-delta (directories are
# recreated with their metadata, not moved). Moving, not copying: this stage is discarded, and
# files created in this step and gone by its end never reach the stage's layer.
cd /
find opt/venv -cnewer "$stamp" > /tmp/layer-files
mkdir -p /layer-delta  # a layer with no packages adds nothing, but COPY needs the folder
python3 - /tmp/layer-files /layer-delta <<'PY'
import os, shutil, sys
listing, target = sys.argv[1], sys.argv[2]
paths = [line.rstrip("\n") for line in open(listing)]
for path in paths:
    source, dest = "/" + path, os.path.join(target, path)
    if os.path.isdir(source) and not os.path.islink(source):
        os.makedirs(dest, exist_ok=True)
        shutil.copystat(source, dest)
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(source, dest)
for path in reversed(paths):  # directory times again, now that their entries exist
    if os.path.isdir("/" + path) and not os.path.islink("/" + path):
        shutil.copystat("/" + path, os.path.join(target, path))
print(f"torchstack: layer adds {len(paths)} paths")
PY
