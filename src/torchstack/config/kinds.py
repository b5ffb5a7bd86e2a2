"""What a valid value of each kind looks like: URL, image reference, package pin, names, text.

Every value that reaches a Dockerfile, a shell script or a Docker API call is one of these
kinds, and is checked here when it is read (matrix.yaml, layer.yaml, flags, environment), so
that no value can carry a newline into a new Dockerfile instruction. Each check returns why
the value is wrong, or None; callers add where it was written.

Patterns are written `^...$` so that the JSON schemas can reuse them verbatim; Python code
must use `fullmatch` (`$` alone also matches before a trailing newline).
"""

from __future__ import annotations

import re
import string
import unicodedata
from urllib.parse import urlsplit

# distribution/reference's grammar (what `docker pull` accepts), split into its parts.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:.]+\])"
REPOSITORY = re.compile(rf"^(?:{_HOST}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
TAG_SUFFIX = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")  # appended to a tag (registry.zstd_suffix)
DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
MAX_NAME = 255  # a repository name, domain included
# An exact pin: name==version, nothing looser, so a rebuild installs the same thing.
EXACT_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,-]+\])?==[A-Za-z0-9.+!_-]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# os_bases, flavors and layer folders: they end up in ids, tags, labels and comments.
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# docker run --shm-size spellings that a Kubernetes quantity can also express: 2g, 512m, bytes.
SIZE = re.compile(r"^[0-9]+([bkmgBKMG]|[kmgKMG][bB])?$")
URL_SCHEMES = ("http", "https")
# RFC 3986 characters less `$` and `'`, which a Dockerfile ARG or a shell would interpret.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!&()*+,;=%]*")


# Free text longer than this is refused: a label or env value is one readable line, and
# BuildKit refuses a Dockerfile line over 64 KiB.
MAX_TEXT = 4096


def describe_char(char: str) -> str:
    """`U+200B ZERO WIDTH SPACE`: how every message names a character (they may look alike)."""
    fallback = {"Cc": "<control>", "Cs": "<surrogate>"}.get(unicodedata.category(char),
                                                           "<unnamed>")
    return f"U+{ord(char):04X} {unicodedata.name(char, fallback)}"


def odd_chars(text: str) -> list[str]:
    """The characters of `text` that are not printable ASCII, each described once."""
    return [describe_char(c) for c in dict.fromkeys(text) if not " " <= c <= "~"]


def name_problem(name: str) -> str | None:
    """A user-chosen name (OS base, flavor, layer folder): ASCII letters, digits, _ . -"""
    if NAME.fullmatch(name):
        return None
    odd = odd_chars(name)
    return "is not a name" + (f" (it contains {', '.join(odd)})" if odd else "")


def normalize(name: str) -> str:
    """PEP 503: the name a package index and a lock file agree on."""
    return re.sub(r"[-_.]+", "-", name).lower()


def text_problem(value: str) -> str | None:
    """Free text (a label, a description, an env value): one line, no control characters, no
    invisible format characters (bidi overrides, zero-width spaces), bounded length."""
    for char in value:
        if char in "\n\r":
            return f"contains a line break ({describe_char(char)})"
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            return f"contains the control character {describe_char(char)}"
        if category == "Cf":
            return f"contains the invisible format character {describe_char(char)}"
        if category == "Cs":  # YAML's "\udf00" escape: no UTF-8 file can hold it
            return f"contains the lone surrogate {describe_char(char)}"
    if len(value) > MAX_TEXT:
        return f"is {len(value)} characters long; at most {MAX_TEXT} are allowed"
    return None


def url_problem(url: str, schemes: tuple[str, ...] = URL_SCHEMES) -> str | None:
    problem = text_problem(url)
    if problem:
        return problem
    if any(char.isspace() for char in url):
        return "contains a space (percent-encode it as %20)"
    bad = next((c for c in url if not _URL_CHARS.fullmatch(c)), None)
    if bad is not None:
        return f"contains {bad!r}, which a URL may not hold unencoded (percent-encode it)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        return f"does not parse ({exc})"
    if parts.scheme not in schemes:
        return f"does not start with {' or '.join(f'{scheme}://' for scheme in schemes)}"
    if not parts.netloc and parts.scheme != "file":
        return "names no host"
    return None


def placeholder_problem(text: str, allowed: set[str] | frozenset[str]) -> str | None:
    """Every {name} is one of `allowed`, and the text formats with them."""
    allowed_text = ", ".join("{" + f + "}" for f in sorted(allowed)) or "no {placeholders}"
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        return f"has a malformed placeholder ({exc})"
    unknown = sorted(names - allowed)
    if unknown:
        return f"has the unknown placeholder {{{unknown[0]}}}; it may use {allowed_text}"
    try:
        text.format(**dict.fromkeys(allowed, "x"))
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        return f"has a malformed placeholder ({exc})"
    return None


def repository_problem(name: str) -> str | None:
    """A repository without tag: `host[:port]/path` or `path` (lower case)."""
    if not REPOSITORY.fullmatch(name):
        return ("is not an image repository name (host[:port]/name, the name in lower case,"
                " without a scheme, tag or digest)")
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    return None


def reference_problem(ref: str) -> str | None:
    """An image reference as `docker pull` takes it: repository[:tag][@digest]."""
    name, at, digest = ref.partition("@")
    if at and not DIGEST.fullmatch(digest):
        return f"has a malformed digest '{digest}' (algorithm:hex, e.g. sha256:...)"
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:  # the colon was a registry port, not a tag
        repository, tag = name, ""
    elif not TAG.fullmatch(tag):
        return f"has a malformed tag '{tag}' (letters, digits, '_', '.', '-'; at most 128)"
    problem = repository_problem(repository)
    return None if problem is None else problem.replace("without a scheme, tag or digest",
                                                        "then an optional :tag or @digest")


def size_problem(size: str) -> str | None:
    """A docker --shm-size: a byte count with an optional b, k, m or g unit."""
    if not SIZE.fullmatch(size):
        return "is not a size such as 2g, 512m or 1073741824 (bytes)"
    if int(re.sub(r"\D", "", size)) == 0:
        return "must be more than 0"
    return None
