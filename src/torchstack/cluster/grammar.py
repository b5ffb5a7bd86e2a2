"""The Kubernetes API's own grammar for every value a flag puts into a manifest. Pure.

Each parser takes the flag's text and returns the value or raises ConfigError naming the flag.
Every pattern is matched whole (`re.fullmatch`) with ASCII classes (`[0-9]`, never `\\d`, which
also takes Arabic-Indic digits), so a trailing newline or a look-alike digit cannot slip
through. Control characters and Unicode format characters (category Cf: zero-width spaces,
bidi overrides) are refused in any value, named by code point and name.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

from torchstack.errors import ConfigError

# RFC 1123 label (namespaces, Service names, Job names, container and volume names).
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# RFC 1123 subdomain (PVC names, label-key prefixes): dot-separated labels, at most 253.
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A qualified name's name part and a label value: at most 63, alphanumeric at both ends.
_NAME_PART = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# An environment variable name, as a shell can export it (C identifier).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A resource quantity (k8s.io/apimachinery resource.Quantity), unsigned: a number, then a
# binary (Ki..Ei), decimal (n, u, m, k, M, G, T, P, E) or exponent (e3, E-2) suffix.
QUANTITY = re.compile(r"(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)"
                      r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")
TOLERATION_OPERATORS = ("Exists", "Equal")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MAX_VALUE_CHARS = 4096  # no flag value needs more; a 70,000-character one is a mistake


def refuse_unprintable(text: str, flag: str) -> str:
    """`text` unchanged, or ConfigError naming the first control or format character."""
    if len(text) > MAX_VALUE_CHARS:
        raise ConfigError(f"{flag}: the value has {len(text)} characters, over"
                          f" {MAX_VALUE_CHARS}", tip=f"shorten the {flag} value")
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category in ("Cc", "Cf") or char in "\u2028\u2029":
            name = unicodedata.name(char, "control character")
            raise ConfigError(
                f"{flag}: character {index + 1} of the value is U+{ord(char):04X} {name}"
                f" ({'format' if category == 'Cf' else 'control'} character)",
                tip=f"retype the {flag} value: it holds an invisible character (pasted text"
                    " often does)")
    return text


def parse_dns_label(text: str, flag: str, what: str = "name") -> str:
    refuse_unprintable(text, flag)
    if not DNS_LABEL.fullmatch(text):
        raise ConfigError(f"bad {flag} {text!r}: a {what} is an RFC 1123 label",
                          tip="use at most 63 lowercase letters, digits and '-', starting and"
                              " ending with a letter or digit, e.g. gpu-jobs")
    return text


def parse_namespace(text: str) -> str:
    return parse_dns_label(text, "--namespace", "namespace")


def parse_dns_subdomain(text: str, flag: str, what: str = "name") -> str:
    refuse_unprintable(text, flag)
    if len(text) > 253 or not DNS_SUBDOMAIN.fullmatch(text):
        raise ConfigError(f"bad {flag} {text!r}: a {what} is an RFC 1123 subdomain",
                          tip="use lowercase letters, digits, '-' and '.', at most 253"
                              " characters, e.g. training-data")
    return text


def is_label_key(key: str) -> bool:
    """`[prefix/]name`: prefix an RFC 1123 subdomain (<= 253), name <= 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return bool(_NAME_PART.fullmatch(name))


def is_label_value(value: str) -> bool:
    return bool(LABEL_VALUE.fullmatch(value))


def parse_node_selector(text: str) -> tuple[str, str]:
    refuse_unprintable(text, "--node-selector")
    key, sep, value = text.partition("=")
    if not sep or not is_label_key(key) or not is_label_value(value):
        raise ConfigError(f"bad --node-selector {text!r}",
                          tip="use KEY=VALUE with a label key ([prefix/]name, the name at most"
                              " 63 characters) and a value of at most 63, e.g."
                              " nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3")
    return key, value


def parse_toleration(text: str) -> dict[str, str]:
    """`key[=value]:effect` -> a toleration (operator Equal with a value, else Exists)."""
    refuse_unprintable(text, "--toleration")
    head, sep, effect = text.rpartition(":")
    key, has_value, value = head.partition("=")
    tip = f"use KEY[=VALUE]:EFFECT with EFFECT one of {', '.join(EFFECTS)}"
    if not sep or effect not in EFFECTS or not is_label_key(key):
        raise ConfigError(f"bad --toleration {text!r}", tip=tip)
    if has_value:
        # The API server checks a toleration's value as a label value.
        if not is_label_value(value):
            raise ConfigError(f"bad --toleration {text!r}: {value!r} is not a label value",
                              tip=tip + "; VALUE is at most 63 letters, digits, '-', '_', '.'")
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


def parse_quantity(text: str, flag: str, example: str) -> str:
    """A positive Kubernetes quantity (`500m`, `4`, `16Gi`, `1e9`), as the API server takes it."""
    refuse_unprintable(text, flag)
    match = QUANTITY.fullmatch(text)
    tip = (f"use a number with an optional suffix (Ki, Mi, Gi, m, k, M, G), e.g. {example}")
    if match is None:
        raise ConfigError(f"bad {flag} {text!r}: not a Kubernetes quantity", tip=tip)
    try:
        positive = Decimal(match.group("number")) > 0
    except InvalidOperation:  # pragma: no cover - the pattern only admits decimals
        positive = False
    if not positive:
        raise ConfigError(f"bad {flag} {text!r}: not a positive Kubernetes quantity", tip=tip)
    return text


def parse_env(text: str) -> tuple[str, str]:
    """`NAME=VALUE` -> (name, value); the name a C identifier, the value printable."""
    name, sep, value = text.partition("=")
    refuse_unprintable(text, "--env")
    if not sep or not ENV_NAME.fullmatch(name):
        raise ConfigError(f"bad --env {text!r}: {name!r} is not an environment variable name",
                          tip="use NAME=VALUE, NAME made of letters, digits and '_', not"
                              " starting with a digit, e.g. NCCL_DEBUG=INFO")
    return name, value


def parse_mount_path(text: str, flag: str) -> str:
    """An absolute path inside the container, without '..' or ':' (the API refuses both)."""
    refuse_unprintable(text, flag)
    parts = text.split("/")
    if (not text.startswith("/") or ".." in parts or ":" in text or text == "/"
            or not re.fullmatch(r"[A-Za-z0-9._/@+=,-]+", text)):
        raise ConfigError(f"bad {flag} path {text!r}",
                          tip="use an absolute path of letters, digits and ._-/ without '..',"
                              " e.g. /data")
    return text


def parse_volume(text: str) -> tuple[str, str]:
    """`PVC:PATH` -> (claim name, mount path)."""
    refuse_unprintable(text, "--volume")
    claim, sep, path = text.partition(":")
    if not sep or not path:
        raise ConfigError(f"bad --volume {text!r}: no mount path",
                          tip="use PVC:PATH, e.g. --volume datasets:/data")
    return parse_dns_subdomain(claim, "--volume", "PersistentVolumeClaim name"), \
        parse_mount_path(path, "--volume")


def parse_argument(text: str, flag: str) -> str:
    """A word of the training command: any printable text."""
    return refuse_unprintable(text, flag)
