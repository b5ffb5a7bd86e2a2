"""Every way matrix.yaml or a layer.yaml can be wrong: exit 2, what, where (file:line, key path).

Each case edits one file of a small valid matrix written into tmp_path, runs
`torchstack --matrix ... plan`, and checks the error line names the file, the line (found by a
marker in the edited text, so the expectation cannot drift from the input) and the key path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from torchstack.cli import main
from torchstack.config.matrix import load_matrix
from torchstack.errors import ConfigError

MATRIX = """\
# A small matrix that loads; each case breaks one thing.
schema_version: 1
id_template: "torch{torch}-{cuda_tag}-py{python}-{flavor}"
os_bases:
  bookworm:
    image: debian:bookworm-slim
    python: "3.11"
    bootstrap: {suite: bookworm, mirror: "http://deb.debian.org/debian"}
flavors:
  base: torch
  vision: vision
axes:
  torch: ["2.9.1"]
  cuda: ["12.6", "12.8"]
  os: [bookworm]
  flavor: [base, vision]
include:
  - {torch: "2.7.1", cuda: "11.8", flavor: base, legacy: true}
default_group: ["torch2.9.1-cu128-*"]
indexes:
  pypi: "https://pypi.org/simple"
  pytorch: "https://download.pytorch.org/whl/{cuda_tag}"
registry:
  local: torchstack
  push: "127.0.0.1:5000/torchstack"
tags:
  release: "{torch}-cuda{cuda}-py{python}-{flavor}"
  candidate: "{id}-{hash12}"
  aliases:
    - tag: "{torch_minor}-cuda{cuda}-{flavor}"
    - {tag: latest, default: true, flavor: base}
promotion:
  require: gpu
checks:
  shm_size: 2g
  timeout_s: 900
  thresholds:
    shm_min_bytes: 1073741824
"""

TORCH_LAYER = """\
parent: null
description: the root layer
torch_packages: [torch]
packages:
  - numpy==2.2.6
checks: [versions, cuda]
"""

VISION_LAYER = """\
parent: torch
description: torchvision
torch_packages: [torchvision]
packages:
  - pillow==11.3.0
env:
  FOO: "1"
checks: [vision]
"""

FILES = {
    "matrix.yaml": MATRIX,
    "layers/torch/layer.yaml": TORCH_LAYER,
    "layers/vision/layer.yaml": VISION_LAYER,
}

BILLION_LAUGHS = """\
  thresholds:
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@dataclass(frozen=True)
class Case:
    edit: str  # the file changed
    old: str | None  # text replaced; None: `new` is the whole file; "DELETE": remove the file
    new: str
    where: str  # the file the error names
    marker: str | None  # the error's line is the line holding this text (nth occurrence)
    path: str | None  # key path printed after file:line; None: none is printed
    says: tuple[str, ...]  # substrings of the message
    nth: int = 1


M, T, V = "matrix.yaml", "layers/torch/layer.yaml", "layers/vision/layer.yaml"


def case(case_id: str, *args: object, **kwargs: object) -> object:
    return pytest.param(Case(*args, **kwargs), id=case_id)  # type: ignore[arg-type]


CASES = [
    # Unknown keys, with "did you mean".
    case("unknown-top-key", M, "promotion:", "promotoin:", M, "promotoin:", "promotoin",
         ("unknown key 'promotoin'", "did you mean 'promotion'?", "tip: allowed keys here")),
    case("unknown-nested-key", M, '    python: "3.11"', '    pyhton: "3.11"', M, "pyhton",
         "os_bases.bookworm.pyhton", ("unknown key 'pyhton'", "did you mean 'python'?")),
    case("unknown-key-nested-value-line", M, "os_bases:", "os_base:", M, "os_base:", "os_base",
         ("unknown key 'os_base'", "did you mean 'os_bases'?")),
    case("unknown-alias-key", M, "default: true", "defualt: true", M, "defualt",
         "tags.aliases[1].defualt", ("did you mean 'default'?",)),
    case("unknown-include-key", M, "legacy: true", "legasy: true", M, "legasy",
         "include[0].legasy", ("did you mean 'legacy'?",)),
    case("unknown-layer-key", V, "\npackages:", "\npakages:", V, "pakages:", "pakages",
         ("unknown key 'pakages'", "did you mean 'packages'?")),
    case("unknown-key-no-suggestion", M, "promotion:", "zzzzzz:", M, "zzzzzz", "zzzzzz",
         ("unknown key 'zzzzzz'", "allowed keys here: axes, checks")),
    # Wrong types.
    case("axis-not-a-list", M, 'torch: ["2.9.1"]', 'torch: "2.9.1"', M, 'torch: "2.9.1"',
         "axes.torch", ("expected a list, got the string '2.9.1'",)),
    case("number-is-text", M, "timeout_s: 900", "timeout_s: soon", M, "timeout_s",
         "checks.timeout_s", ("expected a number, got the string 'soon'",)),
    case("number-too-small", M, "timeout_s: 900", "timeout_s: 0", M, "timeout_s",
         "checks.timeout_s", ("must be at least 1",)),
    case("bool-is-text", M, "default: true", 'default: "yes"', M, 'default: "yes"',
         "tags.aliases[1].default", ("expected true or false, got the string 'yes'",)),
    case("mapping-is-list", M, "flavors:\n  base: torch\n  vision: vision",
         "flavors: [base, vision]", M, "flavors: [", "flavors",
         ("expected a mapping, got a list",)),
    case("layer-checks-not-list", V, "checks: [vision]", "checks: vision", V, "checks:",
         "checks", ("expected a list, got the string 'vision'",)),
    case("thresholds-not-mapping", M, "  thresholds:\n    shm_min_bytes: 1073741824",
         "  thresholds: 5", M, "thresholds:", "checks.thresholds", ("expected a mapping",)),
    case("schema-version", M, "schema_version: 1", "schema_version: 2", M, "schema_version",
         "schema_version", ("only schema_version 1 is understood",)),
    case("schema-version-bool", M, "schema_version: 1", "schema_version: true", M,
         "schema_version", "schema_version", ("only schema_version 1", "True")),
    # Whole documents.
    case("empty-document", M, None, "", M, None, None, ("the document is empty",)),
    case("comments-only", M, None, "# nothing here\n", M, None, None, ("the document is empty",)),
    case("document-is-list", M, None, "- torch\n- cuda\n", M, None, None,
         ("expected a mapping, got a list",)),
    case("document-is-scalar", M, None, "just some text\n", M, None, None,
         ("expected a mapping, got the string 'just some text'",)),
    case("layer-document-is-list", T, None, "- parent\n", T, None, None,
         ("expected a mapping, got a list",)),
    case("two-documents", M, "registry:", "---\nregistry:", M, "---", None,
         ("YAML syntax error", "single document")),
    case("control-character", M, "local: torchstack", "local: torch\x07stack", M,
         "local: torch", None, ("not YAML text", "U+0007 <control>")),
    # YAML syntax.
    case("syntax-unclosed-flow", M, 'cuda: ["12.6", "12.8"]', 'cuda: ["12.6", "12.8"', M,
         "  os: [bookworm]", None, ("YAML syntax error", "expected ',' or ']'")),
    case("syntax-bad-indent", M, "  vision: vision", "   vision: vision", M, "   vision", None,
         ("YAML syntax error",)),
    case("syntax-in-layer", V, 'FOO: "1"', 'FOO: "1"\n  - BAR', V, "- BAR", None,
         ("YAML syntax error", "expected <block end>, but found '-'")),
    case("syntax-unclosed-quote", V, 'FOO: "1"', 'FOO: "1', V, "<EOF>", None,
         ("YAML syntax error", "while scanning a quoted scalar (line 7)",
          "found unexpected end of stream")),
    case("syntax-tab", T, "  - numpy==2.2.6", "\t- numpy==2.2.6", T, "\t- numpy", None,
         ("YAML syntax error", "found character '\\t'", "tip: YAML indents with spaces")),
    # Duplicates, aliases, merge keys, keys that are not strings.
    case("duplicate-top-key", M, "promotion:", "flavors: {x: torch}\npromotion:", M, "flavors:",
         "flavors", ("duplicate key 'flavors' (first at line 9)",), nth=2),
    case("duplicate-layer-key", V, 'FOO: "1"', 'FOO: "1"\n  FOO: "2"', V, 'FOO: "2"', "env.FOO",
         ("duplicate key 'FOO'",)),
    # Counting stops inside `e` (10, 91, 820, 7381, 66430 > 50000 values), on a value written
    # (anchored) on the line of `a`.
    case("alias-bomb", M, "  thresholds:\n    shm_min_bytes: 1073741824\n", BILLION_LAUGHS, M,
         "a: &a", "checks.thresholds.e[5][5][6][4][0]",
         ("more than 50000 values through aliases", "alias bomb")),
    case("recursive-alias", M, "shm_min_bytes: 1073741824", "loop: &x [*x]", M, "loop:",
         "checks.thresholds.loop[0]", ("recursive alias",)),
    case("merge-key", M, "    bootstrap: {suite: bookworm, mirror: \"http://deb.debian.org/debian\"}",
         "  noble: &n {image: 'ubuntu:24.04', python: '3.12'}\n  other:\n    <<: *n", M,
         "<<: *n", "os_bases.other", ("merge keys (<<) are not supported",)),
    case("int-key", M, "  vision: vision", "  1: vision", M, "1: vision", "flavors",
         ("keys must be strings, got int 1", "quote it")),
    case("null-key", V, 'FOO: "1"', '~: "1"', V, '~: "1"', "env",
         ("keys must be strings, got nothing (null)",)),
    case("python-tag", M, "local: torchstack", "local: !!python/name:os.system", M, "local:",
         "registry.local", ("bad value", "could not determine a constructor")),
    # Layers.
    case("layer-cycle", T, "parent: null", "parent: vision", V, "parent: torch", "parent",
         ("layers form a cycle: torch -> vision -> torch", "tip: one layer of the cycle")),
    case("layer-self-parent", V, "parent: torch", "parent: vision", V, "parent:", "parent",
         ("layers form a cycle: vision -> vision",)),
    case("missing-parent", V, "parent: torch", "parent: torhc", V, "parent:", "parent",
         ("layer 'vision' names parent 'torhc', which is not a folder under layers/",
          "tip: layers found: torch, vision")),
    case("missing-parent-key", V, "parent: torch\n", "", V, "description:", None,
         ("missing required key 'parent'",)),
    case("unknown-layer-in-flavor", M, "  vision: vision", "  vision: visoin", M,
         "vision: visoin", "flavors.vision", ("flavor 'vision' uses unknown layer 'visoin'",
                                              "tip: layers under layers/: torch, vision")),
    case("flavor-ancestor-without-flavor", M, "  base: torch\n", "", M, "  vision: vision",
         "flavors.vision", ("builds on layer 'torch', which no flavor builds",)),
    case("two-flavors-one-layer", M, "  vision: vision", "  vision: vision\n  core: torch", M,
         "core: torch", "flavors.core", ("flavors 'base' and 'core' both use layer 'torch'",)),
    case("loose-pin", T, "numpy==2.2.6", "numpy>=1", T, "numpy>=1", "packages[0]",
         ("'numpy>=1' is not an exact pin", "tip: write packages as name==version")),
    case("unpinned", V, "pillow==11.3.0", "pillow", V, "- pillow", "packages[0]",
         ("'pillow' is not an exact pin",)),
    case("torch-in-packages", V, "pillow==11.3.0", "torch==2.9.1", V, "torch==2.9.1",
         "packages[0]", ("'torch==2.9.1' belongs in torch_packages",)),
    case("not-torch-family", V, "torch_packages: [torchvision]", "torch_packages: [numpy]", V,
         "torch_packages:", "torch_packages[0]", ("'numpy' is not a torch-family package",)),
    case("bad-env-name", V, 'FOO: "1"', 'FOO-BAR: "1"', V, "FOO-BAR", "env.FOO-BAR",
         ("'FOO-BAR' is not a valid environment variable name",)),
    case("env-name-digit", V, 'FOO: "1"', '1FOO: "1"', V, "1FOO", "env.1FOO",
         ("'1FOO' is not a valid environment variable name",)),
    case("unknown-check", V, "checks: [vision]", "checks: [visoin]", V, "checks:",
         "checks[0]", ("unknown check 'visoin'; did you mean 'vision'?",
                       "tip: checks the suite has: versions")),
    case("check-not-a-string", V, "checks: [vision]", "checks: [{vision: 1}]", V, "checks:",
         "checks[0]", ("expected a non-empty string, got a mapping",)),
    # Templates and tags.
    case("unknown-placeholder", M, 'id_template: "torch{torch}-{cuda_tag}-py{python}-{flavor}"',
         'id_template: "torch{torch}-{cuda_version}-{flavor}"', M, "id_template", "id_template",
         ("unknown placeholder {cuda_version}", "tip: use {cuda}")),
    case("id-uses-hash", M, 'id_template: "torch{torch}-{cuda_tag}-py{python}-{flavor}"',
         'id_template: "{torch}-{hash12}"', M, "id_template", "id_template",
         ("unknown placeholder {hash12}",)),
    case("template-syntax", M, 'release: "{torch}-cuda{cuda}-py{python}-{flavor}"',
         'release: "{torch-cuda"', M, "release:", "tags.release", ("bad template",)),
    case("template-conversion", M, 'release: "{torch}-cuda{cuda}-py{python}-{flavor}"',
         'release: "{torch!z}-{flavor}"', M, "release:", "tags.release", ("bad template",)),
    case("candidate-without-hash", M, 'candidate: "{id}-{hash12}"', 'candidate: "{id}"', M,
         "candidate:", "tags.candidate", ("must contain {hash12}",)),
    case("release-tag-collision", M, 'release: "{torch}-cuda{cuda}-py{python}-{flavor}"',
         'release: "{torch}-{flavor}"', M, "release:", "tags.release",
         ("tag '2.9.1-base' would name both torch2.9.1-cu126-py3.11-base and"
          " torch2.9.1-cu128-py3.11-base",)),
    case("alias-collision", M, '- tag: "{torch_minor}-cuda{cuda}-{flavor}"',
         '- tag: "{torch_minor}-{flavor}"', M, "- tag:", "tags.aliases",
         ("tag '2.9-base' would name both",)),
    case("id-collision", M, '{torch: "2.7.1", cuda: "11.8"', '{torch: "2.9.1", cuda: "12.8"', M,
         "legacy: true", "include[0].flavor",
         ("two different images get the id 'torch2.9.1-cu128-py3.11-base' (legacy: False vs"
          " True)",)),
    case("id-not-a-docker-tag", M, 'id_template: "torch{torch}-', 'id_template: "torch {torch}-',
         M, "id_template:", "id_template", ("does not make a valid Docker tag",)),
    # Axes, include, exclude, default group.
    case("empty-axis", M, 'cuda: ["12.6", "12.8"]', "cuda: []", M, "cuda: []", "axes.cuda",
         ("axis 'cuda' is empty",)),
    case("axes-missing-torch", M, '  torch: ["2.9.1"]\n', "", M, "  cuda: [", "axes",
         ("missing required key 'torch'",)),
    case("unknown-os-in-axes", M, "os: [bookworm]", "os: [bookworm, trixie]", M, "os: [",
         "axes.os[1]", ("unknown OS base 'trixie'", "tip: os_bases: bookworm")),
    case("unknown-os-in-include", M, "flavor: base, legacy: true", "os: noble, legacy: true", M,
         "os: noble", "include[0].os", ("unknown OS base 'noble'",)),
    case("unknown-flavor-in-include", M, "flavor: base, legacy", "flavor: nlp, legacy", M,
         "flavor: nlp", "include[0].flavor", ("unknown flavor 'nlp'", "tip: flavors: base")),
    case("unknown-flavor-in-axes", M, "flavor: [base, vision]", "flavor: [base, visoin]", M,
         "flavor: [", "axes.flavor[1]", ("unknown flavor 'visoin'",)),
    case("exclude-matches-nothing", M, "include:", "exclude:\n  - {cuda: \"12.9\"}\ninclude:", M,
         '{cuda: "12.9"}', "exclude[0]", ("matches no combination",)),
    case("everything-excluded", M, "include:\n  - {torch: \"2.7.1\", cuda: \"11.8\", flavor: base,"
         " legacy: true}\ndefault_group: [\"torch2.9.1-cu128-*\"]\n",
         "exclude:\n  - {torch: \"2.9.1\"}\n", M, "  torch: [", "axes", ("expands to no images",)),
    case("default-group-matches-nothing", M, 'default_group: ["torch2.9.1-cu128-*"]',
         'default_group: ["torch3*"]', M, "default_group", "default_group[0]",
         ("default_group pattern 'torch3*' matches no image",)),
    case("promotion-level", M, "require: gpu", "require: always", M, "require:",
         "promotion.require", ("require must be 'gpu'", "'always'")),
    # URLs and names.
    case("index-not-url", M, 'pypi: "https://pypi.org/simple"', 'pypi: "pypi.org/simple"', M,
         "pypi:", "indexes.pypi", ("'pypi.org/simple' is not a URL",)),
    case("index-bad-placeholder", M, "whl/{cuda_tag}", "whl/{cuda}", M, "pytorch:",
         "indexes.pytorch", ("unknown placeholder {cuda}", "tip: use {cuda_tag}")),
    case("mirror-not-url", M, 'mirror: "http://deb.debian.org/debian"', 'mirror: "deb.debian.org"',
         M, "mirror:", "os_bases.bookworm.bootstrap.mirror", ("'deb.debian.org' is not a URL",)),
    case("registry-with-scheme", M, 'push: "127.0.0.1:5000/torchstack"',
         'push: "https://127.0.0.1:5000/torchstack"', M, "push:", "registry.push",
         ("is not an image repository name",)),
    case("python-not-version", M, 'python: "3.11"', 'python: "three"', M, "python:",
         "os_bases.bookworm.python", ("python must be major.minor",)),
    # Missing pieces.
    case("missing-top-key", M,
         "registry:\n  local: torchstack\n  push: \"127.0.0.1:5000/torchstack\"\n", "", M,
         "schema_version", None, ("missing required key 'registry'",)),
    case("missing-os-image", M, "    image: debian:bookworm-slim\n", "", M, "    python:",
         "os_bases.bookworm", ("missing required key 'image'",)),
    case("missing-layers-folder", T, "DELETE", "", "layers/", None, None,
         ("the layers folder is missing", "tip: every matrix needs a layers/ folder")),
    case("layer-without-layer-yaml", "layers/extra/Dockerfile.fragment", None, "RUN true\n",
         "layers/extra", None, None, ("no layer.yaml in this folder",)),
    # Compatibility (details in test_compat.py).
    case("torch-2.9-cuda-11.8", M, 'cuda: ["12.6", "12.8"]', 'cuda: ["12.8", "11.8"]', M,
         "cuda: [", "axes.cuda[1]", ("torch 2.9.1 has no CUDA 11.8 build", "12.6 (cu126)",
                                     "12.8 (cu128)", "13.0 (cu130)", "cu118 last shipped in"
                                     " torch 2.7.1")),
    case("torch-2.9-python-3.9", M, 'python: "3.11"', 'python: "3.9"', M, "os: [bookworm]",
         "axes.os[0]", ("torch 2.9.1 supports Python 3.10 to 3.14, not 3.9",
                        "OS base 'bookworm' has Python 3.9")),
    case("torch-never-released", M, 'torch: ["2.9.1"]', 'torch: ["2.9.7"]', M, "torch: [",
         "axes.torch[0]", ("torch 2.9.7 was never released; known releases: 2.9.0, 2.9.1",)),
    case("include-cuda-unsupported", M, 'cuda: "11.8", flavor', 'cuda: "13.0", flavor', M,
         "legacy: true", "include[0].cuda", ("torch 2.7.1 has no CUDA 13.0 build",
                                             "11.8 (cu118), 12.6 (cu126), 12.8 (cu128)")),
]


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "matrix.yaml"


def apply(c: Case) -> dict[str, str]:
    files = dict(FILES)
    if c.old == "DELETE":
        files = {k: v for k, v in files.items() if not k.startswith("layers/")}
    elif c.old is None:
        files[c.edit] = c.new
    else:
        assert files[c.edit].count(c.old) == 1, f"the case's text is not in {c.edit}: {c.old!r}"
        files[c.edit] = files[c.edit].replace(c.old, c.new)
    return files


def expected_location(c: Case, files: dict[str, str]) -> str:
    if c.marker is None:
        line = 1
    elif c.marker == "<EOF>":
        line = len(files[c.where].splitlines()) + 1
    else:
        lines = files[c.where].splitlines()
        hits = [n for n, text in enumerate(lines, 1) if c.marker in text]
        assert len(hits) >= c.nth, f"marker {c.marker!r} not in {c.where}"
        line = hits[c.nth - 1]
    where = f"{c.where}:{line}" if c.where in files else c.where
    return f"{where} ({c.path}): " if c.path else f"{where}: "


def test_the_base_matrix_loads(tmp_path: Path) -> None:
    matrix = load_matrix(write(tmp_path, FILES))
    assert [i.id for i in matrix.images] == [
        "torch2.9.1-cu126-py3.11-base", "torch2.9.1-cu126-py3.11-vision",
        "torch2.9.1-cu128-py3.11-base", "torch2.9.1-cu128-py3.11-vision",
        "torch2.7.1-cu118-py3.11-base",
    ]


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("c", CASES)
def test_bad_input_exits_2_naming_what_and_where(
    c: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = apply(c)
    path = write(tmp_path, files)
    assert main(["--matrix", str(path), "plan"]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith("error: " + expected_location(c, files)), err
    for text in c.says:
        assert text in err, f"{text!r} not in:\n{err}"
    assert not (tmp_path / "images").exists()  # nothing rendered, nothing built
    # The library raises the same ConfigError the CLI printed.
    with pytest.raises(ConfigError) as caught:
        load_matrix(path)
    assert f"error: {caught.value.message}" in err


def test_unknown_key_points_at_the_key_not_its_value(tmp_path: Path) -> None:
    text = MATRIX.replace("os_bases:", "os_base:")
    with pytest.raises(ConfigError) as caught:
        load_matrix(write(tmp_path, {**FILES, "matrix.yaml": text}))
    key_line = text.splitlines().index("os_base:") + 1
    assert caught.value.message.startswith(f"matrix.yaml:{key_line} (os_base)")


def test_python_written_as_a_number_keeps_its_digits(tmp_path: Path) -> None:
    # YAML reads 3.10 as the float 3.1; the loader keeps the text as written.
    text = MATRIX.replace('python: "3.11"', "python: 3.10")
    matrix = load_matrix(write(tmp_path, {**FILES, "matrix.yaml": text}))
    assert matrix.os_bases["bookworm"].python == "3.10"
    assert matrix.images[0].id == "torch2.9.1-cu126-py3.10-base"


def test_missing_matrix_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", str(tmp_path / "nope.yaml"), "plan"]) == 2
    assert "nope.yaml: file not found" in capsys.readouterr().err


def test_deep_nesting_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = MATRIX.replace("shm_min_bytes: 1073741824", "deep: " + "[" * 3000 + "]" * 3000)
    path = write(tmp_path, {**FILES, "matrix.yaml": text})
    assert main(["--matrix", str(path), "plan"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: matrix.yaml:" in err
    assert "nested" in err


def test_hidden_folders_under_layers_are_not_layers(tmp_path: Path) -> None:
    path = write(tmp_path, {**FILES, "layers/.cache/notes.txt": "x\n"})
    assert set(load_matrix(path).layers) == {"torch", "vision"}
