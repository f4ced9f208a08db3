"""PII redaction for call transcripts: find phone numbers, ID numbers, bank cards, e-mail and postal
addresses, and other long digit runs in ASR text (Mandarin and English), and mask them.

Why this exists: transcripts are stored and shown to roles (QA reviewers, dashboards, analytics) that
must not see a caller's personal data, and ASR writes numbers in many shapes: ``13800138000``,
``138 0013 8000``, ``一三八 零零一三 八零零零``, ``幺三八...``, full-width ``１３８...``, or
"one three eight double oh ...". So detection works on a *folded* copy of the text (full-width to
half-width via NFKC, Traditional to Simplified via OpenCC, lower case) that keeps exactly one character
per original character; every span therefore indexes the ORIGINAL text, and :func:`redact` copies all
non-PII text through untouched.

Contract:

* Pure: no I/O, no global state beyond caches of pure conversions; safe to call from any thread.
* Linear-ish time: every regex has bounded repetition or is anchored on a rare token, so there is no
  catastrophic backtracking on hostile input (fuzzed in ``tests/test_redact.py``).
* Precision first where a false positive would destroy a transcript: money, dates, times, percentages,
  short numbers and ordinary counting are never PII; checksums decide ID numbers (GB 11643) and cards
  (Luhn); addresses need a house/building/room number, never a place name alone.

Order of detection: e-mail addresses, then postal addresses, then numbers. Each stage blanks what it
found before the next looks, so spans never overlap and ``13800138000@qq.com`` is one e-mail, not a
phone plus junk.

The GB 11643 and Luhn checks are a few lines written here because the project may not add a dependency
for them (``python-stdnum`` would otherwise be the maintained choice); likewise ``phonenumbers``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from .normalize import fold as _fold

__all__ = ["DEFAULT_MASKS", "PiiKind", "Span", "find_pii", "pii_key", "redact", "redact_words"]

PiiKind = Literal["phone", "id_card", "bank_card", "email", "address", "birth_date", "digits"]


@dataclass(frozen=True, slots=True)
class Span:
    """One piece of PII: ``text[start:end] == self.text`` in the ORIGINAL (unfolded) transcript.

    ``kind`` is the best guess at what the digits are; ``digits`` means a run of >= 7 digits that is
    no phone, ID or card pattern (an order or account number, say), or of >= 4 digits read one by one in
    words (a PIN, a code, the last digits of an ID), and is masked all the same.
    """

    start: int
    end: int
    kind: PiiKind
    text: str


DEFAULT_MASKS: dict[str, str] = {
    "phone": "[PHONE]",
    "id_card": "[ID]",
    "bank_card": "[CARD]",
    "email": "[EMAIL]",
    "address": "[ADDRESS]",
    "birth_date": "[BIRTH_DATE]",
    "digits": "[NUMBER]",
}


def find_pii(text: str) -> list[Span]:
    """All PII spans in ``text``, sorted by start, non-overlapping, indexing the original string."""
    norm = _fold(text)
    found: list[tuple[int, int, PiiKind]] = []
    for finder in (_find_emails, _find_zh_addresses, _find_en_addresses, _find_birth_dates, _find_numbers):
        new = list(finder(norm, text))
        found.extend(new)
        norm = _blank(norm, new)
    found.sort()
    return [Span(s, e, k, text[s:e]) for s, e, k in found]


def pii_key(span: Span) -> str:
    """What a span says, whatever its written form: the digits of a number (一三九 二七六八 = 1392768...), the
    letters and digits of an address or e-mail, lower-cased. Two mentions of the same data have the same key
    (keyword/analyzer.py: an agent reading back what the caller said is not reading the account out)."""
    if span.kind in ("address", "email"):
        return "".join(c for c in _fold(span.text) if c.isalnum())
    digits = "".join("".join(run.digits) for run in _runs(_fold(span.text)))
    return digits or "".join(c for c in _fold(span.text) if c.isalnum())


def redact(text: str, mask: Callable[[Span], str] | None = None) -> str:
    """``text`` with every span of :func:`find_pii` replaced by ``mask(span)``.

    The default mask is the kind's label from :data:`DEFAULT_MASKS` (``[PHONE]``, ``[ID]``, ...).
    Everything outside the spans is copied exactly, whitespace and punctuation included.
    """
    mask = mask or _default_mask
    out: list[str] = []
    pos = 0
    for span in find_pii(text):
        out.append(text[pos : span.start])
        out.append(mask(span))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def redact_words(words: Sequence[str], mask: Callable[[Span], str] | None = None) -> list[str]:
    """Redact a tokenised text (Whisper's word timestamps): PII is found in the joined text, so a number
    spread over several tokens ("138", " 0013", " 8000") is still one phone number. The first token that
    overlaps a span becomes the mask (keeping its leading space); the other overlapping tokens become "".
    Token count and order are unchanged, so word times stay aligned."""
    mask = mask or _default_mask
    joined = "".join(words)
    spans = find_pii(joined)
    if not spans:
        return list(words)
    out: list[str] = []
    pos = 0
    k = 0
    masked_span = -1
    for w in words:
        start, end = pos, pos + len(w)
        pos = end
        while k < len(spans) and spans[k].end <= start:
            k += 1
        if k < len(spans) and spans[k].start < end and spans[k].end > start:
            if masked_span == k:
                out.append("")
            else:
                masked_span = k
                lead = w[: len(w) - len(w.lstrip())]
                out.append(lead + mask(spans[k]))
        else:
            out.append(w)
    return out


def _default_mask(span: Span) -> str:
    return DEFAULT_MASKS[span.kind]


_BLANK = "\x00"  # what a found span becomes before the next stage looks; matches no pattern


def _blank(norm: str, spans: list[tuple[int, int, PiiKind]]) -> str:
    if not spans:
        return norm
    parts: list[str] = []
    pos = 0
    for start, end, _ in sorted(spans):
        parts.append(norm[pos:start])
        parts.append(_BLANK * (end - start))
        pos = end
    parts.append(norm[pos:])
    return "".join(parts)


def _han_class(excluded: str) -> str:
    """A regex character class of CJK unified ideographs minus ``excluded``: place-name characters
    that cannot be an address suffix or a function word, which keeps the address regex deterministic."""
    lo, hi = 0x4E00, 0x9FFF
    cuts = sorted({ord(c) for c in excluded if lo <= ord(c) <= hi})
    ranges: list[str] = []
    start = lo
    for cut in cuts:
        if start < cut:
            ranges.append(f"{chr(start)}-{chr(cut - 1)}")
        start = cut + 1
    if start <= hi:
        ranges.append(f"{chr(start)}-{chr(hi)}")
    return "[" + "".join(ranges) + "]"


# Characters that never sit inside a name (of a person in a spoken e-mail, or of a place): verbs,
# pronouns and particles that precede names in speech ("住在", "地址是", "我的邮箱是").
_ZH_FUNCTION_CHARS = "在是住到去的了从向往和与及把给要想送寄我你他她它们这那哪就也都还请帮址叫为说打有个吗呢吧啊呀哦嗯条箱"

# --------------------------------------------------------------------------------------------------
# E-mail: anchored on the "at" token ("@", "at", "艾特"), the domain matched forward, the local part
# matched backward inside a bounded window, so cost is linear in the number of "at" tokens.

_AT_RE = re.compile(r"@|艾特|(?<![a-z])at(?![a-z])")
_EN_DIGIT_WORDS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
_EN_TENS_WORDS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_ZH_DIGIT_CHARS = "零〇一二三四五六七八九幺两"
_LABEL = (
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    rf"|[{_ZH_DIGIT_CHARS}]{{2,8}}"
    rf"|(?:(?:{_EN_DIGIT_WORDS})\s+){{1,7}}(?:{_EN_DIGIT_WORDS})(?![a-z]))"
)
_SPOKEN_DOT = r"(?:\s*(?:(?<![a-z])dot(?![a-z])|点)\s*|\.)"
_TLDS = (
    "com|net|org|edu|gov|cn|hk|tw|mo|jp|kr|sg|uk|us|ca|au|de|fr|it|es|nl|ru|in|io|co|info|biz|me|"
    "tv|cc|ai|app|dev|top|xyz|vip|site|online|mobi|name|pro|asia"
)
# (a spoken domain label may be two words: "bluewren mail dot com" is how people say bluewrenmail.com)
_DOMAIN_SPOKEN_RE = re.compile(
    rf"\s*{_LABEL}(?:\s+[a-z]{{2,20}})?(?:{_SPOKEN_DOT}{_LABEL}){{0,4}}{_SPOKEN_DOT}(?:{_TLDS})(?![a-z])"
)
_DOMAIN_WRITTEN_RE = re.compile(rf"\s*{_LABEL}(?:\.{_LABEL}){{0,4}}\.[a-z]{{2,24}}(?![a-z0-9])")
_LOCAL_SEP = r"(?:\.|_|-|\+|点|下划线|横杠|中划线|杠|(?<![a-z])(?:dot|underscore|dash|hyphen)(?![a-z]))"
_HAN_NAME = _han_class(_ZH_FUNCTION_CHARS)
# A local-part word: an ASCII word, letters spelled one by one ("j o h n"), or a short Chinese name,
# optionally followed by spoken digits ("zhangsan one two three", "lisi 幺二三").
_LOCAL_WORD = (
    rf"(?:(?<![a-z0-9])(?:(?:[a-z0-9] ){{1,30}}[a-z0-9](?![a-z0-9])|[a-z0-9]{{1,40}})"
    rf"|{_HAN_NAME}{{1,4}})"
    rf"(?:\s*[{_ZH_DIGIT_CHARS}]{{1,12}}|(?:[\s-]+(?:{_EN_DIGIT_WORDS}|{_EN_TENS_WORDS})(?![a-z])){{1,12}})?"
)
_LOCAL_RE = re.compile(rf"({_LOCAL_WORD}(?:\s*{_LOCAL_SEP}\s*{_LOCAL_WORD}){{0,6}})\s*$")
_LOCAL_WINDOW = 80  # characters before "at" searched for the local part (RFC 5321 allows 64)

# Words that precede a spoken English "at" in ordinary speech; one of them alone is no local part.
_LOCAL_STOPWORDS = frozenset(
    "i me my you your we us our they them he him she her it its is are was were be been am "
    "this that these those there here what where when who which not all any some just still "
    "look looking looked meet meeting arrive arrived stay staying live lives living work works working "
    "good great best bad back up down out home call called email mail send sent reach contact "
    "available located based right left office school and or but so".split()
)
_DOMAIN_STOPWORDS = frozenset("the a an this that my your our their his her its".split())


def _find_emails(norm: str, original: str) -> Iterator[tuple[int, int, PiiKind]]:
    del original
    last_end = 0
    for at in _AT_RE.finditer(norm):
        if at.start() < last_end:
            continue
        written = at.group() == "@"
        domain = (_DOMAIN_WRITTEN_RE if written else _DOMAIN_SPOKEN_RE).match(norm, at.end())
        if domain is None:
            continue
        local = _LOCAL_RE.search(norm, max(last_end, at.start() - _LOCAL_WINDOW), at.start())
        if local is None:
            continue
        if not written and not _plausible_spoken_email(local.group(1), domain.group()):
            continue
        start, end = local.start(1), domain.end()
        last_end = end
        yield start, end, "email"


def _plausible_spoken_email(local: str, domain: str) -> bool:
    """A spoken "x at y dot com" is also ordinary English ("look at the dot com bubble")."""
    if local.strip() in _LOCAL_STOPWORDS:
        return False
    first_label = re.match(r"\s*([a-z]+)", domain)
    return not (first_label and first_label.group(1) in _DOMAIN_STOPWORDS)


# --------------------------------------------------------------------------------------------------
# Chinese addresses: [province][city][district][town] then a road with a house number, or an estate
# with building/unit/room numbers, or building+unit/room numbers alone. A place name alone never
# matches. Name characters exclude the suffix characters, so each optional part matches in one way.

_HN = _han_class(_ZH_FUNCTION_CHARS + "省市区县路街号栋幢单室")
_NUM = r"(?:[0-9]{1,5}|[零〇一二三四五六七八九十百幺两]{1,6})"
_ZH_ADMIN = (
    rf"(?:{_HN}{{2,7}}?(?:省|自治区|特别行政区))?"
    rf"(?:{_HN}{{1,7}}?市)?"
    rf"(?:{_HN}{{1,7}}?(?:区|县|旗))?"
    rf"(?:{_HN}{{1,7}}?(?:镇|乡|街道))?"
)
_ZH_ROAD = rf"{_HN}{{1,10}}?(?:大街|大道|路|街|巷|胡同)(?:{_NUM}段)?{_NUM}(?:[-之][0-9]{{1,4}})?(?:号|弄)(?:院)?"
_ZH_ESTATE = rf"{_HN}{{2,10}}?(?:小区|花园|公寓|大厦|家园|新村|苑|社区|广场|村|大院|宿舍|府|城)"
_ZH_BLD = rf"{_NUM}(?:号楼|栋|幢|座)"
_ZH_UNIT = rf"{_NUM}单元"
_ZH_FLOOR = rf"{_NUM}(?:层|楼)"
_ZH_ROOM = rf"{_NUM}(?:室|房)"
_ZH_TAIL = rf"(?:{_ZH_ROOM}|[0-9]{{3,4}}(?![0-9]))"  # "2单元501": a bare room number after a unit
_ZH_BUILDING = (
    rf"(?:{_ZH_BLD}\s*(?:{_ZH_UNIT}\s*)?(?:{_ZH_FLOOR}\s*)?(?:{_ZH_TAIL})?"
    rf"|{_ZH_UNIT}\s*(?:{_ZH_TAIL})?"
    rf"|{_ZH_FLOOR}\s*(?:{_ZH_ROOM})?"
    rf"|{_ZH_ROOM})"
)
_ZH_BARE = (
    rf"(?:{_ZH_BLD}\s*(?:{_ZH_UNIT}\s*(?:{_ZH_TAIL})?|(?:{_ZH_FLOOR}\s*)?{_ZH_ROOM})"
    rf"|{_ZH_UNIT}\s*{_ZH_TAIL})"
)
_ZH_VILLAGE = rf"{_HN}{{1,6}}?(?:村|屯|庄){_NUM}(?:组|队|社)(?:{_NUM}号)?"  # 青龙村四组十七号: a rural address
_ZH_ADDRESS_RE = re.compile(
    rf"{_ZH_ADMIN}(?:{_ZH_ROAD}(?:\s*(?:{_ZH_ESTATE})?\s*{_ZH_BUILDING})?|{_ZH_ESTATE}\s*{_ZH_BUILDING}|{_ZH_VILLAGE})"
    rf"|{_ZH_BARE}"
)


def _find_zh_addresses(norm: str, original: str) -> Iterator[tuple[int, int, PiiKind]]:
    del original
    for m in _ZH_ADDRESS_RE.finditer(norm):
        yield m.start(), m.end(), "address"


# English street addresses: "1234 Elm Street, Apt 5", "221B Baker Street". Street-name words must be
# capitalised in the original (or ordinals like "5th") and no stopword, so "5 blocks down the street"
# stays.
# --- dates of birth -----------------------------------------------------------------------------------
# Dates are not PII, but a full date (day, month and year) whose year is at least BIRTH_MIN_AGE years ago is
# a date of birth in a service call: it is what callers say to verify ("second of April, nineteen ninety",
# 一九八七年三月十四号, 14/03/1987). A billing date or "since 2019" has no day or is recent.
BIRTH_MIN_AGE = 16
_MONTHS_EN = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
              r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
_ORD_WORDS = (r"first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth"
              r"|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth"
              r"|(?:twenty|thirty)[- ](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)")
_DAY_EN = rf"(?:[0-9]{{1,2}}(?:st|nd|rd|th)?|{_ORD_WORDS})"
_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_TEENS = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_YY_WORDS = rf"(?:(?:{_TENS})(?:[- ](?:{_UNITS}))?|{_TEENS}|(?:oh|o)[- ](?:{_UNITS}))"
_YEAR_EN = (rf"(?P<y4>(?:19|20)[0-9]{{2}})|'?(?P<y2>[0-9]{{2}})(?![0-9])"
            rf"|(?P<cent>nineteen|two thousand(?: and)?|twenty)[- ]?(?P<yw>{_YY_WORDS})?|(?P<yw2>{_YY_WORDS})")
_EN_DATE_RE = re.compile(
    rf"(?<![a-z0-9])(?:(?:the )?{_DAY_EN}(?: of)?[ ,]+(?:{_MONTHS_EN})|(?:{_MONTHS_EN})[ ,]+(?:the )?{_DAY_EN})"
    rf",?[ ]+(?:{_YEAR_EN})(?![a-z0-9])"
)
_NUMERIC_DATE_RE = re.compile(r"(?<![0-9])[0-9]{1,2}[/.-][0-9]{1,2}[/.-](?P<y4>(?:19|20)[0-9]{2})(?![0-9])")
_ZH_YEAR = r"(?P<zy>[0-9]{2,4}|[零〇一二三四五六七八九]{2,4})年"
_ZH_NUMBER = r"(?:[0-9]{1,2}|[一二三四五六七八九十]{1,3})"
_ZH_DATE_RE = re.compile(rf"{_ZH_YEAR}\s*{_ZH_NUMBER}月\s*{_ZH_NUMBER}[日号號]")


def _word_number(words: str) -> int | None:
    """"ninety-five" -> 95, "oh seven" -> 7, "twelve" -> 12."""
    parts = re.split(r"[- ]", words.strip())
    units = {w: i for i, w in enumerate(_UNITS.split("|"), 1)}
    teens = {w: i for i, w in enumerate(_TEENS.split("|"), 10)}
    tens = {w: i for i, w in enumerate(_TENS.split("|"), 2)}
    if parts[0] in ("oh", "o") and len(parts) == 2 and parts[1] in units:
        return units[parts[1]]
    if parts[0] in teens and len(parts) == 1:
        return teens[parts[0]]
    if parts[0] in tens:
        return tens[parts[0]] * 10 + (units.get(parts[1], 0) if len(parts) > 1 else 0)
    return None


def _full_year(two: int, this_year: int) -> int:
    return 2000 + two if 2000 + two <= this_year else 1900 + two


def _is_birth_year(year: int | None) -> bool:
    this_year = datetime.date.today().year
    return year is not None and 1900 <= year <= this_year - BIRTH_MIN_AGE


def _find_birth_dates(norm: str, original: str) -> Iterator[tuple[int, int, PiiKind]]:
    del original
    this_year = datetime.date.today().year
    for m in _EN_DATE_RE.finditer(norm):
        g = m.groupdict()
        if g["y4"]:
            year = int(g["y4"])
        elif g["y2"]:
            year = _full_year(int(g["y2"]), this_year)
        elif g["cent"]:
            rest = _word_number(g["yw"]) if g["yw"] else None
            if g["cent"] == "nineteen":
                year = 1900 + rest if rest is not None else None
            else:
                year = 2000 + rest if rest is not None else None
        else:
            n = _word_number(g["yw2"])
            year = _full_year(n, this_year) if n is not None else None
        if _is_birth_year(year):
            yield m.start(), m.end(), "birth_date"
    for m in _NUMERIC_DATE_RE.finditer(norm):
        if _is_birth_year(int(m.group("y4"))):
            yield m.start(), m.end(), "birth_date"
    for m in _ZH_DATE_RE.finditer(norm):
        raw = m.group("zy")
        digits = "".join(_ZH_DIGIT_VALUE.get(c, c) for c in raw)
        if not digits.isdigit():
            continue
        year = int(digits) if len(digits) == 4 else _full_year(int(digits[-2:]), this_year)
        if _is_birth_year(year):
            yield m.start(), m.end(), "birth_date"


_EN_NUMBER_WORD = (
    r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:-(?:one|two|three|four|five|six|seven|eight|nine))?"
    r"|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    r"|seventeen|eighteen|nineteen|hundred|oh|zero)"
)
# a house number in figures ("1234") or said ("twenty-two eighteen", "flat three, twenty-seven")
_EN_HOUSE = (
    rf"(?:(?:flat|apartment|apt|unit)\s+(?:[0-9]{{1,4}}[a-z]?|{_EN_NUMBER_WORD}),?\s+)?"
    rf"(?:[0-9]{{1,6}}[a-z]?|{_EN_NUMBER_WORD}(?:[\s-]{_EN_NUMBER_WORD}){{0,3}})"
)
_EN_ADDRESS_RE = re.compile(
    rf"(?<![0-9a-z]){_EN_HOUSE}((?:\s+[a-z0-9][a-z0-9'.-]{{0,30}}){{1,3}}?)\s+"
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|terrace|way|"
    r"parkway|pkwy|highway|hwy|square|sq|crescent|close)(?![a-z])\.?"
    r"(?:,?\s*(?:apt|apartment|suite|ste|unit|flat|room|rm|#)\.?\s*#?\s*[0-9]{1,5}[a-z]?(?![a-z0-9]))?"
)
_EN_ADDRESS_STOPWORDS = frozenset(
    "the a an of on in at to for from by with my your our his her their this that down up along "
    "across over near and or more blocks block miles mile minutes times".split()
)
_ORDINAL_RE = re.compile(r"[0-9]+(?:st|nd|rd|th)")


def _find_en_addresses(norm: str, original: str) -> Iterator[tuple[int, int, PiiKind]]:
    for m in _EN_ADDRESS_RE.finditer(norm):
        ok = True
        for word in re.finditer(r"\S+", m.group(1)):
            w = word.group()
            if w in _EN_ADDRESS_STOPWORDS:
                ok = False
            elif not (_ORDINAL_RE.fullmatch(w) or original[m.start(1) + word.start()].isupper()):
                ok = False
        if ok:
            yield m.start(), m.end(), "address"


# --------------------------------------------------------------------------------------------------
# Numbers. Tokens are single digits in any script ("8", "八", "幺", "eight", "oh"), plus modifiers
# ("double", "triple", "thirty"), "+"/"plus", and the ID check letter. Tokens are grouped into runs by
# the gap between them; a run's digit string is then classified (ID > phone > card > digits), and a
# run that is none of them as a whole is split at its separators ("13800138000 13900139000").

_ZH_DIGIT_VALUE = {c: str(i) for i, c in enumerate("零一二三四五六七八九")} | {
    "〇": "0",
    "幺": "1",
    "两": "2",
}
_EN_DIGIT_VALUE = {
    w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine".split())
} | {"oh": "0", "o": "0"}
_DIGIT_VALUE = _ZH_DIGIT_VALUE | _EN_DIGIT_VALUE
_EN_TENS_VALUE = {w: str(i) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}

_TOKEN_RE = re.compile(
    r"(?P<a>[0-9])"
    rf"|(?P<z>[{_ZH_DIGIT_CHARS}])"
    r"|(?P<x>(?<![a-z])x(?![a-z0-9])|叉)"
    r"|(?P<plus>\+|(?<![a-z0-9])plus(?![a-z0-9]))"
    r"|(?<![a-z0-9])(?:(?P<mult>double|triple)"
    r"|(?P<tens>twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
    r"|(?P<w>zero|oh|one|two|three|four|five|six|seven|eight|nine|o))(?![a-z0-9])"
)
# Decimal numbers ("45.99", "3.14159265") are quantities; their digits never join a run.
_DECIMAL_RE = re.compile(r"(?<![0-9])(?<![0-9]\.)[0-9]+\.[0-9]+(?!\.?[0-9])")
_MAX_GAP = 4
SPOKEN_MIN = 4
"""A number read digit by digit in words is masked from this many digits (written in figures, from 7)."""

# What may follow a number that makes it a quantity, not an identifier (checked for `digits` only).
_UNIT_AFTER_RE = re.compile(
    r"\s*(?:[%元块毛角万亿千百个次天年月日秒岁人件台部张条米斤克吨度倍]|小时|分钟|美元|美金|欧元|英镑|日元|港币|港元|人民币"
    r"|(?:percent|per|dollars?|usd|rmb|yuan|cny|eur|euros?|pounds?|gbp|bucks|cents?|k|m|mb|gb|kb|tb|g|kg|km|"
    r"mi|miles?|minutes?|mins?|seconds?|secs?|hours?|hrs?|days?|weeks?|months?|years?|times|people|users|"
    r"customers|points|pts)(?![a-z]))"
)
_CURRENCY_BEFORE_RE = re.compile(r"(?:[$¥€£第]|rmb|usd|cny|hk\$|us\$)\s*$")

_CN_NUMBER_RE = re.compile(r"1[3-9][0-9]{9}|0[1-9][0-9]{8,10}|[48]00[0-9]{7}")
_CN_MOBILE_RE = re.compile(r"1[3-9][0-9]{9}")
_NANP_RE = re.compile(r"[2-9][0-9]{2}[2-9][0-9]{6}")
_NANP_GROUPINGS = frozenset({(10,), (3, 3, 4), (3, 7), (6, 4), (1, 3, 3, 4), (1, 10), (11,), (1, 3, 7)})

_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"


@dataclass(slots=True)
class _Run:
    """Digits joined from consecutive tokens. ``bounds[i]`` is the (start, end) in the text of digit
    ``i``; ``breaks`` are digit indices where a separator ("-", " ", ",") started a new group.
    Mutable on purpose: a private builder that ``_runs`` fills token by token and never shares."""

    digits: list[str]
    bounds: list[tuple[int, int]]
    breaks: list[int]
    last_type: str
    plus_start: int | None = None
    has_ascii: bool = False
    has_tens: bool = False  # "twenty-eight": a number said as a number, not digit by digit


def _find_numbers(norm: str, original: str) -> Iterator[tuple[int, int, PiiKind]]:
    del original
    if _DECIMAL_RE.search(norm):
        norm = _DECIMAL_RE.sub(lambda m: _BLANK * len(m.group()), norm)
    for run in _runs(norm):
        yield from _classify_run(run, norm)


def _runs(norm: str) -> Iterator[_Run]:
    tokens = list(_TOKEN_RE.finditer(norm))
    run: _Run | None = None
    pending_plus: int | None = None
    prev_end = -1
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.lastgroup
        i += 1
        if kind == "plus":
            if run is not None:
                yield run
            run, pending_plus, prev_end = None, tok.start(), tok.end()
            continue
        if kind == "x":
            if run is not None and len(run.digits) == 17 and _gap_ok(norm[prev_end : tok.start()], "a", "a"):
                run.digits.append("X")
                run.bounds.append((tok.start(), tok.end()))
            if run is not None:
                yield run
            run, pending_plus = None, None
            continue
        # a digit token, possibly several digits ("double oh", "thirty two")
        ttype = "z" if kind == "z" else "a" if kind == "a" else "w"
        start, end = tok.start(), tok.end()
        if kind == "a":
            values = tok.group()
        elif kind == "z":
            values = _ZH_DIGIT_VALUE[tok.group()]
        elif kind == "w":
            values = _EN_DIGIT_VALUE[tok.group()]
        elif kind == "tens":
            values = _EN_TENS_VALUE[tok.group()]
            nxt = tokens[i] if i < len(tokens) else None
            if (
                nxt is not None
                and nxt.lastgroup == "w"
                and nxt.group() not in ("zero", "oh", "o")
                and norm[end : nxt.start()] in (" ", "-")
            ):
                values += _EN_DIGIT_VALUE[nxt.group()]
                end = nxt.end()
                i += 1
            else:
                values += "0"
        else:  # mult
            nxt = tokens[i] if i < len(tokens) else None
            if nxt is None or nxt.lastgroup not in ("a", "z", "w") or norm[end : nxt.start()] not in (" ", "-", "  "):
                if run is not None:
                    yield run
                run, pending_plus = None, None
                continue
            digit = nxt.group() if nxt.lastgroup == "a" else _DIGIT_VALUE[nxt.group()]
            values = digit * (2 if tok.group() == "double" else 3)
            end = nxt.end()
            i += 1
        joined = run is not None and _gap_ok(norm[prev_end:start], run.last_type, ttype)
        if run is not None and joined:
            if _is_break(norm[prev_end:start], run.last_type, ttype):
                run.breaks.append(len(run.digits))
        else:
            if run is not None:
                yield run
            plus = None
            if pending_plus is not None and ttype != "z" and (prev_end == start or norm[prev_end:start].isspace()):
                plus = pending_plus
            run = _Run([], [], [], ttype, plus)
            pending_plus = None
        run.digits.extend(values)
        run.bounds.extend([(start, end)] * len(values))
        run.last_type = ttype
        run.has_ascii = run.has_ascii or kind == "a"
        run.has_tens = run.has_tens or kind == "tens"
        prev_end = end
    if run is not None:
        yield run


def _is_hotline(digits: str) -> bool:
    """A public service number (10086, 12321, 95588; the carriers' 10086999, 1008611): five digits starting 1
    or 9, or up to eight starting with a carrier's service number. Mobiles have 11 digits."""
    return (len(digits) == 5 and digits[0] in "19") or (len(digits) <= 8 and digits.startswith(("10086", "10010", "10000")))


def _gap_ok(gap: str, left: str, right: str) -> bool:
    """May two digit tokens of types ``left``/``right`` (a: ASCII, z: Chinese, w: English word) with
    ``gap`` between them belong to one number?"""
    if len(gap) > _MAX_GAP:
        return False
    sep = gap.strip()
    if "w" in (left, right) and left != right:
        return False  # "oh 138..." or "plan two 13800138000": words and figures do not mix
    if sep == "":
        return True
    if left == right == "a":
        # "," only tight ("4,410,228793": Whisper's thousands commas inside a read-out identifier); "1, 2, 3" is a list
        return sep in ("-", ".", "/", ")", ")-") or gap == ","
    if left == right == "w":
        return sep in ("-", ",", "...", "…", ",...")
    if left == right == "z":
        return sep in ("-", ",", "、", "...", "…", "……")
    return sep == "-"


def _is_break(gap: str, left: str, right: str) -> bool:
    if gap == "":
        return False
    if left == right == "w":
        return not gap.isspace()
    return True


def _classify_run(run: _Run, norm: str) -> Iterator[tuple[int, int, PiiKind]]:
    digits = "".join(run.digits)
    n = len(digits)
    if SPOKEN_MIN <= n < 7 and not run.has_ascii and not run.has_tens:
        # read out digit by digit in words ("four one five five", 三零零二): a PIN, an SMS code, the last
        # digits of an ID or a card. Nobody says an amount, a count or a date that way ("二零二六年" is a year)
        start, end = run.bounds[0][0], run.bounds[-1][1]
        cuts = [0, *run.breaks, n]
        short_list = len(cuts) > 2 and max(b - a for a, b in zip(cuts, cuts[1:])) <= 3  # 幺幺零、幺幺九
        if not (short_list or _is_counting(digits) or _is_hotline(digits) or _UNIT_AFTER_RE.match(norm, end)
                or _CURRENCY_BEFORE_RE.search(norm, max(0, start - 6), start)):
            yield start, end, "digits"
        return
    if n < 7:
        return
    cuts = [0, *run.breaks, n]
    groups = tuple(b - a for a, b in zip(cuts, cuts[1:], strict=False))
    plus = run.plus_start is not None
    kind = _classify(digits, plus, groups)
    if kind is None and plus and (kind := _classify(digits, False, groups)) is not None:
        plus = False  # a stray "+" ("C++ 13800138000") must not hide the number, nor join its span

    def span(lo: int, hi: int) -> tuple[int, int]:
        start = run.plus_start if (plus and lo == 0 and run.plus_start is not None) else run.bounds[lo][0]
        if start > 0 and norm[start - 1] == "(":
            start -= 1
        return start, run.bounds[hi - 1][1]

    if kind is not None:
        yield (*span(0, n), kind)
        return
    # Split at separators: the longest classifiable stretch from each group start wins.
    leftover = 0
    gi = 0
    while gi < len(groups):
        found = None
        last = gi + 1  # the furthest group end within 20 digits: bounds the work per group
        while last < len(groups) and cuts[last + 1] - cuts[gi] <= 20:
            last += 1
        for gj in range(last, gi, -1):
            if cuts[gj] - cuts[gi] < 10:
                break
            k = _classify(digits[cuts[gi] : cuts[gj]], plus and gi == 0, groups[gi:gj])
            if k is not None:
                found = (gj, k)
                break
        if found is None:
            gi += 1
            continue
        gj, k = found
        if leftover < gi:
            yield from _plain_number(run, norm, digits, cuts, groups, leftover, gi, span)
        yield (*span(cuts[gi], cuts[gj]), k)
        gi = leftover = gj
    if leftover < len(groups):
        yield from _plain_number(run, norm, digits, cuts, groups, leftover, len(groups), span)


def _plain_number(
    run: _Run,
    norm: str,
    digits: str,
    cuts: list[int],
    groups: tuple[int, ...],
    gi: int,
    gj: int,
    span: Callable[[int, int], tuple[int, int]],
) -> Iterator[tuple[int, int, PiiKind]]:
    """Groups ``gi:gj`` of a run that are no phone/ID/card: masked as ``digits`` if they look like
    an identifier rather than a quantity, a date, a list of small numbers or counting out loud."""
    lo, hi = cuts[gi], cuts[gj]
    sub, sub_groups = digits[lo:hi], groups[gi:gj]
    if len(sub) < 7 or _is_compact_date(sub) or _is_hotline(sub):
        return
    # "7 4 2 9 1 8 3", or words ("nine eight four five, six zero ..."): one number read digit by digit,
    # whatever the pauses between its groups
    # "9-8-4-5-0-1-2763": read digit by digit, the last digits written as one group by the recogniser
    spelled = (all(g == 1 for g in sub_groups) or (len(sub_groups) >= 4 and all(g == 1 for g in sub_groups[:-1]))
               or run.last_type == "w" and not run.has_ascii)
    start, end = span(lo, hi)
    text = norm[start:end]
    # "4,410,228793": commas that are no thousands grouping (a quantity is "1,234,567") inside one identifier
    # (a long last group: "58,88,128" stays a list of prices)
    odd_commas = "," in text and sub_groups[-1] >= 4 and not re.fullmatch(r"[0-9]{1,3}(?:,[0-9]{3})+", text)
    if not (spelled or odd_commas) and any(g < 3 for g in sub_groups[:-1]):
        return  # "58 88 128 198", "2026-11-23 10": a list of small numbers, a date
    if (spelled or not run.has_ascii) and _is_counting(sub):
        return  # "一二三四五六七八九十", "1 2 3 4 5 6 7"
    if sub_groups == (4, 4) and all(1900 <= int(sub[i : i + 4]) <= 2099 for i in (0, 4)):
        return  # "1990-2000": a range of years
    if _UNIT_AFTER_RE.match(norm, end) or _CURRENCY_BEFORE_RE.search(norm, max(0, start - 6), start):
        return
    yield start, end, "digits"


def _classify(digits: str, plus: bool, groups: tuple[int, ...]) -> PiiKind | None:
    if len(digits) == 18 and _valid_ric(digits):
        return "id_card"
    if "X" in digits:
        return None
    if _is_phone(digits, plus, groups):
        return "phone"
    if 13 <= len(digits) <= 19 and digits[0] in "234569" and _luhn_ok(digits):
        return "bank_card"
    return None


def _is_phone(d: str, plus: bool, groups: tuple[int, ...]) -> bool:
    """Chinese mobile/landline/400-800, NANP, UK and generic E.164 (with a "+" or "00" prefix)."""
    if plus or d.startswith("00"):
        body = d if plus else d[2:]
        if body.startswith("86"):
            rest = body[2:]
            return bool(_CN_NUMBER_RE.fullmatch(rest) or _CN_NUMBER_RE.fullmatch("0" + rest))
        if body.startswith("1"):
            return bool(_NANP_RE.fullmatch(body[1:]))
        return 8 <= len(body) <= 15 and body[0] != "0"
    if _CN_NUMBER_RE.fullmatch(d):
        return True
    if d.startswith("86") and _CN_MOBILE_RE.fullmatch(d[2:]):
        return True
    if groups not in _NANP_GROUPINGS:
        return False
    return bool(_NANP_RE.fullmatch(d) or (len(d) == 11 and d[0] == "1" and _NANP_RE.fullmatch(d[1:])))


def _valid_ric(s: str) -> bool:
    """Chinese resident identity number (GB 11643-1999): area, birth date, sequence, ISO 7064 check."""
    if len(s) != 18 or not s[:17].isdigit() or s[0] not in "12345678":
        return False
    if not _is_date(s[6:14]):
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _RIC_WEIGHTS, strict=True))
    return _RIC_CHECK[total % 11] == s[17]


def _luhn_ok(d: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(d)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _is_date(yyyymmdd: str) -> bool:
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])
    if not 1900 <= year <= 2099:
        return False
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _is_counting(d: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(d, d[1:], strict=False)}
    return steps in ({1}, {-1})


def _is_compact_date(d: str) -> bool:
    """"20261123" is a date, not an account number."""
    return len(d) == 8 and _is_date(d)
