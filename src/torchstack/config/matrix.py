"""matrix.yaml -> a validated, compatibility-checked, frozen `Matrix` of `ImageSpec`s."""

from __future__ import annotations

import re
from pathlib import Path

from torchstack.checks.expect import ExpectError, Thresholds, parse_expect
from torchstack.checks.registry import CHECK_IDS
from torchstack.config import kinds, schemas
from torchstack.config.expand import (
    distinct_ids,
    entries,
    expand,
    glob_match,
    mark_default,
    unique_tags,
    zstd_tag_problem,
)
from torchstack.config.layers import layer_chain, load_layers
from torchstack.config.located import Located, load_yaml, type_name
from torchstack.config.model import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    DEFAULT_ZSTD_SUFFIX,
    Alias,
    CheckLevel,
    Compression,
    ImageSpec,
    Layer,
    Matrix,
    OsBase,
    RunOptions,
    TagPolicy,
)
from torchstack.errors import ConfigError
from torchstack.names import DEFAULT_SHM_SIZE, DEFAULT_TIMEOUT_S

# Each mapping's keys, as the schema defines them.
TOP = schemas.keys(schemas.MATRIX)
OS = schemas.keys(schemas.MATRIX, "os_base")
BOOTSTRAP = schemas.keys(schemas.MATRIX, "bootstrap")
INDEXES = schemas.keys(schemas.MATRIX, "indexes")
REGISTRY = schemas.keys(schemas.MATRIX, "registry")
TAGS = schemas.keys(schemas.MATRIX, "tags")
ALIAS = schemas.keys(schemas.MATRIX, "alias")
PROMOTION = schemas.keys(schemas.MATRIX, "promotion")
CHECKS = schemas.keys(schemas.MATRIX, "checks")
# Fields a template may use; `hash12` only exists once an image is built.
TEMPLATE_FIELDS = {"id", "torch", "torch_minor", "cuda", "cuda_tag", "python", "flavor", "os",
                   "cudnn_major", "hash12"}
DEFAULT_ID_TEMPLATE = "torch{torch}-{cuda_tag}-py{python}-{flavor}"
DEFAULT_INDEXES = {"pypi": "https://pypi.org/simple",
                   "pytorch": "https://download.pytorch.org/whl/{cuda_tag}"}
# Index URLs end up in the build stage; a debootstrap mirror may also be a local folder.
INDEX_SCHEMES = kinds.URL_SCHEMES
MIRROR_SCHEMES = (*kinds.URL_SCHEMES, "file")
DOCKER_REPO = kinds.REPOSITORY
PYTHON_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")
# A check run longer than a week is a typo, and k8s needs a finite deadline.
MAX_TIMEOUT_S = 7 * 24 * 3600
NAME_TIP = "names may use letters, digits, '_', '.' and '-'"
ZSTD_TAGS_TIP = ("`compression: both` puts zstd under each tag + zstd_suffix: shorten the suffix"
                 " or the tag templates, or pick a suffix no other tag ends with")


def load_matrix(path: Path) -> Matrix:
    path = path.resolve() if path.exists() else path
    root = path.parent
    doc = load_yaml(path, path.name)
    top = TOP.of(doc)
    version = top.get("schema_version")
    if version is not None and (type(version.value) is not int or version.value != 1):
        version.fail(f"only schema_version 1 is understood, got {type_name(version.value)}")
    layers = load_layers(root / "layers", root)
    os_bases = _os_bases(top["os_bases"])
    flavors = _flavors(top["flavors"], layers)
    tags = _tags(top["tags"], flavors)
    id_template = top["id_template"].str() if "id_template" in top else DEFAULT_ID_TEMPLATE
    if "id_template" in top:
        _check_template(top["id_template"], forbidden={"id", "hash12", "cudnn_major"})
    indexes = _indexes(top.get("indexes"))
    combinations = entries(top, os_bases, flavors)
    expanded = expand(combinations, layers, flavors, os_bases, indexes, tags, id_template)
    if not expanded:
        top["axes"].fail("the matrix expands to no images (is everything excluded?)")
    default_group = tuple(top["default_group"].strings()) if "default_group" in top else ()
    for glob_node in top["default_group"].list() if "default_group" in top else []:
        if not any(glob_match(i.id, glob_node.value) for i in expanded):
            glob_node.fail(f"default_group pattern '{glob_node.value}' matches no image",
                           tip=f"ids look like {expanded[0].id}; see `torchstack plan --all`")
    images = tuple(mark_default(expanded, default_group, tags))
    distinct_ids(images, top["id_template"] if "id_template" in top else top["flavors"])
    unique_tags(images, top["tags"], tags.candidate)
    registry = _registry(top["registry"])
    compression, zstd_suffix = _compression(top["registry"]), _zstd_suffix(top["registry"])
    if compression == "both":
        _zstd_tags(top["registry"], images, tags.candidate, zstd_suffix)
    checks = CHECKS.of(top["checks"]) if "checks" in top else {}
    thresholds = _thresholds(checks["thresholds"]) if "thresholds" in checks else Thresholds()
    promotion_level = _promotion(top.get("promotion"))
    run_options = RunOptions(
        shm_size=_shm_size(checks["shm_size"]) if "shm_size" in checks else DEFAULT_SHM_SIZE,
        timeout_s=checks["timeout_s"].number(minimum=1, maximum=MAX_TIMEOUT_S)
        if "timeout_s" in checks else DEFAULT_TIMEOUT_S,
    )
    # Last, so that the loader's own messages come first: whatever it accepted, the schema
    # editors use must accept too.
    schemas.validate(doc, schemas.MATRIX)
    return Matrix(
        root=root,
        file=path.name,
        images=images,
        layers=layers,
        os_bases=os_bases,
        default_group=default_group,
        local_repository=registry["local"],
        push_repository=registry["push"],
        compression=compression,
        zstd_suffix=zstd_suffix,
        tags=tags,
        promotion_level=promotion_level,
        thresholds=thresholds,
        run_options=run_options,
    )


def _shm_size(node: Located) -> str:
    return node.checked(kinds.size_problem, "shm_size", allow_numbers=True,
                        tip="write a docker --shm-size: 2g, 512m, or a number of bytes")


def _name(node: Located, name: str, what: str) -> None:
    """A user-chosen key (OS base, flavor) that ends up in ids, tags and labels."""
    problem = kinds.name_problem(name)
    if problem:
        node.fail(f"{what} name {name!r} {problem}", tip=NAME_TIP)


def _thresholds(node: Located) -> Thresholds:
    """The in-container suite's own parser judges thresholds, so the two cannot drift; its
    error names the key path, which is mapped back to that key's line here."""
    dict(node.items())  # a mapping, or fail here with the location
    try:
        return parse_expect({"thresholds": node.plain()}, source="thresholds",
                            check_ids=CHECK_IDS).thresholds
    except ExpectError as exc:
        message = str(exc).removeprefix("thresholds: ")
        at, line = node, node.line
        for key in exc.path[1:]:  # path[0] is "thresholds", which `node` already is
            children = at.value if isinstance(at.value, dict) else {}
            # str(): a YAML int key ({8: 300}) reaches the parser as the string "8".
            found = next((k for k in children if str(k) == key), None)
            if found is None:
                break
            line = at.key_lines.get(found, children[found].line)
            at = children[found]
        raise ConfigError(f"{at.file}:{line} ({at.path}): {message}",
                          tip="see checks/expect.py for the thresholds the suite understands"
                          ) from None


def _os_bases(node: Located) -> dict[str, OsBase]:
    bases = {}
    for name, entry in node.items():
        _name(entry, name, "OS base")
        fields = OS.of(entry)
        bootstrap = (BOOTSTRAP.of(fields["bootstrap"])
                     if "bootstrap" in fields else {})
        python = fields["python"].str(allow_numbers=True)
        if not PYTHON_VERSION.fullmatch(python):
            fields["python"].fail(f"python must be major.minor such as \"3.11\", got {python!r}",
                                  tip="quote it, so that 3.10 is not read as 3.1")
        bases[name] = OsBase(
            name=name,
            image=fields["image"].checked(
                kinds.reference_problem, "image",
                tip="write an image reference as `docker pull` takes it, e.g."
                    " debian:bookworm-slim or registry.example:5000/os/debian:12"),
            python=python,
            bootstrap_suite=_suite(bootstrap["suite"]) if bootstrap else None,
            bootstrap_mirror=_url(bootstrap["mirror"], MIRROR_SCHEMES) if "mirror" in bootstrap
            else "http://deb.debian.org/debian",
        )
    if not bases:
        node.fail("at least one OS base is needed")
    return bases


def _suite(node: Located) -> str:
    suite = node.str()
    problem = kinds.name_problem(suite)
    if problem:
        node.fail(f"{suite!r} {problem.replace('a name', 'a debootstrap suite name')}",
                  tip="e.g. bookworm or noble")
    return suite


def _flavors(node: Located, layers: dict[str, Layer]) -> dict[str, str]:
    """flavor name -> its top layer; every layer in a flavor's chain must itself be a flavor."""
    flavors: dict[str, str] = {}
    for name, layer_node in node.items():
        _name(layer_node, name, "flavor")
        layer = layer_node.str()
        if layer not in layers:
            layer_node.fail(f"flavor '{name}' uses unknown layer '{layer}'",
                            tip=f"layers under layers/: {', '.join(sorted(layers))}")
        if layer in flavors.values():
            other = next(f for f, used in flavors.items() if used == layer)
            layer_node.fail(f"flavors '{other}' and '{name}' both use layer '{layer}'",
                            tip="give each flavor its own layer")
        flavors[name] = layer
    if not flavors:
        node.fail("at least one flavor is needed")
    by_layer = {layer: flavor for flavor, layer in flavors.items()}
    for name, layer in flavors.items():
        for ancestor in layer_chain(layers, layer)[:-1]:
            if ancestor not in by_layer:
                node.value[name].fail(
                    f"flavor '{name}' builds on layer '{ancestor}', which no flavor builds",
                    tip=f"add a flavor for layer '{ancestor}'",
                )
    return flavors


def _tags(node: Located, flavors: dict[str, str]) -> TagPolicy:
    fields = TAGS.of(node)
    for key in ("release", "candidate"):
        _check_template(fields[key], forbidden=set() if key == "candidate" else {"hash12"})
    if "{hash12}" not in fields["candidate"].value:
        fields["candidate"].fail("the candidate tag must contain {hash12}, so it names one build")
    aliases = []
    for item in fields["aliases"].list() if "aliases" in fields else []:
        alias = ALIAS.of(item)
        _check_template(alias["tag"], forbidden={"hash12"})
        flavor = alias["flavor"].str() if "flavor" in alias else None
        if flavor is not None and flavor not in flavors:
            alias["flavor"].fail(f"unknown flavor '{flavor}'", tip=f"flavors: {', '.join(flavors)}")
        aliases.append(Alias(alias["tag"].str(), alias["default"].bool() if "default" in alias
                             else False, flavor))
    return TagPolicy(fields["release"].str(), fields["candidate"].str(), tuple(aliases))


def _check_template(node: Located, forbidden: set[str]) -> None:
    """A template for ids and tags: known placeholders, and what they fill in is a tag."""
    fields = TEMPLATE_FIELDS - forbidden
    _check_placeholders(node, fields)
    filled = node.value.format(**dict.fromkeys(fields, "x"))
    if not kinds.TAG.fullmatch(filled):
        node.fail(f"template {node.value!r} does not make a valid Docker tag",
                  tip="ids and tags may use letters, digits, '_', '.' and '-' around the"
                      " {placeholders}, at most 128 characters")


def _check_placeholders(node: Located, fields: set[str]) -> None:
    """Every {name} in the string is one of `fields`, and the string formats."""
    text = node.str()
    problem = kinds.placeholder_problem(text, fields)
    if problem:
        allowed = ", ".join("{" + f + "}" for f in sorted(fields)) or "no placeholders"
        node.fail(f"bad template {text!r}: it {problem}", tip=f"use {allowed}")


def _indexes(node: Located | None) -> dict[str, str]:
    indexes = dict(DEFAULT_INDEXES)
    if node is not None:
        for key, value in INDEXES.of(node).items():
            # The PyTorch index names the variant: .../whl/{cuda_tag}
            placeholders = {"cuda_tag"} if key == "pytorch" else set()
            _check_placeholders(value, placeholders)
            indexes[key] = _url(value, INDEX_SCHEMES, placeholders)
    return indexes


def _url(node: Located, schemes: tuple[str, ...],
         placeholders: set[str] | frozenset[str] = frozenset()) -> str:
    """A URL, judged as it will be used: with its placeholders filled in."""
    url = node.str()
    filled = url.format(**dict.fromkeys(placeholders, "x")) if placeholders else url
    problem = kinds.url_problem(filled, schemes)
    if problem:
        node.fail(f"{url!r} is not a URL: it {problem}",
                  tip=f"write an {' or '.join(schemes)} URL on one line, e.g. https://pypi.org/simple")
    return url


def _registry(node: Located) -> dict[str, str]:
    fields = REGISTRY.of(node)
    names = {key: fields[key].str() for key in ("local", "push")}
    for key, name in names.items():
        problem = kinds.repository_problem(name)
        if problem:
            fields[key].fail(f"{name!r} {problem}",
                             tip="write host[:port]/name in lower case, without a scheme or tag,"
                                 " e.g. 127.0.0.1:5000/torchstack")
    return names


def _compression(node: Located) -> Compression:
    fields = REGISTRY.of(node)
    if "compression" not in fields:
        return DEFAULT_COMPRESSION
    value = fields["compression"].value
    for choice in COMPRESSIONS:
        if value == choice:
            return choice
    return fields["compression"].fail(
        f"compression must be one of {', '.join(COMPRESSIONS)}, got {type_name(value)}",
        tip="gzip: every runtime; zstd: containerd >= 1.5 / Docker >= 23;"
            " both: zstd beside gzip (docs/registry.md)")


def _zstd_suffix(node: Located) -> str:
    fields = REGISTRY.of(node)
    if "zstd_suffix" not in fields:
        return DEFAULT_ZSTD_SUFFIX
    suffix = fields["zstd_suffix"].str()
    if not kinds.TAG_SUFFIX.fullmatch(suffix):
        fields["zstd_suffix"].fail(f"zstd_suffix {suffix!r} cannot end a tag name",
                                   tip="1 to 32 of letters, digits, '_', '.' and '-', e.g. -zstd")
    return suffix


def _zstd_tags(node: Located, images: tuple[ImageSpec, ...], candidate: str,
               suffix: str) -> None:
    problem = zstd_tag_problem(images, candidate, suffix)
    if problem:
        fields = REGISTRY.of(node)
        fields.get("zstd_suffix", fields.get("compression", node)).fail(
            problem, tip=ZSTD_TAGS_TIP)


def _promotion(node: Located | None) -> CheckLevel:
    if node is None:
        return "gpu"
    level = PROMOTION.of(node)["require"]
    if level.value == "cpu":
        return "cpu"
    if level.value == "gpu":
        return "gpu"
    return level.fail(f"require must be 'gpu' (full suite on a GPU runner) or 'cpu',"
                      f" got {type_name(level.value)}",
                      tip="write require: gpu or require: cpu")
