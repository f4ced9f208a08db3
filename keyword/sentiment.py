"""Customer sentiment of telephone calls, Mandarin and English, sans-I/O: utterances in, scores out.

:func:`score_utterance` scores one utterance in [-1, 1] (label ``negative`` / ``neutral`` / ``positive`` at
``±LABEL_THRESHOLD``). :class:`CallSentiment` is fed one call's finals (either channel, any order) and
:meth:`CallSentiment.end` says how the *customer* feels at the end of the call; :func:`negative_trend`
is an optional alert condition on that result. Nothing here touches Redis or the disk; a worker drives it.

English: VADER's lexicon and rules (compound score) with two contact-center corrections. VADER is tuned
for social media, so task talk it reads as warm ("can you *help* me", "*yes please*", "*sure*", my account
*number*) is neutralised in a private copy of its lexicon, and a phrase layer adds what a call means and
VADER cannot see: "still not working", "third time I've called", "on hold for an hour", "speak to a
manager", "that fixed it", "you've been so helpful". A complaint phrase overrides VADER's positives in
the same utterance ("great, so it's still broken"; "thanks, but it's still not working").

Mandarin: snownlp (trained on product reviews) was measured on call speech and not used: it rates
太好了，解决了，谢谢 0.39, 不满意 0.56 and a neutral 我的账号是一二三四 0.73 (0.5 is neutral), and its import
costs about 2 s. Instead, a curated lexicon of call-center words and phrases over jieba's segmentation
(lexicon entries are added to a private jieba dictionary so they stay whole; HMM off, so unknown text
falls apart into single characters and never swallows a cue), with

* negation in the three tokens before a cue: 不满意, 没解决 (a negated positive turns negative), 不是不行
  (a negated negative turns weakly positive), 不太好 (negation before a degree adverb halves the cue);
* degree adverbs: 太, 非常, 特别, 很, 真的 strengthen, 有点, 稍微 weaken; 还是, 又, 一直, 根本 strengthen a
  complaint (还是不行, 又断了); a few ambiguous words (好, 差, 慢, 麻烦, 卡) count only with a modifier;
* multi-token patterns on the folded text: 第三次打, 等了半个小时, 找你们领导, 到底能不能, 凭什么, 什么破...

Both languages: a clause ending in a question has its positive cues damped (能解决吗 is not a resolution,
"can you fix it?" is not praise); a conditional clause (如果不行的话, "if it doesn't work") damps all
cues; after a contrast (但是, 不过, "but") the later clause counts more. An utterance that is only
politeness ("thanks", 好的谢谢, "okay bye") is *polite*: a weak positive for gratitude, 0 for an
acknowledgement, and little weight in the call's end score. Text is folded first (keyword/normalize.py:
Traditional to Simplified, full-width to ASCII), and the script of the text decides the language when it
disagrees with the ``language`` hint (ASR language ids are unreliable on short turns).

Licences: vaderSentiment (MIT, C.J. Hutto), jieba (MIT); snownlp (MIT) was evaluated, not imported.
Speed: the VADER analyser and the jieba dictionary load once, lazily (about 1 s, cached by jieba in the
temp dir); after that an utterance costs tens of microseconds, and nothing is ever downloaded.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .normalize import CLAUSE_BREAKS, fold, is_han

__all__ = [
    "LABEL_THRESHOLD",
    "ScoredUtterance",
    "CallSentiment",
    "CallSentimentResult",
    "UtteranceSentiment",
    "negative_trend",
    "score_utterance",
]

LABEL_THRESHOLD = 0.2
"""A score at or above this is ``positive``, at or below its negative ``negative``, else ``neutral``.
Wider than VADER's ±0.05 because call speech is mostly neutral task talk."""

POLITE_THANKS_SCORE = 0.1
"""Score of an utterance that is only gratitude ("thanks", 好的谢谢): a trace of warmth, still neutral. A
closing thanks is manners, not satisfaction: QA leads label a call that ends "okay, thanks" after a plain
errand neutral (measured on tests/data/dialogues_tune: at 0.25 most such calls came out positive)."""


def _label(score: float) -> str:
    if score >= LABEL_THRESHOLD:
        return "positive"
    if score <= -LABEL_THRESHOLD:
        return "negative"
    return "neutral"


def _squash(raw: float) -> float:
    """Unbounded sum of cue weights to (-1, 1); one cue of weight 1 gives 0.71."""
    return raw / math.sqrt(raw * raw + 1.0)


@dataclass(frozen=True, slots=True)
class UtteranceSentiment:
    """One utterance's sentiment. ``score`` in [-1, 1]; ``cues`` are the lexicon words and phrases that
    decided it, signed (``-还是不行``, ``+that fixed it``, ``vader:+0.44``); ``polite`` marks an utterance
    that is only thanks or acknowledgement (weak evidence at the end of a call)."""

    score: float
    label: str
    cues: tuple[str, ...] = ()
    polite: bool = False


_NEUTRAL = UtteranceSentiment(0.0, "neutral")


def score_utterance(text: str, language: str) -> UtteranceSentiment:
    """Score one utterance. ``language`` is a hint ("zh", "zh-CN", "en", "auto", ""): text with Han
    characters is scored as Mandarin, any other text as English. Never raises on odd input."""
    if not text or not text.strip():
        return _NEUTRAL
    han = sum(1 for c in text if is_han(c))
    if han:
        return _score_zh(text)
    if any(c.isalpha() for c in text):
        return _score_en(text)
    return _NEUTRAL


# --- shared clause handling -----------------------------------------------------------------------
@dataclass(slots=True)
class _Hit:
    start: int
    end: int
    weight: float
    cue: str


def _finish(hits: list[_Hit], contrast_at: int, questions: list[tuple[int, int]],
            conditionals: list[tuple[int, int]], extra_raw: float = 0.0,
            extra_cues: tuple[str, ...] = ()) -> UtteranceSentiment:
    """Apply contrast, question and conditional damping to cue weights and sum them into a score."""
    raw = extra_raw
    cues: list[str] = list(extra_cues)
    for h in hits:
        w = h.weight
        if contrast_at >= 0:
            w *= 0.6 if h.end <= contrast_at else 1.2
        if any(a <= h.start < b for a, b in questions) and w > 0:
            w *= 0.2
        if any(a <= h.start < b for a, b in conditionals):
            w *= 0.2
        raw += w
        cues.append(f"{'+' if h.weight > 0 else '-'}{h.cue}")
    score = max(-1.0, min(1.0, round(_squash(raw), 4)))
    return UtteranceSentiment(score, _label(score), tuple(cues))


def _clauses(folded: str) -> list[tuple[int, int]]:
    """Clause spans of ``folded`` (ends exclusive, each span includes its closing punctuation)."""
    spans, start = [], 0
    for i, c in enumerate(folded):
        if c in CLAUSE_BREAKS:
            spans.append((start, i + 1))
            start = i + 1
    if start < len(folded):
        spans.append((start, len(folded)))
    return spans


# --- English ----------------------------------------------------------------------------------------
_EN_LEXICON_OVERRIDES: dict[str, float] = {
    # task talk VADER reads as warm
    "help": 0.0, "helps": 0.0, "helping": 0.0, "like": 0.0, "please": 0.0, "sure": 0.0, "yes": 0.0,
    "yeah": 0.0, "yea": 0.0, "ok": 0.0, "okay": 0.0, "well": 0.0, "support": 0.0, "care": 0.0,
    "credit": 0.0, "number": 0.0, "free": 0.0, "save": 0.0, "security": 0.0, "share": 0.0,
    "interest": 0.0, "agree": 0.0, "kind": 0.0, "pretty": 0.0, "ready": 0.0, "true": 0.0, "want": 0.0,
    "god": 0.0, "certain": 0.0, "clear": 0.0, "important": 0.0, "safe": 0.0, "protect": 0.0,
    "protected": 0.0, "secure": 0.0, "chance": 0.0, "special": 0.0, "matter": 0.0, "benefit": 0.3,
    "fine": 0.0, "hope": 0.5, "hopefully": 0.3, "alright": 0.0, "right": 0.0,
    # closing manners: gratitude is weak evidence of satisfaction
    "thanks": 0.4, "thank": 0.4, "cheers": 0.4, "ta": 0.0, "appreciate": 0.6, "appreciated": 0.6,
    "welcome": 0.0, "lovely": 0.8, "nice": 0.8, "good": 0.8,
    # reporting an errand is not a complaint
    "sorry": 0.0, "pay": 0.0, "cancel": 0.0, "no": -0.4, "charged": -0.3, "problem": -0.6,
    "problems": -0.6, "lost": -0.6, "block": -0.6, "blocked": -0.5, "stolen": -0.8, "fraud": -0.8,
    "debt": -0.3, "dispute": -0.5,
    # "fair enough" accepts an explanation; "that's not fair" is in _EN_NEGATIVE
    "fair": 0.0,
}

_NEG = r"(?:not|n't|never|no longer|hardly)"
_FIXED = (r"(?:work(?:s|ing|ed)?|fix(?:ed)?|resolv(?:e|ed)|sort(?:ed)?|solv(?:e|ed)|help(?:ed|ing|ful)?|"
          r"connect(?:ed|ing)?|load(?:s|ed|ing)?|listen(?:ing)?|go(?:ne|ing)? through|c[oa]me through|"
          r"arriv(?:e|ed)|show(?:n|ed)? up|turn(?:s|ed)? on)")
_ORDINAL = (r"(?:second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|umpteenth|hundredth|"
            r"\d+(?:st|nd|rd|th))")
_DURATION = r"(?:hours?|days?|weeks?|months?|forever|ages|an hour|(?:\d+|twenty|thirty|forty|fifty|sixty) minutes)"

_EN_NEGATIVE: list[tuple[str, float]] = [
    (r"\bstill\b[^.!?]{0,25}?(?:\bnot\b|n't\b|\bnever\b|\bbroken\b|\bdown\b|\bdead\b|\bwaiting\b|"
     r"\bcharg\w*|\bwrong\b|\bthe same\b|\bhappening\b|\bno\b)", -0.8),
    (rf"{_NEG}\s+(?:\w+\s+){{0,2}}{_FIXED}\b", -0.6),
    (r"\b(?:stopped|stops|quit|keeps?|kept)\s+(?:\w+\s+)?(?:working|dropping|crashing|failing|cutting out|"
     r"disconnecting|freezing|charging me|happening)\b", -0.6),
    (rf"\b{_ORDINAL}\s+time\b", -0.8),
    (r"\b(?:called|rung|phoned|rang|contacted|been calling|calling)\b[^.!?]{0,25}?\b(?:times|twice|again and again|"
     r"over and over|every day|all week|already)\b", -0.6),
    (r"\bhow many (?:more )?times\b", -0.7),
    (r"\b(?:ridiculous|unacceptable|absurd|outrageous|pathetic|useless|hopeless|incompetent|a joke|nightmare|"
     r"disgrace\w*|disgusting|scam\w*|rip-?off|ripped off|garbage|rubbish|worst|terrible|horrible|awful|"
     r"appalling|shocking|insane|unbelievable|clueless)\b", -0.5),
    (r"\b(?:frustrat\w*|annoy\w*|fed up|sick (?:and tired )?of|had enough|enough is enough|losing my patience|"
     r"pissed|furious|livid|angry|upset|disappoint\w*|irritat\w*|fuming|exasperat\w*|unhappy|not happy)\b", -0.7),
    (rf"\b(?:wait(?:ed|ing)?|been waiting|on hold|took|taking)\b[^.!?]{{0,20}}?\b{_DURATION}\b", -0.6),
    (r"\bon hold\b", -0.3),
    (r"\b(?:speak|talk)\s+(?:to|with)\s+(?:a|your|the|someone|somebody)\s*(?:manager|supervisor|"
     r"else|senior|in charge|higher up)\b", -0.7),
    (r"\b(?:complaint|complain\w*)\b", -0.7),
    (r"\b(?:switch\w*|mov(?:e|ing)|go(?:ing)?|tak(?:e|ing) my business)\s+(?:to\s+)?(?:another|a different|"
     r"other|elsewhere|a competitor)\b", -0.8),
    (r"\b(?:lawyer|sue you|legal action|ombudsman|regulator|report you|bbb|fcc|ofcom|trading standards)\b", -0.8),
    (r"\b(?:overcharg\w*|double[- ]charg\w*|charged (?:me )?(?:twice|again|for nothing)|wrongly charg\w*)", -0.7),
    (r"\b(?:wast(?:e|ed|ing) (?:of )?(?:my |our )?(?:time|money)|waste of time)\b", -0.9),
    (r"\b(?:nobody|no one|no-one)\b[^.!?]{0,20}?\b(?:called|calls|helped|helps|fixed|came|showed|answer\w*|"
     r"respond\w*|got back|gets back|cares?|listen\w*|knows)\b", -0.8),
    (r"\bnever\s+(?:called|got back|showed|came|arrived|fixed|heard back|received|got)\b", -0.8),
    (r"\b(?:what the hell|what the heck|for god'?s sake|are you kidding|you(?:'ve| have) got to be kidding|"
     r"give me a break|seriously\?|you people (?:are|never|always|keep|just|don't|can't|have no)|this is a joke)", -0.8),
    (r"\bnothing (?:has )?(?:changed|happened|works|worked|was done|got done)\b", -0.7),
    (r"\bthat'?s not what i (?:asked|said|wanted|meant)\b", -0.5),
    (r"\b(?:i was told|you said|you promised|they promised|was promised|they said)\b", -0.3),
    (r"\b(?:down|broken|dropped|cut off|disconnected|failed|failing|faulty|no signal|no service|"
     r"doesn'?t work|won'?t work|can'?t (?:log ?in|connect|access|get through))\b", -0.3),
    (r"\bagain\s*[?!]", -0.4),
    # resignation and exasperation without a complaint word: "I guess not", "so I'm
    # just out eleven bucks", "you could at least say sorry", "what a hassle"
    # ("what else can I do" alone is resignation that annotators split between neutral and negative: not here)
    (r"\bi guess not\b|\bclearly not\b|\bno choice\b|\bhave to live with it\b", -0.5),
    (r"\b(?:just |now )?out (?:of pocket|\$?\w+ (?:bucks|dollars|quid|pounds|euros|rupees|pesos))\b|"
     r"\b(?:lost|losing) (?:a day|a week|\w+ (?:bucks|dollars|quid|pounds))\b", -0.6),
    (r"\b(?:could|might|should) (?:at least|just) (?:say|have said) sorry\b|\bwhat a (?:hassle|pain|mess|joke|headache)\b|"
     r"\b(?:stress(?:ful|ed)?|a headache|typical)\b|\bgo figure\b|\bwhatever\b", -0.5),
    (r"\b(?:not|isn't|hardly|never) (?:very |really )?fair\b|\bunfair\b", -0.6),
    (r"\bthanks for nothing\b", -1.0),
    (r"\b(?:thanks|thank you) anyway\b", -0.3),
]

_EN_POSITIVE: list[tuple[str, float]] = [
    (r"\b(?:it|that|this|everything|internet|phone|card|app|line|connection|service|wifi|wi-fi|payment|"
     r"it all|all)(?:'s| is| are| has been| was)?\s+(?:\w+\s+)?(?:working|works|worked|fixed|solved|sorted|"
     r"resolved|back (?:on|up)|up and running|gone through|went through|came through)\b", 0.8),
    (r"\b(?:works?|working|fixed|sorted|resolved|solved|back on|back up)\s+"
     r"(?:now|again|fine|perfectly|great)\b", 0.8),
    (r"\b(?:problem|issue) (?:is |has been |was )?(?:solved|fixed|resolved|sorted|gone)\b", 0.8),
    (r"\bthat (?:did|does) (?:it|the trick)\b|\ball (?:set|sorted|good now)\b|\bup and running\b", 0.8),
    (r"\b(?:thanks|thank you)\s+(?:so|very|really|ever so)\s+much\b|\bthanks a (?:lot|million|bunch)\b|"
     r"\bmany thanks\b|\bmuch appreciated\b|\b(?:really |truly |i )appreciate\b|"
     r"\bappreciate (?:it|that|your)\b", 0.7),
    (r"\b(?:you(?:'ve| have) been|you were|you're|you are)\s+(?:so |very |really |super |extremely |incredibly )?"
     r"(?:helpful|great|amazing|wonderful|fantastic|brilliant|patient|kind|a star|a lifesaver|a life saver|"
     r"the best)\b", 0.9),
    # relief and emphatic thanks: "oh, thank God", "phew", "thanks, man, seriously", "honestly, thank you"
    (r"\bthank (?:god|goodness|heavens)\b|\bphew\b|\b(?:thanks|thank you)\b[^.!?]{0,12}\b(?:seriously|honestly|"
     r"for real|truly)\b|\b(?:seriously|honestly|genuinely),? (?:thanks|thank you)\b", 0.7),
    (r"\b(?:relieved|what a relief|made my day|happy now|"
     r"that'?s (?:great|perfect|brilliant|wonderful|awesome))\b", 0.6),
]

_EN_NEGATORS = re.compile(r"\b(?:not|never|no|nothing|nobody|hardly|still not)\b|n't\b|\bstill\b")
_EN_CONTRAST = re.compile(r"\b(?:but|however)\b")
_EN_CONDITIONAL = re.compile(r"^\s*(?:if|unless|in case)\b|\b(?:if|unless|in case) (?:it|that|this|not)\b|"
                             r"\b(?:i hope|hopefully|let's hope|fingers crossed)\b")
_EN_POLITE = re.compile(
    r"^(?:\W*\b(?:ok|okay|alright|all right|right|sure|yes|yeah|yep|yup|no|nope|fine|well|um+|uh+|hmm+|mm+|oh|"
    r"so|and|then|great|cool|good|perfect|lovely|got it|i see|understood|i understand|please|bye|goodbye|bye-bye|"
    r"bye bye|cheers|ta|have a (?:good|nice|great) (?:day|one|evening|night|weekend)|you too|thanks|thank you|"
    r"thank-you|that'?s all|that'?s it|that'?s fine|that'?s ok(?:ay)?|no problem|no worries)\b)+\W*$")
_EN_GRATITUDE = re.compile(r"\b(?:thanks|thank you|thank-you|cheers|ta)\b")

_EN_NEG_RX = [(re.compile(p), w) for p, w in _EN_NEGATIVE]
_EN_POS_RX = [(re.compile(p), w) for p, w in _EN_POSITIVE]


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon = {**analyzer.lexicon, **_EN_LEXICON_OVERRIDES}  # private copy, not VADER's module data
    return analyzer


_EN_TOPIC = re.compile(r"\b(?:scam|spam|fraud(?:ulent)?|phishing|nuisance|junk|robo)(?=[\s-]+(?:texts?|calls?|callers?|"
                       r"messages?|emails?|numbers?|links?|alerts?|sms|department|team)\b)")
"""Scam / spam / fraud naming a kind of message ("these scam texts", "the fraud team") is the topic, not a mood."""
_EN_CONCESSIVE = re.compile(r"\bat least\b|\banyway\b|\bi suppose\b|\bi guess\b")
"""Praise with a concession ("you've been very kind, at least", "thanks, I guess"): warmth for the person, not
for the outcome; positive cues in its clause count a third."""


def _score_en(text: str) -> UtteranceSentiment:
    folded = _EN_TOPIC.sub(lambda m: "x" * len(m.group()), fold(text))
    text = folded
    if _EN_POLITE.match(folded):
        if _EN_GRATITUDE.search(folded):
            return UtteranceSentiment(POLITE_THANKS_SCORE, _label(POLITE_THANKS_SCORE), ("+thanks",), True)
        return UtteranceSentiment(0.0, "neutral", (), True)
    try:
        compound = float(_vader().polarity_scores(text)["compound"])
    except Exception:  # VADER on pathological input (it has index arithmetic on tokens): no lexical evidence
        compound = 0.0
    hits: list[_Hit] = []
    taken: list[tuple[int, int]] = []
    for rx, w in _EN_NEG_RX:
        for m in rx.finditer(folded):
            if not any(a < m.end() and m.start() < b for a, b in taken):
                hits.append(_Hit(m.start(), m.end(), w, m.group(0).strip()))
                taken.append(m.span())
    for rx, w in _EN_POS_RX:
        for m in rx.finditer(folded):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            before = folded[max(0, m.start() - 25):m.start()].split()[-4:]
            if _EN_NEGATORS.search(" ".join(before)) and "thank" not in m.group(0):
                continue  # "not fixed", "still not working" belong to the negative layer
            hits.append(_Hit(m.start(), m.end(), w, m.group(0).strip()))
            taken.append(m.span())
    clauses = _clauses(folded)
    questions = [c for c in clauses if folded[c[0]:c[1]].rstrip().endswith("?")]
    conditionals = [c for c in clauses if _EN_CONDITIONAL.search(folded[c[0]:c[1]])]
    contrast = [m.start() for m in _EN_CONTRAST.finditer(folded)]
    contrast_at = contrast[-1] if contrast and hits else -1
    sentences = [m.span() for m in re.finditer(r"[^.!?]+[.!?]*", folded)]
    conceded = [c for c in sentences if _EN_CONCESSIVE.search(folded[c[0]:c[1]])]
    if conceded:
        hits = [_Hit(h.start, h.end, h.weight / 3, h.cue) if h.weight > 0 and any(a <= h.start < b for a, b in conceded)
                else h for h in hits]

    compound = max(-0.999, min(0.999, compound))
    vader_raw = compound / math.sqrt(1.0 - compound * compound)
    if questions and vader_raw > 0:
        vader_raw *= 0.4
    if conditionals:
        vader_raw *= 0.5
    if conceded and vader_raw > 0:
        vader_raw /= 3
    cc_neg = sum(h.weight for h in hits if h.weight < 0)
    cc_pos = sum(h.weight for h in hits if h.weight > 0)
    if cc_neg < 0 and vader_raw > 0:
        vader_raw *= 0.2  # "great, so it's still broken", "thanks, but it still doesn't work"
    elif cc_pos > 0 and vader_raw < 0:
        vader_raw *= 0.5
    cues = (f"vader:{compound:+.2f}",) if abs(compound) >= 0.05 else ()
    return _finish(hits, contrast_at, questions, conditionals, vader_raw, cues)


# --- Mandarin ---------------------------------------------------------------------------------------
# Lexicon: word -> weight (>0 positive, <0 negative). Weights are for a plain mention; degree adverbs,
# negation and persistence adverbs scale them. _ZH_GRATITUDE words are politeness; _ZH_NEEDS_MODIFIER
# words are too ambiguous alone (好的, 差不多, 银行卡) and count only after a degree adverb or negator.
_ZH_LEXICON: dict[str, float] = {
    # positive
    "太好了": 1.0, "好极了": 1.0, "太棒了": 1.0, "真棒": 0.9, "棒": 0.7, "真好": 0.7, "挺好": 0.6,
    "挺好的": 0.6, "不错": 0.6, "满意": 0.7, "完美": 0.9, "好用": 0.6, "专业": 0.5, "耐心": 0.5,
    "贴心": 0.7, "周到": 0.6, "给力": 0.8, "靠谱": 0.6, "好评": 0.8, "开心": 0.8, "高兴": 0.8,
    "放心": 0.6, "舒服": 0.5, "有用": 0.4, "管用": 0.6, "有效": 0.4, "喜欢": 0.6, "解决": 0.5,
    "可以了": 0.5, "没问题": 0.3, "没问题了": 0.6, "帮大忙": 0.9, "帮了大忙": 0.9, "太感谢": 0.9,
    "好": 0.5, "幸亏": 0.6, "幸好": 0.6, "多亏": 0.7, "谢天谢地": 0.8, "还好你们": 0.6, "及时": 0.5,
    # gratitude (politeness when alone)
    "谢谢": 0.12, "谢谢你": 0.15, "谢谢您": 0.15, "谢谢你们": 0.15, "多谢": 0.12, "感谢": 0.3,
    "辛苦了": 0.2, "辛苦": 0.15, "辛苦你了": 0.2, "辛苦您了": 0.2, "麻烦你了": 0.1, "麻烦您了": 0.1,
    # negative
    "生气": -0.9, "气死": -1.2, "气死我了": -1.2, "火大": -1.0, "恼火": -0.9, "愤怒": -1.0, "差": -0.7,
    "太差": -1.0, "很差": -0.9, "差劲": -0.9, "差评": -0.9, "离谱": -1.0, "太离谱": -1.1, "不行": -0.6,
    "没用": -0.8, "没有用": -0.8, "垃圾": -1.0, "投诉": -0.9, "失望": -0.9, "烦": -0.7, "好烦": -0.9,
    "烦死": -1.1, "烦死了": -1.1, "烦人": -0.8, "麻烦": -0.5, "坑": -0.8, "坑人": -1.0, "坑爹": -1.0,
    "骗子": -1.0, "骗人": -1.0, "欺骗": -1.0, "骗": -0.8, "忽悠": -0.9, "糟糕": -0.8, "恶心": -1.0,
    "无语": -0.8, "崩溃": -0.9, "郁闷": -0.7, "着急": -0.6, "急死": -1.0, "急死了": -1.0, "受不了": -0.9,
    "不耐烦": -0.6, "浪费": -0.6, "浪费时间": -0.9, "耽误": -0.6, "敷衍": -0.9, "推脱": -0.8,
    "推来推去": -0.9, "踢皮球": -0.9, "没人管": -0.9, "没人理": -0.9, "不满": -0.8, "不满意": -0.8,
    "不好": -0.5, "不太好": -0.3, "不靠谱": -0.8, "不合理": -0.7, "不像话": -0.9, "不负责任": -0.9,
    "不专业": -0.7, "乱扣": -0.9, "乱收费": -1.0, "乱扣费": -1.0, "莫名其妙": -0.8, "讨厌": -0.8,
    "过分": -0.9, "太过分": -1.0, "可恶": -0.9, "慢": -0.5, "贵": -0.4, "难用": -0.7, "卡": -0.4,
    "倒霉": -0.6, "头疼": -0.6, "吃亏": -0.6, "上当": -0.9, "后悔": -0.7, "担心": -0.4, "不放心": -0.5,
    "糊弄": -0.9, "没完没了": -0.8, "一塌糊涂": -1.0, "坏了": -0.4, "故障": -0.2, "欠费": -0.1,
    "不爽": -0.8, "窝火": -0.9, "抓狂": -0.9, "气人": -0.9, "太慢": -0.8,
}
_ZH_GRATITUDE = frozenset({"谢谢", "谢谢你", "谢谢您", "谢谢你们", "多谢", "感谢", "辛苦了", "辛苦",
                           "辛苦你了", "辛苦您了", "麻烦你了", "麻烦您了"})
_ZH_NEEDS_MODIFIER = frozenset({"好", "差", "慢", "贵", "麻烦", "卡", "辛苦"})
_ZH_ACK = frozenset({"好的", "好", "嗯", "嗯嗯", "行", "行吧", "可以", "对", "对的", "是", "是的", "拜拜", "再见",
                     "那", "就", "这样", "那就这样", "先这样", "就这样", "啊", "哦", "噢", "呃", "了", "吧", "哈",
                     "呢", "呀", "好吧", "ok", "okay", "没事", "没事了", "没关系", "不客气", "知道了", "明白了",
                     "好嘞", "好滴", "好好", "那好", "那行", "嗯好"}) | _ZH_GRATITUDE
_ZH_NEUTRAL_WORDS = ("好的", "好吧", "能不能", "行不行", "好不好", "是不是", "可不可以", "有没有", "对不对",
                     "会不会", "要不要", "不好意思", "没关系", "不客气", "不用谢", "不用了", "不知道", "不清楚",
                     "不用", "没事", "麻烦你", "麻烦您", "差不多", "好像", "不一定", "没想到")
_ZH_DEGREE: dict[str, float] = {
    "太": 1.5, "非常": 1.5, "特别": 1.5, "超级": 1.6, "超": 1.5, "极其": 1.7, "极": 1.6, "十分": 1.5,
    "很": 1.3, "真": 1.3, "真的": 1.3, "真是": 1.3, "实在": 1.4, "实在是": 1.4, "挺": 1.15, "蛮": 1.15,
    "好": 1.3, "最": 1.6, "更": 1.3, "越来越": 1.4, "这么": 1.3, "那么": 1.3, "相当": 1.4, "巨": 1.5,
    "有点": 0.6, "有点儿": 0.6, "有些": 0.6, "有一点": 0.6, "稍微": 0.6, "比较": 0.9,
    "太过": 1.5, "如此": 1.3,
}
_ZH_PERSIST: dict[str, float] = {
    "还是": 1.3, "还": 1.2, "又": 1.3, "一直": 1.2, "老是": 1.3, "总是": 1.2, "每次": 1.2, "根本": 1.4,
    "完全": 1.3, "都": 1.1, "仍然": 1.3, "依然": 1.3, "还没": 1.3, "始终": 1.3,
}
_ZH_NEGATORS = frozenset({"不", "没", "没有", "别", "未", "无", "不是", "并不", "并没有", "从来不", "从来没",
                          "从没", "绝不", "不太", "不怎么", "还没", "还没有", "并非", "没什么"})
_ZH_SOFT_NEGATORS = frozenset({"不太", "不怎么"})  # "not very": half strength
_ZH_CONTRAST = frozenset({"但是", "可是", "不过", "但", "然而", "只是"})
_ZH_CONDITIONAL = frozenset({"如果", "要是", "万一", "假如", "的话", "假设", "要不然",
                             # hope and concession: 希望他们能给个说法 is no demand, 至少你态度还行 no satisfaction
                             "希望", "但愿", "至少", "起码", "好歹"})
_ZH_QUESTION_TAIL = frozenset({"吗", "么", "嘛", "?"})
_ZH_QUESTION_WORDS = frozenset({"能不能", "行不行", "好不好", "是不是", "可不可以", "有没有", "对不对", "会不会",
                                "要不要"})

_NUM = r"[一二三四五六七八九十两几半\d]"
_NOT_NEG = r"(?<!不)(?<!没)(?<!没有)(?<!还没)"
_ZH_PATTERNS: list[tuple[str, float]] = [
    (rf"第{_NUM}+[次回遍]", -0.7),
    (rf"[打来找问]了?(?:好|十)?{_NUM}+[次回遍趟]", -0.7),
    (r"(?:说|讲|问|打|来)了?(?:多少|好多|无数|n)[次遍回]", -0.8),
    (rf"(?:等|排队|拖|耗)了?(?:好久|半天|很久|这么久|那么久|这么长时间|{_NUM}+(?:个)?多?(?:小时|钟头|分钟|天|周|星期|礼拜|月))", -0.6),
    (r"(?:找|叫|让|要|转)(?:你们|你的|你)?的?(?:领导|经理|主管|负责人|上级)", -0.6),
    (r"到底(?:能不能|行不行|怎么回事|怎么|要|还要|有没有|是不是|会不会)", -0.6),
    (r"怎么回事", -0.4),
    (r"(?:怎么|为什么|为啥|咋)(?:又|还是?|老是|总是|一直)", -0.6),
    (r"凭什么", -0.9),
    (r"有没有搞错|搞什么|搞什么鬼|什么(?:破|玩意|东西|鬼)|什么态度", -0.9),
    (r"态度(?:太|很|真|极其|非常|特别)?(?:差|恶劣|不好)", -0.9),
    (r"行了行了|够了|算了算了", -0.5),
    # 算了，那我还是等到期吧: giving up one option for another the customer chooses is acceptance, not anger
    (r"算了(?![，,。.…\s]*(?:那|那就)?(?:我)?(?:还是|就)(?:等|先|去|用|按|留着|继续))", -0.4),
    # resignation and exasperation: 真是服了你们, 还能咋办, 我是真没辙了, 算我倒霉, 白瞎了, 给我个说法
    (r"服了|没辙|没招|还能(?:咋办|怎么办|怎样)|能(?:咋办|怎么办)呢|有什么办法|认栽|认倒霉|白瞎|白交|白花|心累|闹心|糟心|添堵", -0.6),
    (r"给(?:我)?(?:个|一个)说法|什么话|这叫什么事", -0.6),
    (r"12315|工信部|消协|消费者协会|曝光|法院|律师|起诉|告你们", -0.9),
    (r"携号转网|换一家|换家|不用你们", -0.6),
    (r"(?:没|没有|还没|还没有|并没有|一直没|都没)(?:给我|帮我)?(?:处理|修好|弄好|搞好|回复|到账|退|联系我|回电|回我|打给我|反馈|上门|人来)", -0.8),
    (r"(?:还是|又|还|老是|总是|一直)(?:不行|不能用|用不了|打不通|上不了网|没网|没信号|断|坏|卡|慢|没好|没修好|没反应|没到|没收到|收不到|扣)", -0.8),
    (r"用不了|不能用|打不通|上不了网|没信号|没网|连不上|登不上|登录不了|收不到|没收到|打不开|断网|掉线|没反应", -0.4),
    (rf"{_NOT_NEG}(?:解决|搞定|弄好|修好|处理好)了", 0.8),
    (r"(?:已经|现在|终于)都?(?:好|通|正常|恢复|能用|可以用|能上网|可以上网)了", 0.7),
    (rf"{_NOT_NEG}(?:能用|可以用|能上网|可以上网|恢复正常|正常使用|到账)了", 0.7),
]
_ZH_RX = [(re.compile(p), w) for p, w in _ZH_PATTERNS]


@cache
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)  # "Building prefix dict..." on every start is noise in the worker
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in (*_ZH_LEXICON, *_ZH_NEUTRAL_WORDS, *_ZH_ACK, *_ZH_DEGREE, *_ZH_PERSIST, *_ZH_NEGATORS):
        if len(word) > 1:
            tokenizer.add_word(word, freq=200000)
    return tokenizer


def _is_break(token: str) -> bool:
    return not token.strip() or any(c in CLAUSE_BREAKS for c in token)


def _score_zh(text: str) -> UtteranceSentiment:
    folded = fold(text)
    tokens = [(w, s, e) for w, s, e in _jieba().tokenize(folded, HMM=False)]
    hits: list[_Hit] = []
    taken: list[tuple[int, int]] = []
    for rx, w in _ZH_RX:
        for m in rx.finditer(folded):
            if m.end() > m.start() and not any(a < m.end() and m.start() < b for a, b in taken):
                hits.append(_Hit(m.start(), m.end(), w, m.group(0)))
                taken.append(m.span())
    words = [w for w, _, _ in tokens if not _is_break(w)]
    if not hits and words and all(w in _ZH_ACK for w in words):
        if any(w in _ZH_GRATITUDE for w in words):
            return UtteranceSentiment(POLITE_THANKS_SCORE, _label(POLITE_THANKS_SCORE), ("+谢谢",), True)
        return UtteranceSentiment(0.0, "neutral", (), True)

    # clause spans by token, for questions and conditionals
    clauses: list[tuple[int, int]] = []
    questions: list[tuple[int, int]] = []
    conditionals: list[tuple[int, int]] = []
    contrast_at = -1
    clause_start, clause_words = 0, []
    for idx, (w, s, e) in enumerate(tokens + [("。", len(folded), len(folded))]):
        if w in _ZH_CONTRAST:
            contrast_at = s
        if _is_break(w) or idx == len(tokens):
            span = (clause_start, e)
            clauses.append(span)
            tail = [x for x in clause_words if x not in ("啊", "呀", "呢", "了", "哈")]
            asks = any(x in _ZH_QUESTION_WORDS for x in clause_words)
            if "?" in w or asks or (tail and tail[-1][-1] in _ZH_QUESTION_TAIL):
                questions.append(span)
            if any(x in _ZH_CONDITIONAL for x in clause_words):
                conditionals.append(span)
            clause_start, clause_words = e, []
        else:
            clause_words.append(w)

    for i, (w, s, e) in enumerate(tokens):
        base = _ZH_LEXICON.get(w)
        if base is None or any(a < e and s < b for a, b in taken):
            continue
        if w == "好" and i + 1 < len(tokens) and tokens[i + 1][0] in _ZH_LEXICON:
            continue  # 好烦, 好差: an adverb here, the next word carries the cue
        degree, negations, soft, persist, neg_before_degree = 1.0, 0, False, 1.0, False
        cue_start = s
        for j in range(i - 1, max(-1, i - 4), -1):
            prev = tokens[j][0]
            if _is_break(prev) or (prev in _ZH_LEXICON and prev not in _ZH_DEGREE):
                break
            if prev in _ZH_NEGATORS or prev in _ZH_DEGREE or prev in _ZH_PERSIST:
                cue_start = tokens[j][1]
            if prev in _ZH_NEGATORS:
                negations += 1
                soft = soft or prev in _ZH_SOFT_NEGATORS
                if degree != 1.0:
                    neg_before_degree = True  # 不太满意: the negator scopes over the adverb
                if prev in _ZH_PERSIST:
                    persist = max(persist, _ZH_PERSIST[prev])
            elif prev in _ZH_DEGREE:
                degree *= _ZH_DEGREE[prev]
            elif prev in _ZH_PERSIST:
                persist = max(persist, _ZH_PERSIST[prev])
        if w in _ZH_NEEDS_MODIFIER and degree == 1.0 and not negations:
            continue
        weight = base
        if negations % 2:
            weight = -weight if weight > 0 else -0.4 * weight
            if soft or neg_before_degree:
                weight *= 0.5
                degree = 1.0
        weight *= min(degree, 2.5)
        if weight < 0:
            weight *= persist
        hits.append(_Hit(s, e, weight, folded[cue_start:e]))
        taken.append((s, e))
    hits.sort(key=lambda h: h.start)
    return _finish(hits, contrast_at, questions, conditionals)


# --- one call ---------------------------------------------------------------------------------------
END_DECAY = 0.3
"""Weight of each earlier substantive customer turn relative to the next one in the end score
(1, 0.3, 0.09, ...): the last two or three statements decide how the call ended."""
POLITE_SALIENCE = 0.3
"""Weight of a thanks-or-okay turn relative to a neutral statement (0.5) or an emotional one (up to 1.5)."""


@dataclass(frozen=True, slots=True)
class ScoredUtterance:
    channel: str
    start_ms: int
    end_ms: int
    sentiment: UtteranceSentiment

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "score": self.sentiment.score, "label": self.sentiment.label}


@dataclass(frozen=True, slots=True)
class CallSentimentResult:
    """The customer's sentiment over one call.

    ``end``/``end_score``: at the end of the call (see :meth:`CallSentiment.end`). ``trend``: mean score
    of the last third of the customer's substantive turns minus the first third (in [-2, 2]; negative =
    getting worse). ``customer_mean``: mean over substantive turns. ``turns``: customer turns, all.
    ``negative_streak``: the longest run of consecutive negative customer turns (thanks, okay and
    backchannel turns in between do not break it). ``per_utterance``: both channels, in time order."""

    end: str
    end_score: float
    trend: float
    customer_mean: float
    turns: int
    negative_streak: int
    per_utterance: tuple[ScoredUtterance, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"end": self.end, "end_score": self.end_score, "trend": self.trend,
                "customer_mean": self.customer_mean,
                "per_utterance": [u.to_json() for u in self.per_utterance]}


def _substantive(s: UtteranceSentiment) -> bool:
    return not s.polite


class CallSentiment:
    """One call's sentiment accumulator (sans-I/O). Feed finals with :meth:`add` in any order (they are
    kept in ``start_ms`` order per channel); ``customer`` and ``mixed`` channels count as the customer,
    ``agent`` is kept separately and never enters the customer's scores."""

    def __init__(self) -> None:
        self._utterances: list[ScoredUtterance] = []
        self._keys: list[tuple[int, int]] = []
        self._ends: dict[str, CallSentimentResult] = {}  # end(outcome) since the last add: the analyzer asks often

    def add(self, channel: str, text: str, language: str, start_ms: int, end_ms: int,
            prior: float = 0.0) -> UtteranceSentiment:
        """Score and keep one final. ``prior`` is what the call's other judgements already know about this
        turn (keyword/analyzer.py: a customer's threat, insult or "still not working" is at most -0.5; "that
        fixed it" at least +0.5): the lexicon cannot hear "I'll take this to the papers" as negative."""
        self._ends.clear()
        sentiment = score_utterance(text, language)
        if prior < 0 and sentiment.score > prior:
            sentiment = UtteranceSentiment(prior, _label(prior), (*sentiment.cues, f"rule:{prior:+.2f}"), False)
        elif prior > 0 and sentiment.score < prior:
            sentiment = UtteranceSentiment(prior, _label(prior), (*sentiment.cues, f"rule:{prior:+.2f}"), False)
        key = (start_ms, len(self._keys))
        at = bisect.bisect(self._keys, key)
        self._keys.insert(at, key)
        self._utterances.insert(at, ScoredUtterance(channel, start_ms, end_ms, sentiment))
        return sentiment

    def add_transcript(self, transcript: Any) -> UtteranceSentiment | None:
        """Convenience for a :class:`callscribe.events.Transcript`; partials are ignored (None)."""
        if not transcript.is_final:
            return None
        return self.add(transcript.channel, transcript.text, transcript.language, transcript.start_ms,
                        transcript.end_ms)

    @property
    def customer(self) -> tuple[UtteranceSentiment, ...]:
        return tuple(u.sentiment for u in self._utterances if u.channel != "agent")

    @property
    def agent(self) -> tuple[UtteranceSentiment, ...]:
        return tuple(u.sentiment for u in self._utterances if u.channel == "agent")

    def end(self, outcome: str = "") -> CallSentimentResult:
        result = self._ends.get(outcome)
        if result is None:
            result = self._ends[outcome] = self._end(outcome)
        return result

    def _end(self, outcome: str) -> CallSentimentResult:
        """The customer's sentiment at the end of the call.

        ``end_score`` is a weighted mean of the customer's turns: each substantive turn (anything but a
        bare thanks/okay) weighs ``END_DECAY ** k`` (k = substantive turns after it) times a salience of
        ``0.5 + |score|``; a thanks/okay turn weighs ``POLITE_SALIENCE`` at the rank of the statement before
        it. So "太好了，解决了，谢谢" after complaints ends positive, while "好的谢谢" after a negative streak
        stays negative. Also, the end is never positive while the last substantive turn is negative."""
        turns = self.customer
        substantive = [s.score for s in turns if _substantive(s)]
        if not turns:
            return CallSentimentResult("neutral", 0.0, 0.0, 0.0, 0, 0, tuple(self._utterances))
        num = den = 0.0
        rank = 0
        last_substantive: UtteranceSentiment | None = None
        for s in reversed(turns):
            if s.polite:
                w = POLITE_SALIENCE * END_DECAY ** rank
            else:
                w = (0.5 + abs(s.score)) * END_DECAY ** rank
                rank += 1
                if last_substantive is None:
                    last_substantive = s
            num += w * s.score
            den += w
            if END_DECAY ** rank < 1e-3:
                break
        end_score = num / den if den else 0.0
        if last_substantive is not None and last_substantive.label == "negative":
            end_score = min(end_score, 0.0)
        trend = 0.0
        if len(substantive) >= 2:
            k = max(1, round(len(substantive) / 3))
            trend = sum(substantive[-k:]) / k - sum(substantive[:k]) / k
        mean = sum(substantive) / len(substantive) if substantive else 0.0
        streak = best = 0
        for s in turns:
            if s.polite:
                continue
            streak = streak + 1 if s.label == "negative" else 0
            best = max(best, streak)
        end_score = _with_outcome(end_score, outcome)
        recent = [t.score for t in turns if not t.polite][-RESIGNED_WINDOW:]
        if outcome == "unresolved" and recent and min(recent) <= GRIEVANCE:
            end_score = min(end_score, -LABEL_THRESHOLD)  # "Fine. Monday morning." after a grievance: resigned
        end_score = round(max(-1.0, min(1.0, end_score)), 4)
        return CallSentimentResult(_label(end_score), end_score, round(trend, 4), round(mean, 4), len(turns),
                                   best, tuple(self._utterances))

    def to_json(self, outcome: str = "") -> dict[str, Any]:
        return self.end(outcome).to_json()


RESIGNED_WINDOW = 3
GRIEVANCE = -0.4
"""With the problem still open, a grievance (a turn at or below GRIEVANCE: more than a calm "my internet is
down") among the customer's last RESIGNED_WINDOW statements makes the end negative: a flat "fine" or "okay" that
closes a grievance is resignation, not contentment (measured on tests/data/dialogues_tune: 0.78 -> 0.82)."""

OUTCOME_STRONG = 0.5
"""With an open problem, only warmth at least this strong ("that's brilliant, you've been so helpful") is
positive; a closing thanks on an unresolved call is manners."""


RESOLVED_WARMTH_MIN = POLITE_THANKS_SCORE / 2
"""On a resolved call, warmth above this reads as satisfaction. A bare "好的，谢谢" / "okay, thanks" after plain
statements averages below it (the thanks weighs little next to the statements before it): manners after a
finished errand, which annotators label neutral (dialogues_tune, tune2, tune3: 0.82/0.79/0.81 -> 0.84/0.80/0.88)."""


def _with_outcome(end_score: float, outcome: str) -> float:
    """What the call's outcome (the analyzer's issue state) says about the customer's closing words.

    ``resolved``: the problem was fixed, so warmth at the end beyond a bare closing thanks reads as
    satisfaction: positive. ``unresolved``: a thanks is politeness, so weak warmth stays neutral. ``""`` (unknown, or an
    information call): the words alone decide. Measured on tests/data/dialogues_tune: the closing thanks
    is where annotators split positive from neutral, and they split it by whether the problem was fixed."""
    if outcome == "resolved" and end_score > RESOLVED_WARMTH_MIN:
        return max(end_score, LABEL_THRESHOLD)
    if outcome == "unresolved" and 0 < end_score < OUTCOME_STRONG:
        return min(end_score, LABEL_THRESHOLD / 2)
    return end_score


def negative_trend(result: CallSentimentResult, *, min_drop: float = 0.4, end_max: float = -LABEL_THRESHOLD,
                   min_turns: int = 3) -> bool:
    """Alert condition: the customer got worse over the call and ended negative.

    True when the customer spoke at least ``min_turns`` times, ``trend`` fell by at least ``min_drop``
    (last third of the turns minus the first third) and ``end_score <= end_max`` (by default: ends
    ``negative``). A call that was angry from start to end has no trend and is not flagged here (the
    end label and ``negative_streak`` say that)."""
    return result.turns >= min_turns and result.trend <= -min_drop and result.end_score <= end_max
