"""Search text for Chinese and English transcripts: how text is cut into index tokens, how a query becomes
an FTS5 expression, and how hits are highlighted.

Chinese has no spaces, and SQLite's built-in tokenizers do not segment it (``unicode61`` makes a whole
clause one token; ``trigram`` cannot find the 2-character words that matter most: 投诉, 宽带, 退费). So the
store indexes a pre-tokenised copy: every run of Han characters as overlapping character **bigrams**
(column ``bi``; 我要投诉 -> 我要 要投 投诉), Latin words and numbers as lower-case words (also in ``bi``), and
every Han character alone (column ``uni``, for one-character queries). A Chinese query word of two or more
characters is then the *phrase* of its bigrams (工信部 -> "工信 信部"), which matches exactly where the word
occurs; no dictionary, no segmenter to disagree with ASR output. Text is folded first (Traditional to
Simplified, full-width to ASCII, lower case), so 投訴 finds 投诉.

Query syntax: words are ANDed; ``OR`` between two words makes either do; ``"two words"`` is a phrase;
``-word`` excludes; ``word*`` is a prefix (English).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from callscribe.errors import CallscribeError
from callscribe.keyword.normalize import fold, is_han

__all__ = ["QueryError", "Term", "parse_query", "index_tokens", "to_fts", "highlight", "pieces_of", "han_tokens"]

_WORD = re.compile(r"[a-z0-9][a-z0-9'_]*\*?")
MAX_TERMS = 16
MAX_QUERY_CHARS = 500


class QueryError(CallscribeError):
    """A search query that cannot be run (empty after parsing, unbalanced quotes, too long)."""


@dataclass(frozen=True, slots=True)
class Term:
    text: str  # folded
    negated: bool = False
    alternatives: tuple[str, ...] = ()  # OR-ed with text


def han_tokens(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def pieces_of(folded: str) -> list[tuple[str, str]]:
    """("han", run) and ("word", w) pieces in order."""
    out: list[tuple[str, str]] = []
    run: list[str] = []
    i = 0
    while i < len(folded):
        c = folded[i]
        if is_han(c):
            run.append(c)
            i += 1
            continue
        if run:
            out.append(("han", "".join(run)))
            run = []
        m = _WORD.match(folded, i)
        if m:
            out.append(("word", m.group(0)))
            i = m.end()
        else:
            i += 1
    if run:
        out.append(("han", "".join(run)))
    return out


def index_tokens(text: str) -> tuple[str, str]:
    """(bi, uni): the two indexed columns of an utterance (see the module docstring)."""
    bi: list[str] = []
    uni: list[str] = []
    for kind, piece in pieces_of(fold(text)):
        if kind == "han":
            bi.extend(han_tokens(piece))
            uni.extend(piece)
        else:
            bi.append(piece.rstrip("*"))
    return " ".join(bi), " ".join(uni)


def parse_query(text: str) -> list[Term]:
    """Split a query into terms (phrases kept whole), with OR groups and exclusions."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query longer than {MAX_QUERY_CHARS} characters")
    if text.count('"') % 2:
        raise QueryError("unbalanced quote in query")
    raw = re.findall(r'-?"[^"]*"|\S+', text.replace("“", '"').replace("”", '"'))
    terms: list[Term] = []
    pending_or = False
    for token in raw:
        if token == "OR":
            pending_or = bool(terms)
            continue
        negated = token.startswith("-") and len(token) > 1
        body = token[1:] if negated else token
        body = fold(body.strip('"')).strip()
        if not body or not pieces_of(body):
            continue
        if pending_or and not negated and not terms[-1].negated:
            last = terms.pop()
            terms.append(Term(last.text, False, (*last.alternatives, body)))
        else:
            terms.append(Term(body, negated))
        pending_or = False
    if not terms or all(t.negated for t in terms):
        raise QueryError("the query has nothing to search for")
    if len(terms) > MAX_TERMS:
        raise QueryError(f"more than {MAX_TERMS} terms")
    return terms


def _fts_phrase(folded: str) -> str:
    pieces = pieces_of(folded)
    if len(pieces) == 1 and pieces[0][0] == "han" and len(pieces[0][1]) == 1:
        return f'uni : "{pieces[0][1]}"'
    tokens: list[str] = []
    prefix = False
    for kind, piece in pieces:
        if kind == "han":
            tokens.extend(han_tokens(piece))
        else:
            prefix = piece.endswith("*")
            tokens.append(piece.rstrip("*"))
    phrase = " ".join(t.replace('"', "") for t in tokens)
    return f'bi : "{phrase}"' + ("*" if prefix and len(pieces) == 1 else "")


def to_fts(terms: list[Term]) -> str:
    """The FTS5 MATCH expression of parsed terms."""
    positive, negative = [], []
    for t in terms:
        options = [_fts_phrase(x) for x in (t.text, *t.alternatives)]
        expr = options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")"
        (negative if t.negated else positive).append(expr)
    out = " AND ".join(positive)
    for n in negative:
        out += f" NOT {n}"
    return out


def highlight(text: str, terms: list[Term], mark: tuple[str, str] = ("<mark>", "</mark>")) -> str:
    """``text`` HTML-escaped, with every occurrence of a (non-excluded) term wrapped in ``mark``."""
    folded = fold(text)
    spans: list[tuple[int, int]] = []
    for t in terms:
        if t.negated:
            continue
        for option in (t.text, *t.alternatives):
            needle = option.rstrip("*")
            if not needle:
                continue
            if needle.isascii():
                pattern = re.compile(r"(?<![a-z0-9])" + re.escape(needle) + (r"[a-z0-9']*" if option.endswith("*") else r"(?![a-z0-9])"))
                spans.extend((m.start(), m.end()) for m in pattern.finditer(folded))
            else:
                start = folded.find(needle)
                while start >= 0:
                    spans.append((start, start + len(needle)))
                    start = folded.find(needle, start + 1)
    if not spans:
        return html.escape(text)
    spans.sort()
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, pos = [], 0
    for s, e in merged:
        out.append(html.escape(text[pos:s]))
        out.append(mark[0] + html.escape(text[s:e]) + mark[1])
        pos = e
    out.append(html.escape(text[pos:]))
    return "".join(out)
