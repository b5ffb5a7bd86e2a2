"""Rendered values are literal, invisible characters are refused, and a message about a
character names it (`U+200B ZERO WIDTH SPACE`), since two such names print alike.

tests/integration/test_literal_values.py builds the `A$B` case and reads it back inside.
"""

from __future__ import annotations

import string
from pathlib import Path

import dockerfile
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.unit.hostileutil import REPO, copy_project, run_cli, tree
from torchstack.config.matrix import load_matrix
from torchstack.errors import ConfigError
from torchstack.render.dockerfile import render_image

LEAF = "torch2.9.1-cu128-py3.11-nlp"
ZWSP = "\u200b"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def env_values(rendered: str) -> dict[str, str]:
    """ENV key -> the value token as BuildKit's parser splits it (still quoted)."""
    values: dict[str, str] = {}
    for command in dockerfile.parse_string(rendered):
        if command.cmd.upper() == "ENV":
            pairs = command.value
            values |= dict(zip(pairs[::2], pairs[1::2], strict=True))
    return values


def test_a_dollar_in_a_layer_env_value_is_escaped_and_path_still_substitutes(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project / "layers" / "nlp" / "layer.yaml", 'HF_HUB_OFFLINE: "1"',
         'HF_HUB_OFFLINE: "1"\n  LITERAL: "A$B ${C}"')
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 0, err
    values = env_values((project / "images" / LEAF / "Dockerfile").read_text())
    assert values["LITERAL"] == '"A\\$B \\${C}"'
    base = env_values((project / "images" / "torch2.9.1-cu128-py3.11-base" / "Dockerfile")
                      .read_text())
    assert base["PATH"] == '"/opt/venv/bin:$PATH"'  # torchstack's own substitution stays


def test_a_dollar_in_a_description_is_escaped_in_the_label(project: Path) -> None:
    edit(project / "layers" / "nlp" / "layer.yaml", "description: Hugging Face",
         "description: $HOME Hugging Face")
    matrix = load_matrix(project / "matrix.yaml")
    rendered = render_image(matrix.by_id()[LEAF], matrix)["Dockerfile"]
    assert 'org.opencontainers.image.description="\\$HOME Hugging Face' in rendered


def test_todays_layer_files_hold_no_dollar_so_nothing_rendered_changes() -> None:
    """The invariant of this change: no `$` to escape, so images/ renders byte for byte."""
    for path in [REPO / "matrix.yaml", *REPO.glob("layers/*/layer.yaml")]:
        lines = [line for line in path.read_text().splitlines()
                 if "$" in line.split("#", 1)[0]]
        assert lines == [], path
    matrix = load_matrix(REPO / "matrix.yaml")
    for spec in matrix.images:
        for relative, text in render_image(spec, matrix).items():
            assert (REPO / "images" / spec.id / relative).read_text() == text


@pytest.mark.parametrize(("where", "old", "new", "named"), [
    pytest.param("layers/nlp/layer.yaml", 'HF_HUB_OFFLINE: "1"', f'HF_HUB_OFFLINE: "1{ZWSP}"',
                 "U+200B ZERO WIDTH SPACE", id="zero-width-in-env"),
    pytest.param("layers/nlp/layer.yaml", "description: Hugging Face",
                 "description: \u202eHugging Face", "U+202E RIGHT-TO-LEFT OVERRIDE",
                 id="bidi-override-in-description"),
    pytest.param("matrix.yaml", "    image: debian:bookworm-slim",
                 f"    im{ZWSP}age: debian:bookworm-slim",
                 f"unknown key 'im{ZWSP}age' (it contains U+200B ZERO WIDTH SPACE); did you"
                 " mean 'image'?", id="zero-width-in-a-key"),
    pytest.param("matrix.yaml", "  vision: vision", f"  vi{ZWSP}sion: vision",
                 "is not a name (it contains U+200B ZERO WIDTH SPACE)", id="zero-width-in-a-name"),
    pytest.param("layers/nlp/layer.yaml", 'HF_HUB_OFFLINE: "1"', 'HF_HUB_OFFLINE: "1\\udf00"',
                 "U+DF00 <surrogate>", id="lone-surrogate-escape-in-env"),
    pytest.param("layers/nlp/layer.yaml", "description: Hugging Face",
                 "description: " + "x" * 70_000, "at most 4096", id="70000-character-description"),
])
def test_an_invisible_or_oversized_value_is_refused_naming_the_character(
        project: Path, capsys: pytest.CaptureFixture[str], where: str, old: str, new: str,
        named: str) -> None:
    edit(project / where, old, new)
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 2, err
    assert f"error: {where}:" in err and named in err, err
    assert tree(project) == before


# --- the property: a free-text value is refused, or rendered as one literal value -------------

TEXT = st.text(st.one_of(st.sampled_from([*"$\\\"'`{}\n\r\t #=", ZWSP, "\u202e", "\x00"]),
                         st.sampled_from(string.ascii_letters), st.characters()), max_size=40)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(value=TEXT, description=st.text(st.sampled_from(string.printable[:-5] + "\u00e9"),
                                       max_size=40))
def test_any_env_value_or_description_is_refused_or_rendered_literally(
        tmp_path_factory: pytest.TempPathFactory, value: str, description: str) -> None:
    """Never a traceback; when accepted, the rendered file has the same instructions as
    before, and each value is one double-quoted token whose `$` and `"` are all escaped."""
    project = _project(tmp_path_factory)
    layer = project / "layers" / "nlp" / "layer.yaml"
    layer.write_text(LAYER_TEXT.replace("@VALUE@", _yaml_string(value))
                     .replace("@DESCRIPTION@", _yaml_string(description)), encoding="utf-8")
    try:
        matrix = load_matrix(project / "matrix.yaml")
    except ConfigError:
        event("refused")
        return
    event("rendered")
    rendered = render_image(matrix.by_id()[LEAF], matrix)["Dockerfile"]
    commands = dockerfile.parse_string(rendered)
    assert [c.cmd for c in commands] == BASELINE
    token = env_values(rendered)["LITERAL"]
    assert token.startswith('"') and token.endswith('"')
    body = token[1:-1]
    i = 0
    while i < len(body):  # every `\` escapes the next character; `$` and `"` only escaped
        if body[i] == "\\":
            i += 2
            continue
        assert body[i] not in '$"', token
        i += 1


_CACHE: dict[str, Path] = {}
LAYER_TEXT = ""
BASELINE: list[str] = []


def _project(factory: pytest.TempPathFactory) -> Path:
    global LAYER_TEXT, BASELINE
    if "root" not in _CACHE:
        root = copy_project(factory.mktemp("values") / "project")
        layer = root / "layers" / "nlp" / "layer.yaml"
        text = layer.read_text(encoding="utf-8")
        text = text.replace('HF_HUB_OFFLINE: "1"', 'HF_HUB_OFFLINE: "1"\n  LITERAL: @VALUE@')
        LAYER_TEXT = "\n".join(
            "description: @DESCRIPTION@" if line.startswith("description:") else line
            for line in text.split("\n"))
        layer.write_text(LAYER_TEXT.replace("@VALUE@", '"x"').replace("@DESCRIPTION@", '"d"'))
        matrix = load_matrix(root / "matrix.yaml")
        BASELINE = [c.cmd for c in dockerfile.parse_string(
            render_image(matrix.by_id()[LEAF], matrix)["Dockerfile"])]
        _CACHE["root"] = root
    return _CACHE["root"]


def _yaml_string(value: str) -> str:
    """A YAML double-quoted scalar holding exactly `value` (JSON's escapes are YAML's)."""
    import json
    return json.dumps(value)


@pytest.mark.parametrize(("old", "new", "named"), [
    pytest.param("checks: [nlp, audio]", f"checks: [nl{ZWSP}p, audio]",
                 f"unknown check 'nl{ZWSP}p' (it contains U+200B ZERO WIDTH SPACE); did you mean"
                 " 'nlp'?", id="check-id"),
    pytest.param('HF_HUB_OFFLINE: "1"', f'HF_{ZWSP}HUB: "1"',
                 "is not a valid environment variable name (it contains U+200B ZERO WIDTH SPACE)",
                 id="env-name"),
])
def test_a_layer_name_with_an_invisible_character_names_it(
        project: Path, capsys: pytest.CaptureFixture[str], old: str, new: str,
        named: str) -> None:
    edit(project / "layers" / "nlp" / "layer.yaml", old, new)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "plan")
    assert code == 2 and named in err, err
