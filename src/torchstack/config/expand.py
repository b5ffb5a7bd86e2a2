"""Axes, include and exclude -> the list of ImageSpecs, each checked against compat data.

Every combination is validated where it was written (file:line of the axis value or include
entry); parents are expanded before their children, so the result is in build order.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import replace

from torchstack.config import kinds, schemas
from torchstack.config.compat import CompatError, cuda_tag, load_compat
from torchstack.config.layers import layer_chain
from torchstack.config.located import Located
from torchstack.config.model import ImageSpec, Layer, OsBase, TagPolicy, template_fields
from torchstack.names import HASH_CHARS, MAX_TAG, STAGING_TAG

AXES = schemas.keys(schemas.MATRIX, "axes")
INCLUDE = schemas.keys(schemas.MATRIX, "include_entry")
EXCLUDE = schemas.keys(schemas.MATRIX, "exclude_entry")
DOCKER_TAG = kinds.TAG


Entry = tuple[dict[str, Located], bool]  # axis values with their locations, legacy


def entries(top: dict[str, Located], os_bases: dict[str, OsBase],
             flavors: dict[str, str]) -> list[Entry]:
    axes_node = top["axes"]
    axes = AXES.of(axes_node)
    axis_values = {key: axes[key].list() for key in axes}
    for key, listed in axis_values.items():
        if not listed:
            axes[key].fail(f"axis '{key}' is empty")
    axis_values.setdefault(
        "os", [Located(next(iter(os_bases)), axes_node.file, axes_node.line, "axes.os")])
    axis_values.setdefault(
        "flavor", [Located(f, axes_node.file, axes_node.line, "axes.flavor") for f in flavors])
    keys = sorted(axis_values)
    exclude_nodes = top["exclude"].list() if "exclude" in top else []
    excludes = [EXCLUDE.of(item) for item in exclude_nodes]
    used = [False] * len(excludes)
    entries: list[Entry] = []
    for combo in itertools.product(*(axis_values[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        hits = [i for i, ex in enumerate(excludes) if _matches(values, ex)]
        for i in hits:
            used[i] = True
        if not hits:
            entries.append((values, False))
    for item, was_used in zip(exclude_nodes, used, strict=True):
        if not was_used:
            item.fail("this exclude entry matches no combination of the axes (a typo?)")
    for item in top["include"].list() if "include" in top else []:
        fields = INCLUDE.of(item)
        legacy = fields.pop("legacy").bool() if "legacy" in fields else False
        fields.setdefault("os", axis_values["os"][0])
        fields.setdefault("flavor", Located("base" if "base" in flavors else next(iter(flavors)),
                                            item.file, item.line, item.path + ".flavor"))
        entries.append((fields, legacy))
    return entries


def _matches(values: dict[str, Located], exclude: dict[str, Located]) -> bool:
    return all(_text(values[k]) == _text(v) for k, v in exclude.items())


def _text(node: Located) -> str:
    return node.str(allow_numbers=True)


def expand(entries: list[Entry], layers: dict[str, Layer], flavors: dict[str, str],
            os_bases: dict[str, OsBase], indexes: dict[str, str], tags: TagPolicy,
            id_template: str) -> list[ImageSpec]:
    images: dict[str, ImageSpec] = {}
    flavor_of = {layer: flavor for flavor, layer in flavors.items()}
    for values, legacy in entries:
        torch, cuda, os_name, flavor = (_text(values[k])
                                        for k in ("torch", "cuda", "os", "flavor"))
        if os_name not in os_bases:
            values["os"].fail(f"unknown OS base '{os_name}'",
                              tip=f"os_bases: {', '.join(os_bases)}")
        if flavor not in flavors:
            values["flavor"].fail(f"unknown flavor '{flavor}'",
                                  tip=f"flavors: {', '.join(flavors)}")
        os_base = os_bases[os_name]
        _compatible(values, torch, cuda, os_base)
        _codec_paired(values, torch, [n for n in layer_chain(layers, flavors[flavor])
                                      if "torchcodec" in layers[n].torch_packages])
        parent_id = None
        for layer_name in layer_chain(layers, flavors[flavor]):
            spec = _image(layers, layer_name, flavor_of[layer_name], torch, cuda, os_base,
                          parent_id, legacy, indexes, tags, id_template)
            if not DOCKER_TAG.fullmatch(spec.id):
                values["flavor"].fail(f"the image id '{spec.id}' is not a valid Docker tag",
                                      tip="ids come from id_template and the OS and flavor names,"
                                          " which may use letters, digits, '_', '.', '-'")
            known = images.get(spec.id)
            # The same parent reached from two flavors is the same image; anything else is not.
            if known is not None and known != spec:
                values["flavor"].fail(
                    f"two different images get the id '{spec.id}'"
                    f" ({_difference(known, spec)})",
                    tip="add the differing field ({os}, {python}, {flavor}) to id_template,"
                        " or drop the duplicate entry")
            images.setdefault(spec.id, spec)
            parent_id = spec.id
    return list(images.values())


def _difference(a: ImageSpec, b: ImageSpec) -> str:
    fields = ("layer", "os", "base_image", "python", "legacy", "torch", "cuda")
    return ", ".join(f"{f}: {getattr(a, f)} vs {getattr(b, f)}" for f in fields
                     if getattr(a, f) != getattr(b, f)) or "different parents"


def _compatible(values: dict[str, Located], torch: str, cuda: str, os_base: OsBase) -> None:
    compat = load_compat()
    try:
        compat.release(torch)
    except CompatError as exc:
        values["torch"].fail(str(exc),
                             tip="versions come from src/torchstack/config/data/compat.yaml")
    try:
        compat.variant(torch, cuda)
    except CompatError as exc:
        values["cuda"].fail(str(exc),
                            tip="pick a CUDA version the torch release ships, or an older torch")
    try:
        compat.check_python(torch, os_base.python)
    except CompatError as exc:
        values["os"].fail(f"{exc} (OS base '{os_base.name}' has Python {os_base.python})")


def _codec_paired(values: dict[str, Located], torch: str, codec_layers: list[str]) -> None:
    if not codec_layers:
        return
    try:
        load_compat().paired_version(torch, "torchcodec")
    except CompatError as exc:
        values["torch"].fail(f"{exc} (layer '{codec_layers[0]}' installs torchcodec)",
                             tip="drop torchcodec from that layer's torch_packages for this"
                                 " torch, or record the pairing in compat.yaml with its source")


def _image(layers: dict[str, Layer], layer_name: str, flavor: str, torch: str, cuda: str,
           os_base: OsBase, parent_id: str | None, legacy: bool, indexes: dict[str, str],
           tags: TagPolicy, id_template: str) -> ImageSpec:
    compat = load_compat()
    release = compat.release(torch)
    variant = release.variants[cuda]
    chain = layer_chain(layers, layer_name)
    on_pypi = cuda == release.pypi_default
    local = "" if on_pypi else f"+{cuda_tag(cuda)}"
    layer = layers[layer_name]
    installed = {p for name in chain for p in layers[name].torch_packages}
    torchcodec = compat.paired_version(torch, "torchcodec") if "torchcodec" in installed else None
    # TorchCodec's index builds carry no CUDA local version on PyPI: it is pinned without one.
    versions = {"torch": f"{torch}{local}", "torchvision": f"{release.torchvision}{local}",
                "torchaudio": f"{release.torchaudio}{local}", "torchcodec": torchcodec}
    spec = ImageSpec(
        id="",
        flavor=flavor,
        layer=layer_name,
        layers=chain,
        parent_id=parent_id,
        os=os_base.name,
        base_image=os_base.image,
        torch=torch,
        cuda=cuda,
        cuda_tag=cuda_tag(cuda),
        python=os_base.python,
        torchvision=release.torchvision if "torchvision" in installed else None,
        torchaudio=release.torchaudio if "torchaudio" in installed else None,
        cudnn=variant.cudnn,
        nccl=variant.nccl,
        driver_min=compat.driver(cuda).driver_min,
        experimental=variant.experimental,
        legacy=legacy,
        default=False,
        index_kind="pypi" if on_pypi else "pytorch",
        torch_index=(indexes["pypi"] if on_pypi
                     else indexes["pytorch"].format(cuda_tag=cuda_tag(cuda))),
        pip_index=indexes["pypi"],
        torch_requirements=tuple(f"{p}=={versions[p]}" for p in layer.torch_packages),
        requirements=layer.packages,
        checks=tuple(dict.fromkeys(c for name in chain for c in layers[name].checks)),
        release_tag="",
        aliases=(),
        torchcodec=torchcodec,
    )
    image_id = id_template.format(**template_fields(spec))
    spec = replace(spec, id=image_id)
    return replace(spec, release_tag=tags.release.format(**template_fields(spec)))


def mark_default(images: list[ImageSpec], default_group: tuple[str, ...],
                  tags: TagPolicy) -> list[ImageSpec]:
    marked = []
    for image in images:
        default = any(glob_match(image.id, g) for g in default_group)
        fields = template_fields(image)
        aliases = tuple(
            a.template.format(**fields) for a in tags.aliases
            if a.applies(default=default, flavor=image.flavor)
        )
        marked.append(replace(image, default=default, aliases=aliases))
    return marked


def distinct_ids(images: tuple[ImageSpec, ...], node: Located) -> None:
    """Ids differing only in case are refused: Kubernetes Job names (lower case), folders on
    case-insensitive file systems and the local tags' users would merge them."""
    lowered: dict[str, str] = {}
    for image in images:
        other = lowered.setdefault(image.id.lower(), image.id)
        if other != image.id:
            node.fail(f"the image ids '{other}' and '{image.id}' differ only in case",
                      tip="rename a flavor or OS base (or change id_template) so that they"
                          " differ in more than case")


def unique_tags(images: tuple[ImageSpec, ...], node: Located, candidate: str) -> None:
    """Every tag torchstack can write is a valid Docker tag (128 characters at most), and no
    two images share one."""
    owner: dict[str, str] = {}
    fields = node.value
    for image in images:
        longest = "f" * HASH_CHARS
        written = {
            "candidate": candidate.format(**template_fields(image, hash12=longest)),
            "staging": STAGING_TAG.format(id=image.id, chain12=longest),
        }
        for kind, tag in written.items():
            if len(tag) > MAX_TAG or not DOCKER_TAG.fullmatch(tag):
                fields.get(kind, node).fail(
                    f"the {kind} tag of {image.id}, '{tag}', is {len(tag)} characters; a Docker"
                    f" tag has at most {MAX_TAG}",
                    tip="shorten id_template, or the OS base and flavor names")
        for tag in (image.release_tag, *image.aliases):
            # Point at the template that made it: the release tag, else the aliases.
            source = fields["release"] if tag == image.release_tag else fields["aliases"]
            if not DOCKER_TAG.fullmatch(tag):
                source.fail(f"'{tag}' (for {image.id}) is not a valid Docker tag")
            if tag in owner and owner[tag] != image.id:
                source.fail(
                    f"tag '{tag}' would name both {owner[tag]} and {image.id}",
                    tip="make the template more specific, or limit the alias with default/flavor")
            owner[tag] = image.id


def zstd_tag_problem(images: tuple[ImageSpec, ...], candidate: str, suffix: str) -> str | None:
    """Why publishing zstd beside gzip (`compression: both`, under tag + `suffix`) would fail
    or overwrite: a zstd tag longer than a Docker tag may be, or one that is a gzip tag."""
    gzip_tags = {tag: image.id for image in images for tag in (image.release_tag, *image.aliases)}
    for image in images:
        longest = candidate.format(**template_fields(image, hash12="f" * HASH_CHARS))
        for tag in (longest, image.release_tag, *image.aliases):
            zstd = tag + suffix
            if len(zstd) > MAX_TAG:
                return (f"the zstd tag of {image.id}, '{zstd}', is {len(zstd)} characters; a"
                        f" Docker tag has at most {MAX_TAG}")
            if zstd in gzip_tags:
                return (f"the zstd tag of {image.id}, '{zstd}', is also the gzip tag of"
                        f" {gzip_tags[zstd]}: one would overwrite the other")
    return None


def glob_match(image_id: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(image_id, pattern)
