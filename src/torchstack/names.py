"""Names and forms the host, the images, the check containers and the Jobs must agree on, each once.

The rendered Dockerfiles (render/dockerfile.py), the check container (backend/docker.py,
check/container.py), the Kubernetes Job (cluster/manifests.py) and image lookup (resolve/state.py,
resolve/staging.py) all read these.
"""

from __future__ import annotations

import re

# Digests (always matched whole: fullmatch) ---------------------------------------------------
SHA256_HEX = re.compile(r"[0-9a-f]{64}")  # a sha256 in hex, as pylock.toml's hashes write it
SHA256_DIGEST = re.compile(rf"sha256:{SHA256_HEX.pattern}")  # an image or manifest digest

# Labels ----------------------------------------------------------------------------------
LABEL_PREFIX = "io.torchstack"
HASH_LABEL = f"{LABEL_PREFIX}.input-hash"  # what an image was built from (plan.input_hash)
CHAIN_LABEL = f"{LABEL_PREFIX}.chain-hash"  # what bake stages an image under (resolve/staging.py)
ROLE_LABEL = f"{LABEL_PREFIX}.role"  # on check containers: `check`
K8S_IMAGE_LABEL = f"{LABEL_PREFIX}/image-id"  # Kubernetes label keys take a `prefix/` form

# Tags torchstack writes besides the matrix's own templates ---------------------------------
STAGING_TAG = "{id}-stage-{chain12}"  # bake's staging tag: the image id, then its chain hash
HASH_CHARS = 12  # of an input or chain hash, in a candidate ({hash12}) or staging tag
MAX_TAG = 128  # a Docker tag's length limit (distribution/reference)

# The images' runtime user ------------------------------------------------------------------
RUNTIME_USER = "ml"
RUNTIME_UID = 1000  # numeric, so Kubernetes runAsNonRoot can verify it
RUNTIME_USER_SPEC = f"{RUNTIME_UID}:{RUNTIME_UID}"  # Dockerfile USER and `docker run --user`

# Where the suite sits inside a check container or pod ----------------------------------------
CHECKS_ROOT = "/opt/torchstack/checks"  # on PYTHONPATH; the package is CHECKS_ROOT/checks
EXPECT_DIR = "/opt/torchstack/expect"
EXPECT_FILE = "expect.json"

# Sizes and limits of a check run -------------------------------------------------------------
DEFAULT_SHM_SIZE = "2g"  # matrix.yaml checks.shm_size when unset (Docker's spelling)
DEFAULT_TIMEOUT_S = 900  # matrix.yaml checks.timeout_s when unset
TMP_SIZE_GIB = 4  # the writable /tmp of a check container or pod (the root is read-only)
