"""ImageSpec + lock -> images/<id>/ build context (Dockerfile + files). Pure and deterministic.

Rendered Dockerfiles use only what the built-in Dockerfile frontend of BuildKit 0.8 parses (no
`# syntax=`, no heredocs, no `COPY --link`). Every Python distribution comes from the image's
lock, one layer per group of render/groups.py, installed by uv with hashes required. uv itself is
fetched by its pinned hash into a stage of its own and bind-mounted into each install step, so
it never reaches the image; the CA bundle and index URLs (which may carry credentials) arrive
as BuildKit secrets, proxies as BuildKit's predefined build args: none of them lands in a layer,
the history or the image config.
"""

from __future__ import annotations

from importlib import resources

from torchstack.config.fragment import FragmentProblem, instructions
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError
from torchstack.lock.pylock import ImageLock, read_lock
from torchstack.names import HASH_LABEL, LABEL_PREFIX, RUNTIME_USER, RUNTIME_USER_SPEC
from torchstack.render.groups import LayerGroup, own_dists, plan_groups

VENV = "/opt/venv"
# uv, the installer used inside builds: pinned by version and the sha256 of its x86_64 manylinux
# wheel on PyPI; rendered into every Dockerfile, so a new pin changes every input hash.
UV_VERSION = "0.13.9"
UV_WHEEL_SHA256 = "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"
# Every mtime an install step writes is set to this (2000-01-01T00:00:00Z): same lock, same bytes.
EPOCH = 946684800
MOUNTS = "/run/torchstack"  # where install steps find their mounts; stubs exist beforehand
SECRET_IDS = ("ca-bundle", "index-url", "extra-index-url")
TEMPLATES = ("install-group.sh", "finish-layer.py", "fetch-uv.py")
# BuildKit mounts these on every RUN; when the image has none it creates stubs and removes them
# again, bumping /etc's mtime into every layer. Empty files copied in first prevent that.
ETC_STUBS = ("stubs/etc/hosts", "stubs/etc/resolv.conf")
# Directories an install step may touch besides /opt/venv: pinned to EPOCH beforehand, so a
# step that does not change them leaves them out of its layer.
PINNED_DIRS = ("/", "/opt", "/tmp", "/root", "/run", "/etc", MOUNTS)
# Why each hadolint rule is off; rendered into every Dockerfile.
HADOLINT_IGNORED = {
    "DL3008": "apt versions are not pinned: Debian point releases drop old versions; the"
              " OS base image is the pin",
}
# An extension starts FROM its parent, which carries the parent's input-hash label; unset at
# once, so no intermediate or half-built image can pass for the parent.
_UNSET_HASH = f'LABEL {HASH_LABEL}=""'


def render_image(image: ImageSpec, matrix: Matrix) -> dict[str, str]:
    """Relative path -> file text for the build context of one image (its lock read from disk)."""
    return render_context(image, matrix, *_locks(image, matrix))


def image_groups(image: ImageSpec, matrix: Matrix) -> tuple[LayerGroup, ...] | None:
    """The image's install groups from the locks on disk, or None while it is unlocked."""
    return layer_groups(image, *_locks(image, matrix))


def _locks(image: ImageSpec, matrix: Matrix) -> tuple[ImageLock | None, ImageLock | None]:
    """The image's lock and its parent's, as on disk."""
    parent = matrix.by_id()[image.parent_id] if image.parent_id else None
    return read_lock(matrix, image), read_lock(matrix, parent) if parent else None


def layer_groups(image: ImageSpec, lock: ImageLock | None,
                 parent_lock: ImageLock | None) -> tuple[LayerGroup, ...] | None:
    """The image's install groups, or None while it is unlocked."""
    if lock is None:
        return None
    own = own_dists(lock.dists, parent_lock.dists if parent_lock else None)
    return plan_groups(own, root=image.parent_id is None, layer=image.layer)


def render_context(image: ImageSpec, matrix: Matrix, lock: ImageLock | None,
                   parent_lock: ImageLock | None) -> dict[str, str]:
    """The build context from the image and its (and its parent's) lock; pure."""
    groups = layer_groups(image, lock, parent_lock)
    files = {"Dockerfile": dockerfile(image, matrix, groups)}
    templates = resources.files("torchstack.render").joinpath("templates")
    files |= {name: templates.joinpath(name).read_text() for name in TEMPLATES}
    if image.parent_id is None:
        files |= dict.fromkeys(ETC_STUBS, "")
    for group in groups or ():
        files[group.file] = group.requirements()
    return files


def dockerfile(image: ImageSpec, matrix: Matrix,
               groups: tuple[LayerGroup, ...] | None) -> str:
    layer = matrix.layers[image.layer]
    root = image.parent_id is None
    parts = [_header(image, matrix)]
    if root:
        parts += [
            f"ARG BASE_IMAGE={image.base_image}",
            "",
            "FROM ${BASE_IMAGE} AS os",
            f"COPY {' '.join(ETC_STUBS)} /etc/",
            f"# From layers/{layer.name}/Dockerfile.fragment:",
            layer.fragment,
            "# Mount points of the install steps, made before them with fixed times.",
            _stub_step(),
            *_uv_stage("os"),
            "",
            "FROM os",
            "# The venv every layer installs into (pip comes from the lock like the rest).",
            _run_with_uv(f"UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 {MOUNTS}/uv/uv venv"
                         f" --python /usr/bin/python3 {VENV} && PYTHONHASHSEED=0 /usr/bin/python3"
                         f" {MOUNTS}/finish-layer.py {EPOCH} /dev/null"),
        ]
    else:
        parts += [
            "# torchstack passes the parent's exact image ID; the default names its local tag.",
            f"ARG PARENT_IMAGE={matrix.local_tag(image.parent_id or '')}",
            "",
            "FROM ${PARENT_IMAGE} AS parent",
            _UNSET_HASH,
            "# Installing needs root; the image runs as uid 1000 again below.",
            "# hadolint ignore=DL3002",
            "USER 0",
            *_uv_stage("parent"),
            "",
            "FROM parent",
        ]
        if layer.fragment:
            parts += [f"# From layers/{layer.name}/Dockerfile.fragment:", layer.fragment,
                      _pin_dirs_step()]
    parts += _install_steps(image, groups)
    parts += _environment(image, layer.env, root=root)
    parts += _labels(image, matrix)
    parts.append(f"USER {RUNTIME_USER_SPEC}")
    if root:
        parts += [f"WORKDIR /home/{RUNTIME_USER}", 'CMD ["python"]']
    text = "\n".join(parts).rstrip() + "\n"
    _check_tail(image, text, root=root, env=root or bool(layer.env))
    return text


def _check_tail(image: ImageSpec, text: str, *, root: bool, env: bool) -> None:
    """Read the rendered file as BuildKit does: every line readable, the tail where rendered.

    The loaders already refuse what could break this; a value that got past them stops here
    rather than in someone's build (or, worse, in an image that runs as root).
    """
    where = f"images/{image.id}/Dockerfile"
    try:
        found = [i.keyword for i in instructions(text)]
    except FragmentProblem as problem:
        raise ConfigError(f"{where}:{problem.line}: {problem.message}",
                          tip="fix the layer file or fragment this line comes from") from None
    tail = [*(["ENV"] if env else []), "LABEL", "ARG", "LABEL", "USER",
            *(["WORKDIR", "CMD"] if root else [])]
    if found[-len(tail):] != tail or found.count("FROM") != 3:
        raise ConfigError(f"{where}: the rendered file does not end with torchstack's ENV,"
                          " LABEL and USER as BuildKit reads it",
                          tip="check the layer's Dockerfile.fragment for a heredoc or a"
                              " continuation that runs on")


def _header(image: ImageSpec, matrix: Matrix) -> str:
    ignored = "\n".join(f"#   {rule}: {why}" for rule, why in HADOLINT_IGNORED.items())
    legacy = ("# LEGACY: kept for clusters whose drivers are too old for newer CUDA.\n"
              if image.legacy else "")
    return (
        f"# {image.id}: torch {image.torch} + CUDA {image.cuda}, Python {image.python} on"
        f" {image.os}, layers {' > '.join(image.layers)}.\n{legacy}"
        f"# Rendered by `torchstack render` from {matrix.file}, layers/ and pylock.toml;"
        " edit those, not this.\n"
        f"# Builds without torchstack (BuildKit; the secrets are optional):\n"
        f"#   DOCKER_BUILDKIT=1 docker build --secret id=ca-bundle,src=CA.pem images/{image.id}\n"
        f"# hadolint rules ignored, and why:\n{ignored}\n"
        f"# hadolint global ignore={','.join(HADOLINT_IGNORED)}\n"
    )


def _stub_step() -> str:
    files = [f"{MOUNTS}/{name}" for name in ("group.txt", *TEMPLATES)]
    files += [f"{MOUNTS}/secrets/{name}" for name in SECRET_IDS]
    dirs = [f"{MOUNTS}/{name}" for name in ("uv", "cache", "secrets")]
    return (f"RUN mkdir -p {' '.join(dirs)} \\\n && touch {' '.join(files)} \\\n"
            f" && touch -h -d @{EPOCH} {' '.join([*files, *dirs])} \\\n"
            f" && touch -h -d @{EPOCH} {' '.join(PINNED_DIRS)}")


def _pin_dirs_step() -> str:
    return ("# The fragment's changes stay in its layer: install steps start from fixed times.\n"
            f"RUN touch -h -d @{EPOCH} {' '.join(PINNED_DIRS)}")


def _uv_stage(base: str) -> list[str]:
    return [
        "",
        "# uv, pinned by version and wheel hash, in a stage of its own: bind-mounted into the",
        "# install steps, never part of the image.",
        f"FROM {base} AS uv",
        f"RUN --mount=type=bind,source=fetch-uv.py,target={MOUNTS}/fetch-uv.py \\",
        *_secret_mounts(),
        f"    /usr/bin/python3 {MOUNTS}/fetch-uv.py {UV_VERSION} {UV_WHEEL_SHA256}"
        f" https://pypi.org/simple /uv",
    ]


def _secret_mounts() -> list[str]:
    return [f"    --mount=type=secret,id={name},target={MOUNTS}/secrets/{name} \\"
            for name in SECRET_IDS]


def _run_with_uv(command: str) -> str:
    return (f"RUN --mount=type=bind,from=uv,source=/uv,target={MOUNTS}/uv \\\n"
            f"    --mount=type=bind,source=finish-layer.py,target={MOUNTS}/finish-layer.py \\\n"
            f"    {command}")


def _install_steps(image: ImageSpec, groups: tuple[LayerGroup, ...] | None) -> list[str]:
    if groups is None:
        message = (f"torchstack: images/{image.id} has no lock yet; run"
                   f" torchstack lock {image.id} where {image.torch_index} is reachable")
        return ["# UNLOCKED: there is no pylock.toml for this image yet, so nothing installs.",
                f'RUN echo "{message}" >&2 && exit 1']
    steps = []
    indexes = [image.pip_index] + ([image.torch_index]
                                   if image.torch_index != image.pip_index else [])
    for group in groups:
        names = ", ".join(d.name for d in group.dists)
        steps += [
            f"# Layer group {group.position}/{len(groups)}: {group.name}"
            f" ({len(group.dists)} wheels, {group.wheel_bytes / 1e6:.0f} MB): {names}"[:200],
            f"RUN --mount=type=bind,source={group.file},target={MOUNTS}/group.txt \\",
            f"    --mount=type=bind,source=install-group.sh,target={MOUNTS}/install-group.sh \\",
            f"    --mount=type=bind,source=finish-layer.py,target={MOUNTS}/finish-layer.py \\",
            f"    --mount=type=bind,from=uv,source=/uv,target={MOUNTS}/uv \\",
            f"    --mount=type=cache,id=torchstack-uv,target={MOUNTS}/cache,sharing=locked \\",
            *_secret_mounts(),
            f"    sh {MOUNTS}/install-group.sh {EPOCH} {group.position:02d}-{group.name}"
            f" {' '.join(indexes)}",
        ]
    return steps


def _environment(image: ImageSpec, env: tuple[tuple[str, str], ...], *, root: bool) -> list[str]:
    # The layer's values are literal: a `$` in layer.yaml is a `$` in the image.
    pairs = [(key, _quote(value)) for key, value in env]
    if root:
        pairs = [
            # torchstack's own substitution ($PATH) stays a substitution.
            ("PATH", _quote(f"{VENV}/bin:$PATH", substitute=True)),
            ("VIRTUAL_ENV", _quote(VENV)),
            ("PYTHONUNBUFFERED", _quote("1")),
            ("PIP_NO_CACHE_DIR", _quote("1")),
            ("NVIDIA_VISIBLE_DEVICES", _quote("all")),
            ("NVIDIA_DRIVER_CAPABILITIES", _quote("compute,utility")),
            # The container runtime refuses to start on a driver too old for this CUDA.
            ("NVIDIA_REQUIRE_CUDA", _quote(f"cuda>={image.cuda}")),
            *pairs,
        ]
    if not pairs:
        return []
    body = " \\\n    ".join(f"{key}={value}" for key, value in pairs)
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
        f"LABEL {HASH_LABEL}=$TORCHSTACK_INPUT_HASH",
    ]


def _quote(value: str, *, substitute: bool = False) -> str:
    """A double-quoted ENV or LABEL value; `$` is escaped (literal) unless `substitute`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + (escaped if substitute else escaped.replace("$", "\\$")) + '"'


def _lines(items: tuple[str, ...]) -> str:
    return "".join(f"{item}\n" for item in items)
