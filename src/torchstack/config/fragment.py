"""Dockerfile text read the way BuildKit's parser reads it: logical lines, heredocs, limits.

A layer's `Dockerfile.fragment` is spliced into the rendered Dockerfile before torchstack's own
install steps, ENV, LABEL and final USER. Those must stay out of its reach, so the fragment is
read here with BuildKit's rules (moby/buildkit frontend/dockerfile/parser), not a looser guess:

- comment and blank lines are skipped, also inside a continuation; a line ending in `\\`
  continues, and the joined line is what counts;
- heredocs open only on RUN, COPY and ADD (not in JSON form); the delimiter is the shell word
  after `<<` or `<<-` (quotes removed: `<<"USER 1000:1000"` ends at that exact line) and the
  body ends at a line equal to it (leading tabs removed for `<<-`);
- BuildKit reads at most 65535 bytes per line.

The fragment must end outside any continuation and heredoc, and may not start a stage (FROM).
What cannot be told for sure (a `$` or backquote in a heredoc word, an unclosed quote on a line
with `<<`) is refused rather than guessed. tests/unit/test_hostile_fragments.py compares this
reading with BuildKit's own parser (the `dockerfile` package on PyPI).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from torchstack.config.kinds import describe_char
from torchstack.errors import ConfigError

MAX_LINE_BYTES = 65535  # BuildKit's scanner refuses a longer line ("token too long")
HEREDOC_COMMANDS = frozenset({"RUN", "COPY", "ADD"})
_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)([^<]*)")  # BuildKit's reHeredoc, fullmatched
_CONTINUATION = re.compile(r"\\[ \t]*$")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    line: int  # 1-based line where it starts
    text: str  # the joined logical line (continuations removed)
    heredocs: tuple[str, ...] = ()  # delimiters, in order


class FragmentProblem(Exception):
    """A line of the text cannot be read safely; `line` is 1-based."""

    def __init__(self, line: int, message: str, tip: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.tip = tip


def check_fragment(text: str, name: str) -> None:
    """Refuse a fragment whose end is not where the next rendered instruction starts."""
    try:
        for instruction in instructions(text):
            if instruction.keyword == "FROM":
                raise FragmentProblem(instruction.line, "a fragment may not start a stage (FROM)",
                                      "a layer's fragment runs inside the stage torchstack"
                                      " renders; make another layer instead")
    except FragmentProblem as problem:
        raise ConfigError(f"{name}:{problem.line}: {problem.message}", tip=problem.tip) from None


def line_problem(text: str) -> tuple[int, str] | None:
    """(line, why) for the first line BuildKit would not read, or a reviewer could not see
    (control and invisible format characters: a bidi override can hide a command), else None."""
    for number, line in enumerate(text.split("\n"), 1):
        size = len(line.encode("utf-8", "surrogatepass"))
        if size > MAX_LINE_BYTES:
            return number, (f"is {size} bytes long; BuildKit reads at most {MAX_LINE_BYTES}"
                            " bytes per line")
        odd = next((c for c in line if c != "\t" and unicodedata.category(c) in
                    ("Cc", "Cf", "Cs", "Zl", "Zp")), None)
        if odd is not None:
            return number, f"holds the character {describe_char(odd)}"
    return None


def instructions(text: str) -> Iterator[Instruction]:
    """The instructions of Dockerfile text, as BuildKit splits them; raises FragmentProblem."""
    found = line_problem(text)
    if found:
        raise FragmentProblem(found[0], f"the line {found[1]}",
                              "split long lines; write only visible characters, tabs and spaces")
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        start = index + 1
        line, ended = _logical_start(lines[index])
        index += 1
        if ended and not line:
            continue
        while not ended:
            if index == len(lines):
                raise FragmentProblem(start, "ends in a line continuation (a trailing \\), which"
                                      " would join the next rendered instruction",
                                      "remove the trailing backslash")
            raw = lines[index]
            index += 1
            if raw.lstrip(" \t").startswith("#") or not raw.strip(" \t"):
                continue  # skipped inside a continuation, as BuildKit does
            part, ended = _trim_continuation(raw)
            line += part
        keyword = line.split(None, 1)[0].upper()
        heredocs = _heredocs(line, start) if keyword in HEREDOC_COMMANDS and "<<" in line else ()
        for word, strip_tabs in heredocs:
            while True:
                if index == len(lines):
                    raise FragmentProblem(start, f"the heredoc <<{word!r} is never closed"
                                          " (its body would swallow what torchstack renders"
                                          " after the fragment)",
                                          f"end it with a line holding exactly {word}")
                body = lines[index].lstrip("\t") if strip_tabs else lines[index]
                index += 1
                if body == word:
                    break
        yield Instruction(keyword, start, line, tuple(word for word, _ in heredocs))


def _logical_start(raw: str) -> tuple[str, bool]:
    stripped = raw.lstrip(" \t")
    if stripped.startswith("#"):
        return "", True
    return _trim_continuation(stripped)


def _trim_continuation(raw: str) -> tuple[str, bool]:
    match = _CONTINUATION.search(raw)
    return (raw[:match.start()], False) if match else (raw, True)


def _heredocs(line: str, number: int) -> tuple[tuple[str, bool], ...]:
    """(delimiter, strip tabs) for each heredoc a RUN/COPY/ADD line opens."""
    keyword_and_rest = line.split(None, 1)
    rest = keyword_and_rest[1] if len(keyword_and_rest) > 1 else ""
    words = _words(rest, number)
    arguments = [w for w in words if not w.startswith("--")]
    if arguments and arguments[0].startswith("["):
        try:
            parsed = json.loads(rest[rest.index("["):])
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return ()  # JSON form: BuildKit opens no heredoc
    found = []
    for word in words:
        if "<<" not in word:
            continue
        match = _HEREDOC_WORD.fullmatch(word)
        if match is None or not match.group(3):
            continue
        if any(char in word for char in "$`"):
            raise FragmentProblem(number, f"the heredoc word {word!r} holds a $ or `, which"
                                  " BuildKit expands before it is matched",
                                  "name the heredoc with a plain word, e.g. <<EOF")
        found.append((_unquote(match.group(3), number), match.group(2) == "-"))
    return tuple(found)


def _words(text: str, number: int) -> list[str]:
    """Shell words with quotes and escapes kept (BuildKit's lexer with raw quotes)."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    while i < len(text):
        char = text[i]
        if char in " \t":
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        if char == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
        elif char in "'\"":
            end = _quote_end(text, i)
            if end < 0:
                raise FragmentProblem(number, f"a {char} quote is never closed on a line that"
                                      " opens a heredoc", "close the quote")
            current.append(text[i:end + 1])
            i = end + 1
        else:
            current.append(char)
            i += 1
    if in_word:
        words.append("".join(current))
    return words


def _quote_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


def _unquote(word: str, number: int) -> str:
    """The delimiter a quoted or escaped word stands for."""
    out: list[str] = []
    i = 0
    while i < len(word):
        char = word[i]
        if char == "\\" and i + 1 < len(word):
            out.append(word[i + 1])
            i += 2
        elif char == "'":
            end = word.index("'", i + 1)
            out.append(word[i + 1:end])
            i = end + 1
        elif char == '"':
            end = _quote_end(word, i)
            inner = word[i + 1:end]
            out.append(re.sub(r'\\([\\"$`])', r"\1", inner))
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
