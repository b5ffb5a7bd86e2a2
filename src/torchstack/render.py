"""ImageSpec -> images/<id>/ build context (Dockerfile + files). Pure and deterministic.

Every rendered Dockerfile is multi-stage: a `builder` stage receives the CA bundle, index URLs
and proxies and installs into /opt/venv; the final stage only COPYs what the layer added, so
none of those inputs reach the shipped image's filesystem, environment or history.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from torchstack.model import ImageSpec, Matrix

VENV = "/opt/venv"
RUNTIME_USER = "ml"
RUNTIME_UID = "1000:1000"  # numeric, so Kubernetes runAsNonRoot can verify it
LABEL_PREFIX = "io.torchstack"
BUILD_INPUTS_README = """\
Build-time inputs for this image, filled in by `torchstack build` in the context it streams to
Docker, never written here: `ca-bundle.crt` (a CA bundle for pip behind a TLS-inspecting proxy).
They are read by the build stage only and never reach the final image.
For a plain `docker build`, put a CA bundle here as ca-bundle.crt (it is git-ignored).
"""
# Why each hadolint rule is off; rendered into every Dockerfile.
HADOLINT_IGNORED = {
    "DL3008": "apt versions are not pinned: Debian point releases drop old versions; the"
              " OS base image is the pin",
}
# Ignored on one line only: DL3002 on the build stage's `USER 0`; that stage is discarded.
# An extension's stages start FROM its parent, which carries the parent's input-hash label;
# unset at once, so no intermediate or half-built image can pass for the parent.
_UNSET_HASH = f'LABEL {LABEL_PREFIX}.input-hash=""'


def render_image(image: ImageSpec, matrix: Matrix) -> dict[str, str]:
    """Relative path -> file text for the build context of one image."""
    install = resources.files("torchstack").joinpath("templates/install.sh").read_text()
    return {
        "Dockerfile": dockerfile(image, matrix),
        "requirements.txt": _lines(image.requirements),
        "torch-requirements.txt": _lines(image.torch_requirements),
        "install.sh": install,
        "build-inputs/README.md": BUILD_INPUTS_README,
    }


def dockerfile(image: ImageSpec, matrix: Matrix) -> str:
    layer = matrix.layers[image.layer]
    parts = [_header(image, matrix)]
    if image.parent_id is None:
        parts += [
            f"ARG BASE_IMAGE={image.base_image}",
            "",
            "# The runtime OS, shared by the build and final stages.",
            "FROM ${BASE_IMAGE} AS runtime",
            f"# From layers/{layer.name}/Dockerfile.fragment:",
            layer.fragment,
            "",
            "FROM runtime AS builder",
            "RUN apt-get update \\\n && apt-get install -y --no-install-recommends python3-venv"
            " \\\n && rm -rf /var/lib/apt/lists/*",
            *_build_steps(image),
            "",
            "FROM runtime",
            "COPY --from=builder /layer-delta/ /",
            *_environment(image, layer.env, root=True),
        ]
    else:
        parent_tag = matrix.local_tag(image.parent_id)
        parts += [
            "# torchstack passes the parent's exact image ID; the default names its local tag.",
            f"ARG PARENT_IMAGE={parent_tag}",
            "",
            "FROM ${PARENT_IMAGE} AS builder",
            "# Images are found by input hash: this stage's must not carry the parent's.",
            _UNSET_HASH,
            "# Installing needs root; this stage is discarded (final stage: USER 1000).",
            "# hadolint ignore=DL3002",
            "USER 0",
            *_build_steps(image),
            "",
            "FROM ${PARENT_IMAGE}",
            _UNSET_HASH,
            "COPY --from=builder /layer-delta/ /",
        ]
        if layer.fragment:
            parts += ["USER 0", f"# From layers/{layer.name}/Dockerfile.fragment:",
                      layer.fragment]
        parts += _environment(image, layer.env, root=False)
    parts += _labels(image, matrix)
    parts.append(f"USER {RUNTIME_UID}")
    if image.parent_id is None:
        parts += [f"WORKDIR /home/{RUNTIME_USER}", 'CMD ["python"]']
    return "\n".join(parts).rstrip() + "\n"


def _header(image: ImageSpec, matrix: Matrix) -> str:
    ignored = "\n".join(f"#   {rule}: {why}" for rule, why in HADOLINT_IGNORED.items())
    legacy = ("# LEGACY: kept for clusters whose drivers are too old for newer CUDA.\n"
              if image.legacy else "")
    return (
        f"# {image.id}: torch {image.torch} + CUDA {image.cuda}, Python {image.python} on"
        f" {image.os}, layers {' > '.join(image.layers)}.\n{legacy}"
        f"# Rendered by `torchstack render` from {matrix.file} and layers/; edit those, not this.\n"
        f"# Builds without torchstack: docker build images/{image.id}\n"
        f"# hadolint rules ignored, and why:\n{ignored}\n"
        f"# hadolint global ignore={','.join(HADOLINT_IGNORED)}\n"
    )


def _build_steps(image: ImageSpec) -> list[str]:
    return [
        "# Build-time only: index URLs (may carry credentials) and the CA bundle in build-inputs/.",
        f"ARG PIP_INDEX_URL={image.pip_index}",
        f"ARG TORCH_INDEX_URL={image.torch_index}",
        "COPY build-inputs/ /tmp/build-inputs/",
        "COPY install.sh requirements.txt torch-requirements.txt /tmp/layer/",
        "RUN sh /tmp/layer/install.sh",
    ]


def _environment(image: ImageSpec, env: tuple[tuple[str, str], ...], *, root: bool) -> list[str]:
    pairs = list(env)
    if root:
        pairs = [
            ("PATH", f"{VENV}/bin:$PATH"),
            ("VIRTUAL_ENV", VENV),
            ("PYTHONUNBUFFERED", "1"),
            ("PIP_NO_CACHE_DIR", "1"),
            ("NVIDIA_VISIBLE_DEVICES", "all"),
            ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"),
            # The container runtime refuses to start on a driver too old for this CUDA.
            ("NVIDIA_REQUIRE_CUDA", f"cuda>={image.cuda}"),
            *pairs,
        ]
    if not pairs:
        return []
    body = " \\\n    ".join(f"{key}={_quote(value)}" for key, value in pairs)
    return [f"ENV {body}"]


def _labels(image: ImageSpec, matrix: Matrix) -> list[str]:
    base = image.base_image if image.parent_id is None else matrix.local_tag(image.parent_id)
    labels = {
        "org.opencontainers.image.title": image.id,
        "org.opencontainers.image.description": matrix.layers[image.layer].description,
        "org.opencontainers.image.version": image.release_tag,
        "org.opencontainers.image.vendor": "torchstack",
        "org.opencontainers.image.base.name": base,
        f"{LABEL_PREFIX}.image-id": image.id,
        f"{LABEL_PREFIX}.flavor": image.flavor,
        f"{LABEL_PREFIX}.layers": ",".join(image.layers),
        f"{LABEL_PREFIX}.torch": image.expected_torch_version,
        f"{LABEL_PREFIX}.cuda": image.cuda,
        f"{LABEL_PREFIX}.cudnn": image.cudnn or "unknown",
        f"{LABEL_PREFIX}.nccl": image.nccl or "unknown",
        f"{LABEL_PREFIX}.python": image.python,
        f"{LABEL_PREFIX}.os": image.os,
        f"{LABEL_PREFIX}.legacy": str(image.legacy).lower(),
        f"{LABEL_PREFIX}.experimental": str(image.experimental).lower(),
    }
    body = " \\\n      ".join(f"{key}={_quote(value)}" for key, value in labels.items())
    return [
        f"LABEL {body}",
        "# Set by torchstack to the sha256 of everything that determines this image.",
        'ARG TORCHSTACK_INPUT_HASH=""',
        f"LABEL {LABEL_PREFIX}.input-hash=$TORCHSTACK_INPUT_HASH",
    ]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lines(items: tuple[str, ...]) -> str:
    return "".join(f"{item}\n" for item in items)


def write_images(matrix: Matrix, images: list[ImageSpec]) -> list[Path]:
    """Write each image's context; returns the files whose content changed."""
    changed = []
    for image in images:
        for relative, text in render_image(image, matrix).items():
            path = matrix.images_dir / image.id / relative
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                changed.append(path)
    return changed


def stale_files(matrix: Matrix) -> list[str]:
    """Files under images/ that differ from a fresh render, are missing, or belong to no image."""
    stale = []
    expected: set[Path] = set()
    for image in matrix.images:
        for relative, text in render_image(image, matrix).items():
            path = matrix.images_dir / image.id / relative
            expected.add(path)
            if not path.exists():
                stale.append(f"missing: {path.relative_to(matrix.root)}")
            elif path.read_text(encoding="utf-8") != text:
                stale.append(f"differs: {path.relative_to(matrix.root)}")
    if matrix.images_dir.exists():
        for path in sorted(matrix.images_dir.rglob("*")):
            if path.is_file() and path not in expected and not _ignored_input(path):
                stale.append(f"extra:   {path.relative_to(matrix.root)}")
    return stale


def _ignored_input(path: Path) -> bool:
    """A CA bundle a user dropped into build-inputs/ for a plain docker build is not stale."""
    return path.parent.name == "build-inputs" and path.name != "README.md"


def remove_orphans(matrix: Matrix) -> list[Path]:
    """Delete rendered folders of images the matrix no longer has (only torchstack's own)."""
    if not matrix.images_dir.exists():
        return []
    ids = {image.id for image in matrix.images}
    removed = []
    for folder in sorted(p for p in matrix.images_dir.iterdir() if p.is_dir()):
        dockerfile_path = folder / "Dockerfile"
        if folder.name in ids or not dockerfile_path.exists():
            continue
        if "Rendered by `torchstack render`" not in dockerfile_path.read_text(encoding="utf-8"):
            continue
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
        removed.append(folder)
    return removed
