"""What an answer claims about a workbench model, read from its text: the one place those rules live.

The rubric judge and the suspect-gold diagnostics both ask "does this text contradict the registry?"
and "which key facts does it state?"; both call this module, so they can never disagree about the
same answer (docs/design.md, "Registry contradictions").

Facts are named concepts, each a case-insensitive pattern (FACTS, SOURCE_TERMS), and every one of them
is read by the one matcher `affirmed`. A fact counts only where it is affirmed in its clause (a sentence,
cut at ";", ":" and before "but", "only", "while", "whereas", "yet"):
- a negation ("no", "not", "without", "n't", "instead of", "rather than", ...) within the `claims`
  config's negation_window words before it cancels it ("does not use volume", "no train/test split");
  after "or"/"nor" the whole clause before it counts, since a negation governs its list ("does not use
  intraday data, news, or volume");
- so does a negated copula right after it, at most two words between ("volume is not used");
- a contrast ("unlike", "whereas", "while", "as opposed to", "in contrast to", "compared with") cancels
  what follows it up to the next comma (a ", which ..." clause read through) or the clause's end,
  whatever the window: the contrasted thing is another model ("unlike the crossover, which is
  rule-based, ridge ..."; "..., whereas ridge uses volume"); "unlike SMA, ridge uses close" names close.
The NO_SPLIT and NO_FIT facts carry their negation inside the pattern; their own negation words cancel
nothing else. "High" and "low" are data sources only as price fields ("daily high, low and close",
"highs and lows", "high prices", "the 55-day high", "highest high", "OHLC bars"), never as adjectives
("low drawdown", "high Sharpe", "a high-risk model"); "OHLCV set"/"OHLCV data" name the bundled data,
not the fields a model reads. "rule-based" states that nothing is fitted only when it is said of the subject
("X is rule-based"), not of another model named beside it ("unlike the rule-based crossover, ...").
Limits: the rules read clauses, not grammar. A fact said of another model in a clause of its own ("the
crossover is rule-based; ridge is fitted ...") still counts for the answer's model, and a concessive
"while" ("while it is rule-based, it has two windows") cancels a fact about the model itself: a missed
fact costs one key fact, a false contradiction caps the whole score, so contrasts lean to cancelling.

Registry contradictions (CONTRADICTIONS), for a model of the registry:
- split_claim_on_rule_model   a rule model (nothing is fitted) said to have a train/test split,
                              80/20, out-of-sample or held-out results, or a chronological split;
- no_split_on_ml_model        the ML model said to have no split, nothing fitted, or a full-period backtest;
- data_source_foreign_terms   a data_source answer naming a data source the model's registry entry
                              does not list (volume for a close-only model, intraday, news, ...).
Suspect-gold issues (SUSPECT_ISSUES) add unknown_model and data_source_missing_terms (a data_source
answer that omits one of the model's registered data sources).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distill import config
from distill.workbench.registry import MODELS, TICKERS, ModelSpec

# OHLC(V) as a field list ("OHLC bars"), not as the name of the bundled data ("OHLCV set", "OHLCV data")
_FIELD_LIST = r"(?=[\s-]+(?:bars?|candles?|candlesticks?|fields?|columns?|prices?|quotes?|values?|series)\b)"
_OHLC = rf"\bOHLCV?{_FIELD_LIST}"
_LOOKBACK = r"(?:\b\d+[\s-]*(?:day|bar|week|session|period)s?|\bdaily|\bprior|\bprevious|\brolling)"

# Data-source terms: the first five occur in registry data sources; the rest in none (always foreign).
SOURCE_TERMS: dict[str, str] = {
    "close": rf"\bclos(?:e|es|ing)\b|{_OHLC}",
    "volume": rf"\bvolumes?\b|\bOHLCV{_FIELD_LIST}",
    # a price field: plural, followed by "price(s)", after a lookback ("55-day", "daily", "highest"),
    # listed with another price field, or in an OHLC field list (not the "OHLCV set", a data set's name)
    "high": rf"\bhighs\b|(?:{_LOOKBACK}|\bhighest)\s+high\b(?!-)|{_OHLC}"
            r"|\bhigh(?=\s+(?:prices?|quotes?)\b|\s*(?:,|/|&|-|and)\s*(?:the\s+)?(?:lows?|close|open)\b)",
    "low": rf"\blows\b|(?:{_LOOKBACK}|\blowest)\s+low\b(?!-)|{_OHLC}"
           r"|\blow(?=\s+(?:prices?|quotes?)\b|\s*(?:,|/|&|-|and)\s*(?:the\s+)?(?:close|open|highs?)\b)"
           r"|(?:(?<=high,\s)|(?<=high/)|(?<=high-)|(?<=high\sand\s)|(?<=high\s&\s))low\b",
    "black-scholes": r"\bblack[\s-]*scholes\b",
    "intraday": r"\bintraday\b|\bminute\b|\btick data\b|\bhigh[\s-]*frequency\b",
    "fundamentals": r"\bfundamentals?\b|\bearnings\b|\bbalance sheets?\b",
    "news/sentiment": r"\bnews\b|\bsentiment\b",
    "order book": r"\border[\s-]*book\b",
}

# Methodology facts, by name.
SPLIT = ("train/test split", r"\btrain(?:ing)?\s*(?:/|-|and)\s*test(?:ing)?\b|\b80\s*%?\s*[/–-]\s*20\b"
                             r"|\b(?:first|initial) 80\s*%|\blast 20\s*%")
OUT_OF_SAMPLE = ("out-of-sample", r"\bout[\s-]of[\s-]sample\b|\bheld[\s-]out\b|\bhold[\s-]?out\b"
                                  r"|\btest (?:set|period)\b|\btraining (?:set|period)\b")
CHRONOLOGICAL = ("chronological", r"\bchronological(?:ly)?\b|\bin time order\b")
NO_SPLIT = ("no split", r"\b(?:no|without(?:\s+(?:a|an|any))?)\s+(?:train(?:ing)?\s*(?:/|-|and)\s*test\s+)?split\b"
                        r"|\bnot split\b|\bnever split\b|\b(?:no|nothing)(?: data)? (?:is )?(?:held|kept)[\s-]out\b")
NO_FIT = ("nothing fitted", r"\bnothing (?:is )?(?:to )?fit(?:ted)?\b|\bfits nothing\b|\bnot fitted\b"
                            r"|\bno (?:fitted )?parameters (?:are |to be )?(?:fitted|estimated|learn(?:ed|t))\b"
                            r"|\bno fitting\b"
                            r"|(?:\b(?:is|are|was|as)|['’]s)\s+(?:an?\s+)?(?:purely\s+|simple\s+)?rule[\s-]based\b")
FULL_PERIOD = ("full period", r"\bfull[\s-](?:period|window|history)\b|\b(?:entire|whole) (?:period|window|history)\b"
                              r"|\ball of the (?:data|window|history)\b")
NEXT_BAR = ("next bar", r"\bnext (?:bar|day|session|open)\b|\b(?:bar|day|session) after\b"
                        r"|\bfollowing (?:bar|day|session)\b|\bone bar later\b")
BLACK_SCHOLES = ("Black-Scholes", SOURCE_TERMS["black-scholes"])
REALISED_VOL = ("realised volatility", r"\breali[sz]ed vol(?:atility)?\b|\bhistorical vol(?:atility)?\b")
COSTS = ("fees and slippage", r"\bfees?\b|\bslippage\b|\b(?:transaction|trading) costs?\b|\bcommissions?\b")
FACTS: dict[str, str] = dict([SPLIT, OUT_OF_SAMPLE, CHRONOLOGICAL, NO_SPLIT, NO_FIT, FULL_PERIOD, NEXT_BAR,
                              BLACK_SCHOLES, REALISED_VOL, COSTS])
_NEGATED_INSIDE = {NO_SPLIT[0], NO_FIT[0]}  # facts whose pattern is itself a negation: matched as written

# Facts that contradict the registry, by model kind.
WRONG_FOR_KIND: dict[str, set[str]] = {
    "rule": {SPLIT[0], OUT_OF_SAMPLE[0], CHRONOLOGICAL[0]},
    "ml": {NO_SPLIT[0], NO_FIT[0], FULL_PERIOD[0]},
}
CONTRADICTIONS = ("split_claim_on_rule_model", "no_split_on_ml_model", "data_source_foreign_terms")
SUSPECT_ISSUES = ("unknown_model", *CONTRADICTIONS, "data_source_missing_terms")
_KIND_ISSUE = {"rule": "split_claim_on_rule_model", "ml": "no_split_on_ml_model"}

_NEGATION = re.compile(r"\b(?:no|not|without|nothing|never|neither|nor|none|\w+n['’]t|instead of|rather than)\b",
                       re.IGNORECASE)
_CONTRAST = re.compile(r"\b(?:unlike|whereas|while|as opposed to|in contrast (?:to|with)|compared (?:to|with))\b",
                       re.IGNORECASE)
# Where a clause ends: after a sentence's or clause's punctuation, or before a conjunction that starts one.
_CLAUSE_END = re.compile(r"[.!?;:](?:\s|$)|(?=\b(?:but|only|while|whereas|yet)\b)", re.IGNORECASE)
_RELATIVE = re.compile(r",\s*(?:which|that|who)\b[^,]*", re.IGNORECASE)  # "unlike X, which is ..., Y ..."
_LIST_OR = re.compile(r"\b(?:or|nor)\s*$", re.IGNORECASE)
_NEGATED_AFTER = re.compile(r"(?:\s+(?!and\b|or\b)\w+){0,2}?\s+(?:(?:is|are|was|were)\s+(?:not|never)\b"
                            r"|(?:isn|aren|wasn|weren)['’]t\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One issue (from SUSPECT_ISSUES) with the words that raised it."""

    issue: str
    detail: str


def _window(cfg: dict | None) -> int:
    return (cfg or config.defaults("claims"))["negation_window"]


def _cancelled(clause: str, after: str, window: int) -> bool:
    """Whether the clause before a fact (`clause`) or the text right after it (`after`) cancels it."""
    if (contrast := list(_CONTRAST.finditer(clause))) and "," not in _RELATIVE.sub("", clause[contrast[-1].end():]):
        return True
    if not window:
        return False
    before = clause if _LIST_OR.search(clause) else " ".join(clause.split()[-window:])
    return bool(_NEGATION.search(before) or _NEGATED_AFTER.match(after))


def affirmed(text: str, pattern: str, cfg: dict | None = None) -> bool:
    """True if `pattern` occurs at least once affirmed in its clause (module docstring), negations read
    within the `claims` config's negation_window (the schema's default without `cfg`; 0 ignores them).

    The self-negating facts (NO_SPLIT, NO_FIT) other than `pattern` are blanked first: the "nothing" of
    "nothing to fit" is part of a claim, not a negation of the next clause ("nothing to fit, full-period
    backtest").
    """
    window = _window(cfg)
    for name in _NEGATED_INSIDE:
        if FACTS[name] != pattern:
            text = re.sub(FACTS[name], lambda m: " " * len(m.group()), text, flags=re.IGNORECASE)
    for m in re.finditer(pattern, text, re.IGNORECASE):
        before = text[: m.start()]
        ends = list(_CLAUSE_END.finditer(before))
        after = _CLAUSE_END.split(text[m.end():], maxsplit=1)[0]
        if not _cancelled(before[ends[-1].end():] if ends else before, after, window):
            return True
    return False


def stated_facts(text: str, cfg: dict | None = None) -> set[str]:
    """Names of the FACTS the text affirms."""
    return {name for name, pattern in FACTS.items() if affirmed(text, pattern, cfg)}


def source_terms(text: str, cfg: dict | None = None) -> set[str]:
    """Names of the SOURCE_TERMS the text affirms ("close prices, not volume" names close only)."""
    return {term for term, pattern in SOURCE_TERMS.items() if affirmed(text, pattern, cfg)}


def registry_sources(spec: ModelSpec) -> set[str]:
    """The data-source terms the registry lists for a model: what a data_source answer must name."""
    return source_terms(spec.data_source)


def contradictions(text: str, spec: ModelSpec, category: str, cfg: dict | None = None) -> list[Finding]:
    """Statements in the text that the registry says are false for this model (CONTRADICTIONS);
    `cfg` is the `claims` config section."""
    found = []
    if wrong := sorted(stated_facts(text, cfg) & WRONG_FOR_KIND.get(spec.kind, set())):
        found.append(Finding(_KIND_ISSUE[spec.kind], f"{spec.id} is {spec.kind}-based but the text states: "
                                                      f"{', '.join(wrong)}"))
    if category == "data_source":
        if foreign := sorted(source_terms(text, cfg) - registry_sources(spec)):
            found.append(Finding("data_source_foreign_terms", f"{spec.id} does not use: {', '.join(foreign)}"))
    return found


def suspect_gold(text: str, model_id: str, category: str, cfg: dict | None = None) -> list[Finding]:
    """Every SUSPECT_ISSUES finding for one gold answer (the diagnostics' view of the same rules)."""
    spec = MODELS.get(model_id)
    if spec is None:
        return [Finding("unknown_model", str(model_id))]
    found = contradictions(text, spec, category, cfg)
    if category == "data_source":
        if missing := sorted(registry_sources(spec) - source_terms(text, cfg)):
            found.append(Finding("data_source_missing_terms", f"{spec.id} uses: {', '.join(missing)}"))
    return found


def named_entities(text: str, tickers: bool = True) -> set[str]:
    """Registry model ids (named by name, id, or id with spaces) and, if `tickers`, tickers the text names."""
    names = {m.id for m in MODELS.values()
             if any(re.search(rf"(?i)\b{re.escape(n)}\b", text) for n in (m.name, m.id, m.id.replace("_", " ")))}
    return names | ({t for t in TICKERS if re.search(rf"\b{t}\b", text)} if tickers else set())
