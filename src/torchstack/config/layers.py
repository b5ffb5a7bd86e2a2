"""Load `layers/<name>/layer.yaml` (+ `Dockerfile.fragment`) into `Layer` objects."""

from __future__ import annotations

import difflib
from pathlib import Path

from torchstack.checks.registry import ALL_CHECKS
from torchstack.config import kinds, schemas
from torchstack.config.compat import COMPANIONS
from torchstack.config.fragment import check_fragment
from torchstack.config.located import Located, load_yaml, read_config_text
from torchstack.config.model import Layer
from torchstack.errors import ConfigError
from torchstack.workspace.paths import shown

LAYER = schemas.keys(schemas.LAYER)
TORCH_FAMILY = ("torch", *COMPANIONS)
EXACT_PIN = kinds.EXACT_PIN
# The in-container suite's own ids (importing the registry does not import torch).
CHECK_IDS = [spec.id for spec in ALL_CHECKS]
ENV_NAME = kinds.ENV_NAME
FRAGMENT = "Dockerfile.fragment"


def load_layers(layers_dir: Path, display_root: Path) -> dict[str, Layer]:
    if not layers_dir.is_dir():
        raise ConfigError(f"{shown(display_root, layers_dir)}/: the layers folder is missing",
                          tip="every matrix needs a layers/ folder beside matrix.yaml")
    layers: dict[str, Layer] = {}
    parent_at: dict[str, str] = {}  # layer -> "file:line" of its `parent:` key, for errors
    # Hidden folders (.git, editor state) are not layers.
    for folder in sorted(p for p in layers_dir.iterdir() if p.is_dir() and p.name[0] != "."):
        problem = kinds.name_problem(folder.name)
        if problem:
            raise ConfigError(f"{shown(display_root, folder)}: the layer name {folder.name!r}"
                              f" {problem}", tip="rename the folder: letters, digits, '_', '.',"
                                                 " '-'")
        spec = folder / "layer.yaml"
        if not spec.is_file():
            raise ConfigError(f"{shown(display_root, folder)}: no layer.yaml in this folder",
                              tip="add one (parent, packages, ...) or remove the folder")
        layers[folder.name], parent_at[folder.name] = _load_layer(folder, spec, display_root)
    _check_parents(layers, parent_at)
    return layers


def _load_layer(folder: Path, spec: Path, display_root: Path) -> tuple[Layer, str]:
    doc = load_yaml(spec, shown(display_root, spec))
    fields = LAYER.of(doc)
    parent = fields["parent"]
    packages = _pins(fields["packages"]) if "packages" in fields else []
    torch_packages = _torch_packages(fields.get("torch_packages"))
    env: list[tuple[str, str]] = []
    if "env" in fields:
        for name, value in fields["env"].items():
            if not ENV_NAME.fullmatch(name):
                odd = kinds.odd_chars(name)
                value.fail(f"{name!r} is not a valid environment variable name"
                           + (f" (it contains {', '.join(odd)})" if odd else ""),
                           tip="letters, digits and '_', not starting with a digit")
            env.append((name, value.checked(kinds.text_problem, f"the value of {name}",
                                            tip="an env value is one line of text",
                                            allow_numbers=True)))
    checks = []
    for item in fields["checks"].list() if "checks" in fields else []:
        if item.str() not in CHECK_IDS:
            close = difflib.get_close_matches(item.value, CHECK_IDS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            odd = kinds.odd_chars(item.value)
            if odd:  # 'nc\u200bcl' prints as 'nccl': say what is in it
                hint = f" (it contains {', '.join(odd)}){hint}"
            item.fail(f"unknown check '{item.value}'{hint}",
                      tip=f"checks the suite has: {', '.join(CHECK_IDS)}")
        checks.append(item.value)
    fragment_path = folder / FRAGMENT
    fragment_name = shown(display_root, fragment_path)
    fragment = (read_config_text(fragment_path, fragment_name)
                if fragment_path.exists() or fragment_path.is_symlink() else "")
    check_fragment(fragment, fragment_name)
    description = (fields["description"].checked(kinds.text_problem, "description",
                                                 tip="a description is one line of text")
                   if "description" in fields else "")
    layer = Layer(
        name=folder.name,
        parent=None if parent.value is None else parent.str(),
        description=description,
        packages=tuple(packages),
        torch_packages=tuple(torch_packages),
        env=tuple(env),
        checks=tuple(checks),
        fragment=fragment.strip(),
    )
    schemas.validate(doc, schemas.LAYER)  # last: the loader's own messages come first
    return layer, parent.where


def _pins(node: Located) -> list[str]:
    """The layer's exact pins; one package pinned twice (numpy==2.2.6, NumPy==2.3.0) is refused
    here rather than left for the resolver to pick one."""
    pins: list[str] = []
    seen: dict[str, Located] = {}
    for item in node.list():
        pin = _pin(item)
        name = kinds.normalize(pin.split("==")[0].split("[")[0])
        if name in seen:
            item.fail(f"{name} is pinned twice in this layer ('{seen[name].value}' at line"
                      f" {seen[name].line}, and '{pin}')", tip="keep one pin per package")
        seen[name] = item
        pins.append(pin)
    return pins


def _pin(item: Located) -> str:
    pin = item.str()
    if not EXACT_PIN.fullmatch(pin):
        item.fail(f"'{pin}' is not an exact pin", tip="write packages as name==version")
    if pin.split("==")[0].lower() in TORCH_FAMILY:
        item.fail(f"'{pin}' belongs in torch_packages, where its version follows torch")
    return pin


def _torch_packages(node: Located | None) -> list[str]:
    if node is None:
        return []
    names = []
    for item in node.list():
        name = item.str()
        if name not in TORCH_FAMILY:
            item.fail(f"'{name}' is not a torch-family package",
                      tip=f"torch_packages takes {', '.join(TORCH_FAMILY)}; pin others in packages")
        names.append(name)
    return names


def _check_parents(layers: dict[str, Layer], parent_at: dict[str, str]) -> None:
    # Every parent first, so that walking a chain below never meets a missing one.
    for layer in layers.values():
        if layer.parent is not None and layer.parent not in layers:
            raise ConfigError(
                f"{parent_at[layer.name]} (parent): layer '{layer.name}' names parent"
                f" '{layer.parent}', which is not a folder under layers/",
                tip=f"layers found: {', '.join(sorted(layers))}",
            )
    for layer in layers.values():
        seen = [layer.name]
        current = layer.parent
        while current is not None:
            if current in seen:
                # Name the cycle itself, at the `parent:` that closes it.
                cycle = " -> ".join([*seen[seen.index(current):], current])
                raise ConfigError(f"{parent_at[seen[-1]]} (parent): layers form a cycle: {cycle}",
                                  tip="one layer of the cycle must have `parent: null` or"
                                      " another parent")
            seen.append(current)
            current = layers[current].parent


def layer_chain(layers: dict[str, Layer], name: str) -> tuple[str, ...]:
    """Root first: ("torch", "vision")."""
    chain = [name]
    parent = layers[name].parent
    while parent is not None:
        chain.append(parent)
        parent = layers[parent].parent
    return tuple(reversed(chain))


