"""A Dockerfile.fragment is read with BuildKit's rules, and cannot reach the rendered tail.

The oracle is BuildKit's own parser (moby/buildkit frontend/dockerfile/parser, the `dockerfile`
package on PyPI): whatever torchstack accepts, BuildKit must read as the same instructions,
with torchstack's ENV, LABEL and final USER last, and a single stage start per FROM rendered.
"""

from __future__ import annotations

from pathlib import Path

import dockerfile
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.unit.hostileutil import copy_project, run_cli, tree
from torchstack.config.fragment import FragmentProblem, check_fragment, instructions
from torchstack.errors import ConfigError

VISION = "torch2.9.1-cu128-py3.11-vision"
TAIL = 'ENV A="1"\nLABEL x="y"\nUSER 1000:1000\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def buildkit(fragment: str) -> list[str] | None:
    """BuildKit's instruction keywords for fragment + tail, or None when it refuses the text."""
    try:
        parsed = dockerfile.parse_string("FROM scratch\n" + fragment + "\n" + TAIL)
    except dockerfile.GoParseError:
        return None
    return [command.cmd.upper() for command in parsed]


def safe_for_buildkit(fragment: str) -> bool:
    found = buildkit(fragment)
    return found is not None and found[-3:] == ["ENV", "LABEL", "USER"] \
        and found.count("FROM") == 1 and found.count("USER") == 1 + fragment.upper().count(
            "\nUSER ") + fragment.upper().startswith("USER ")


def accepted(fragment: str) -> bool:
    try:
        check_fragment(fragment, "layers/x/Dockerfile.fragment")
    except ConfigError:
        return False
    return True


def test_a_heredoc_named_like_the_final_user_is_refused_and_nothing_is_written(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 3: the quoted delimiter ran to torchstack's own `USER 1000:1000`, swallowing it,
    so the image ran as root."""
    fragment = 'RUN cat <<"USER 1000:1000" >/dev/null\n'
    assert buildkit(fragment) is not None and "USER" not in (buildkit(fragment) or [])
    (project / "layers" / "vision" / "Dockerfile.fragment").write_text(fragment)
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 2, err
    assert "layers/vision/Dockerfile.fragment:1: the heredoc <<'USER 1000:1000' is never" in err
    assert tree(project) == before


@pytest.mark.parametrize(("fragment", "words"), [
    pytest.param("ENV A=<<CMD\nFROM evil\n", "FROM", id="env-heredoc-hides-from"),
    pytest.param("RUN cat <<EOF.txt >/x\nhello\nEOF\n", "<<'EOF.txt' is never closed",
                 id="delimiter-is-the-whole-word"),
    pytest.param("RUN cat <<'E O' >/x\nE\n", "<<'E O' is never closed", id="quoted-space"),
    pytest.param("RUN true \\\n# a comment\n\n", "line continuation",
                 id="continuation-over-a-comment"),
    pytest.param("RUN echo \\\n  <<EOF cat\nx\n", "never closed", id="heredoc-after-continuation"),
    pytest.param("RUN cat <<$X\nx\n$X\n", "holds a $", id="dollar-in-delimiter"),
    pytest.param("RUN echo " + "x" * 70_000 + "\n", "65535", id="line-over-65535-bytes"),
    pytest.param("\x0b\n", "U+000B <control>", id="vertical-tab-line"),
    pytest.param("# harmless \u202e;tuo tixe\nRUN true\n", "U+202E RIGHT-TO-LEFT OVERRIDE",
                 id="bidi-override-in-a-comment"),
])
def test_a_fragment_that_runs_on_into_the_rendered_tail_is_refused(
        project: Path, capsys: pytest.CaptureFixture[str], fragment: str, words: str) -> None:
    (project / "layers" / "vision" / "Dockerfile.fragment").write_text(fragment)
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 2, err
    assert "layers/vision/Dockerfile.fragment:" in err and words in err, err
    assert tree(project) == before
    assert not safe_for_buildkit(fragment) or any(c in fragment for c in "$\x0b\u202e")


@pytest.mark.parametrize("fragment", [
    "RUN <<EOF\necho hi\nEOF\n",
    'RUN <<"USER 1000:1000"\necho hi\nUSER 1000:1000\n',
    "RUN <<-EOF\n\techo hi\n\tEOF\n",
    "COPY <<A <<B /x/\na\nA\nb\nB\n",
    'RUN echo "<<EOF" \\\n # note\n && true\n',
    'RUN ["sh", "-c", "cat <<EOF"]\n',
    "ENV A=<<CMD\n",
])
def test_a_fragment_buildkit_reads_as_closed_is_rendered(
        project: Path, capsys: pytest.CaptureFixture[str], fragment: str) -> None:
    (project / "layers" / "vision" / "Dockerfile.fragment").write_text(fragment)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 0, err
    rendered = (project / "images" / VISION / "Dockerfile").read_text()
    commands = [c.cmd.upper() for c in dockerfile.parse_string(rendered)]
    assert commands[-4:] == ["LABEL", "ARG", "LABEL", "USER"] and commands.count("FROM") == 3


# --- the property: torchstack's reading is BuildKit's -------------------------------------------

TOKENS = st.sampled_from([
    "RUN ", "COPY ", "ADD ", "ENV ", "FROM ", "USER ", "run ", "<<", "<<-", "2<<", "EOF", "E",
    "USER 1000:1000", '"', "'", "\\", "\n", "\n", "\n", "\t", " ", "#", "x", "a=b", "[", "]",
    '["sh"]', ".txt", "-", "--mount=type=cache,target=/x ", ">", "$X",
])


HEREDOCS = (
    # A heredoc line, a body, and a closing line that may or may not match.
    st.tuples(st.sampled_from(["RUN cat ", "COPY ", "ADD ", "ENV A=", "RUN x && "]),
              st.sampled_from(["<<", "<<-", "1<<"]),
              st.sampled_from(["EOF", '"EOF"', "'E O'", '"USER 1000:1000"', "E\\OF", "EOF.txt",
                               'a"b c"']),
              st.lists(TOKENS, max_size=8).map("".join),
              st.sampled_from(["EOF", "E O", "USER 1000:1000", "\tEOF", "EOF.txt", "ab c", "x"]))
    .map(lambda t: f"{t[0]}{t[1]}{t[2]} /x\n{t[3]}\n{t[4]}\n")
)
FRAGMENTS = st.one_of(st.lists(TOKENS, min_size=1, max_size=24).map("".join), HEREDOCS,
                      st.tuples(HEREDOCS, HEREDOCS).map("".join))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FRAGMENTS)
def test_an_accepted_fragment_is_read_by_buildkit_as_torchstack_reads_it(fragment: str) -> None:
    """Never a traceback; whatever is accepted, BuildKit parses with the tail intact and the
    same instructions (keywords and heredoc delimiters) torchstack saw."""
    if not accepted(fragment):
        event("refused")
        return
    ours = list(instructions(fragment))
    event("accepted, with a heredoc" if any(i.heredocs for i in ours) else "accepted")
    try:
        parsed = dockerfile.parse_string("FROM scratch\n" + fragment + "\n" + TAIL)
    except dockerfile.GoParseError as exc:
        # An instruction BuildKit refuses (`ENV` without a value) fails the build loudly; it
        # must be the fragment's own error, there without the tail too.
        with pytest.raises(dockerfile.GoParseError) as alone:
            dockerfile.parse_string("FROM scratch\n" + fragment + "\n")
        assert str(alone.value) == str(exc)
        return
    theirs = [(c.cmd.upper(), tuple(h.name for h in c.heredocs)) for c in parsed]
    assert theirs == [("FROM", ()), *((i.keyword, i.heredocs) for i in ours),
                      ("ENV", ()), ("LABEL", ()), ("USER", ())]


def test_instructions_refuses_an_unclosed_quote_on_a_heredoc_line() -> None:
    with pytest.raises(FragmentProblem, match="quote is never closed"):
        list(instructions("RUN cat <<EOF 'x\nEOF\n"))
