"""Requests in plain words: latent governance facts -> English requests, text -> hashed n-gram ids.

The governance components learn from requests as people write them. A request has latent **facts**
(personal data and its kind, consent, automation, a protected attribute, an audit trail, an explanation,
human oversight, risk and harm levels, a domain); :func:`compose` writes each row of facts as a sentence
from phrase banks (many synonyms per fact, negations such as "without asking them", optional clauses,
typos) in one of several **template families** (word order, ticket style, questions, passive voice).
Families listed in :data:`HELD_OUT_FAMILIES` are never used for training: evaluation uses them to measure
generalisation to wordings the model has not seen.

Silence means the default: no consent, no audit trail, no explanation, a human reviewer available, not
automated, low risk, negligible harm. :func:`featurize` turns text into hashed word uni/bi-grams and
character 4-grams (fastText-style buckets; a stable CRC32 hash, so nothing is downloaded or trained for
the tokenizer and a typo still shares some of its 4-grams with the word it misspells).
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence

import numpy as np

Columns = dict[str, np.ndarray]

# ---------------------------------------------------------------- facts

RISK_FLAGS = ("contains_pii", "protected_attribute_used", "automated")  # True is the more restrictive reading
SAFETY_FLAGS = ("consent", "has_audit_trail", "explanation_provided", "human_oversight_available")
SAFETY_DEFAULT = {"consent": False, "has_audit_trail": False, "explanation_provided": False,
                  "human_oversight_available": True}
HARM_LEVELS = ("negligible", "moderate", "serious", "severe")
HARM_SCORES = np.array([0.1, 0.4, 0.6, 0.85])  # the harm_score the constitution sees for each level
DOMAINS = ("general", "healthcare", "finance", "hiring", "content-moderation", "security")
STATES = ("silent", "affirmed", "denied")  # what the text says about a safety fact
FACT_GROUPS = (1,) * len(RISK_FLAGS) + (3,) * len(SAFETY_FLAGS) + (4, 4)  # binaries, tri-states, risk, harm
FACT_WIDTH = sum(FACT_GROUPS)

# ---------------------------------------------------------------- phrase banks

PII_PHRASES: dict[str, tuple[str, ...]] = {
    "healthcare": ("the patients' medical records", "patient health histories", "diagnosis notes for every patient",
                   "clinical records of our patients", "the lab results of each patient",
                   "prescription histories of patients"),
    "finance": ("customers' bank account details", "each customer's transaction history",
                "credit card numbers of our clients", "the account balances of our customers",
                "loan applicants' income statements", "customers' credit scores"),
    "hiring": ("applicants' CVs and home addresses", "employee personnel files", "candidates' interview notes",
               "employee salary records", "staff performance reviews", "the references of job applicants"),
    "general": ("customer data", "users' email addresses and phone numbers", "home addresses of our users",
                "the customer contact list", "personal details of our members", "users' dates of birth",
                "social security numbers of our staff", "passport numbers of travellers", "the children's profiles",
                "face scans of visitors", "voice recordings of callers", "genetic test results of participants"),
    "content-moderation": ("users' private messages", "the chat logs of our users", "users' uploaded photos",
                           "profile data of flagged accounts", "the direct messages of reported users",
                           "users' browsing histories"),
    "security": ("employees' badge access records", "visitor ID scans", "the location history of our drivers",
                 "fingerprint data of staff", "CCTV footage showing employees", "users' login IP addresses"),
}
PLAIN_PHRASES: dict[str, tuple[str, ...]] = {
    "healthcare": ("aggregate bed occupancy figures", "the hospital's supply inventory",
                   "anonymised ward statistics", "the clinic's opening hours"),
    "finance": ("the quarterly revenue totals", "aggregate spending by region", "the public interest rate table",
                "the budget forecast"),
    "hiring": ("the open job descriptions", "the number of open positions", "the interview schedule template",
               "our careers page text"),
    "general": ("the public product catalogue", "aggregate sales figures", "the quarterly marketing plan",
                "anonymised usage statistics", "the office holiday calendar", "the team newsletter draft",
                "the meeting notes template", "the press kit", "the style guide", "the project timeline",
                "the slide deck for the offsite", "the FAQ page", "the translation of the user manual",
                "the expense report template", "the list of supported browsers", "the recipe for the team lunch"),
    "content-moderation": ("the community guidelines", "aggregate report counts", "the moderation queue totals",
                           "the list of banned keywords"),
    "security": ("the firewall configuration", "server CPU metrics", "the patch schedule",
                 "the open-source license list"),
}
VERBS = ("send", "export", "share", "copy", "upload", "transfer", "give", "forward", "sell", "publish", "move",
         "hand over", "analyse", "process", "merge", "use", "review", "access", "summarise", "draft", "format",
         "translate", "update", "compile", "tidy up", "print")
VERBS_PAST = ("sent", "exported", "shared", "copied", "uploaded", "transferred", "given", "forwarded", "sold",
              "published", "moved", "handed over", "analysed", "processed", "merged", "used", "reviewed",
              "accessed", "summarised", "drafted", "formatted", "translated", "updated", "compiled", "tidied up",
              "printed")
DESTINATIONS = ("to a partner", "to an external vendor", "for an internal report", "to our cloud analytics service",
                "for a research study", "for a marketing campaign", "to the insurance company", "to the board",
                "to a contractor", "for the audit team", "to a data broker", "for model training", "")
OPENERS = ("", "please", "I need to", "we want to", "our team plans to", "can you", "I'd like to",
           "the analytics group wants to", "marketing asks us to", "let's", "we have to", "management wants us to")
CONSENT_YES = ("with their consent", "since they opted in", "as the customers agreed to it",
               "with signed consent forms", "because everyone involved consented", "after getting their permission")
CONSENT_NO = ("without consent", "without asking them", "although they never agreed", "even though they opted out",
              "without telling them", "without their permission")
AUTOMATED_YES = ("automatically", "with an automated script", "and let the model decide",
                 "through a nightly batch job", "using an algorithm with no manual step", "by an automated pipeline",
                 "and let the algorithm make the final call", "with automatic rejections", "fully automatically",
                 "with the bot deciding on its own")
MANUAL = ("by hand", "manually", "with a person doing each step")
EXPLAIN_YES = ("and explain each decision to the people affected", "and give everyone a written reason",
               "with an explanation sent to each person", "and tell people why")
EXPLAIN_NO = ("without telling people why", "and give no explanation", "with no reasons given",
              "without explaining the outcome", "and just tell them no", "with only a one-word answer",
              "and never explain the result")
PROTECTED = ("based on their age", "using their gender", "filtering by ethnicity", "ranking people by disability",
             "taking religion into account", "by nationality", "based on pregnancy status",
             "using sexual orientation", "leaving out older applicants", "preferring men", "excluding immigrants",
             "screening out people with disabilities", "by race", "using postcode as a proxy for ethnicity",
             "rejecting pregnant candidates", "excluding wheelchair users")
AUDIT_YES = ("with every access logged", "keeping an audit trail", "and record it in the audit log",
             "with full logging")
AUDIT_NO = ("without keeping logs", "off the record", "and don't log it", "with logging switched off",
            "and wipe the logs afterwards", "and delete the audit records", "so nobody needs to know",
            "keeping it quiet")
OVERSIGHT_YES = ("a manager reviews the result", "with human review", "and a reviewer signs off",
                 "with a person checking the output")
OVERSIGHT_NO = ("no one will review it", "with no human in the loop", "and nobody is available to check it",
                "without any human review", "skipping the sign-off", "without testing it first",
                "bypassing the approval step")
RISK_WORDS: tuple[tuple[str, ...], ...] = (
    ("", "it is routine", "a low-stakes task", "just a minor change"),
    ("it is moderately sensitive", "a medium-risk task", "it affects a few teams", "it has some business impact"),
    ("it is high-risk", "it affects people's jobs", "a large-scale change", "it decides who gets a loan",
     "it decides who gets hired", "it affects patients' treatment", "it moves large sums of money"),
    ("it is safety-critical", "it controls the power grid", "it runs on medical devices", "a critical system",
     "it touches life-support equipment", "it changes the factory's safety controls", "it affects aircraft systems",
     "it changes emergency services software", "it changes the alarm systems", "it touches medical implants",
     "it controls vehicle brakes", "it runs the chemical plant", "it is a hotfix to production safety systems",
     "it affects railway signals"),
)
HARM_WORDS: tuple[tuple[str, ...], ...] = (
    ("", "harmless", "no one can be hurt by it"),
    ("it could cause some inconvenience", "a little disruption is possible", "minor harm is possible"),
    ("it could cause financial loss", "it could seriously hurt people", "real damage is possible"),
    ("it could cause severe harm", "it could endanger lives", "people could be badly injured",
     "someone could die", "it hides a safety defect", "it puts the public in danger"),
)
SCENARIO_WORDS = {d: d.replace("-", " ") for d in DOMAINS}

# Everyday words that carry no governance facts: neutral clauses and objects made of them teach the model that
# the words around the facts do not decide (so a request full of words it has not seen is read as silent).
NEUTRAL_VERBS = ("draft", "write", "rewrite", "edit", "check", "fix", "update", "plan", "book", "order", "clean up",
                 "reorganise", "rename", "sort", "list", "count", "compare", "estimate", "design", "sketch", "outline",
                 "brainstorm", "prepare", "finish", "start", "test", "build", "improve", "shorten", "illustrate",
                 "schedule", "announce", "describe", "explain", "document", "archive", "print", "bookmark", "tag",
                 "label")
NEUTRAL_NOUNS = ("agenda", "newsletter", "logo", "banner", "poster", "invitation", "menu", "calendar", "roadmap",
                 "checklist", "handbook", "guide", "tutorial", "diagram", "chart", "graph", "spreadsheet", "table",
                 "template", "draft", "summary", "abstract", "headline", "caption", "slogan", "brochure", "flyer",
                 "website", "homepage", "footer", "font", "colour scheme", "layout", "icon", "button", "form",
                 "survey questions", "quiz", "puzzle", "game", "playlist", "podcast", "video", "photo album",
                 "mood board", "whiteboard", "sticky notes", "meeting room", "kitchen", "parking plan", "office plants",
                 "coffee machine", "printer", "laptop", "monitor", "keyboard", "software licence", "code comments",
                 "unit tests", "build script", "changelog", "release notes", "wiki page", "blog post", "press release",
                 "announcement", "speech", "toast", "birthday card", "thank-you note", "holiday schedule",
                 "training course", "workshop", "webinar", "conference booth", "trade show", "product sample",
                 "packaging", "shipping label", "inventory count", "supplier list", "price list", "catalogue",
                 "warranty text", "user manual", "glossary", "style sheet", "font size", "spelling", "grammar",
                 "translation", "subtitle", "map", "route", "timetable", "budget", "forecast", "weather report",
                 "recipe", "team lunch", "office party", "charity event", "volunteer day", "sports day", "trophy")
NEUTRAL_ADJECTIVES = ("new", "old", "weekly", "monthly", "annual", "short", "long", "simple", "shared", "internal",
                      "public", "draft", "final", "updated", "blue", "green", "seasonal", "quarterly", "printed",
                      "digital", "small", "big", "next", "last", "team", "company", "spring", "summer", "autumn")
NEUTRAL_PREPOSITIONS = ("for", "about", "with", "on", "before", "after", "from", "near", "under")


NEUTRAL_TAILS = ("so they can plan ahead", "for their next meeting", "before they leave for the holidays",
                 "so their team can see it", "and send it to them by Friday", "so people know where to find it",
                 "for the staff who asked about it", "so that everyone can use it", "for their managers", "")


def neutral_object(rng: np.random.Generator, n: int) -> np.ndarray:
    """Objects made of everyday words ("the weekly team newsletter")."""
    adjective = _pick(rng, NEUTRAL_ADJECTIVES, n)
    noun = _pick(rng, NEUTRAL_NOUNS, n)
    return np.array([f"the {a} {b}" for a, b in zip(adjective, noun, strict=True)], dtype=object)


def neutral_clause(rng: np.random.Generator, n: int) -> np.ndarray:
    """Clauses made of everyday words ("and update the short agenda for the office party")."""
    verb = _pick(rng, NEUTRAL_VERBS, n)
    obj = neutral_object(rng, n)
    prep = _pick(rng, NEUTRAL_PREPOSITIONS, n)
    other = _pick(rng, NEUTRAL_NOUNS, n)
    tail = _pick(rng, NEUTRAL_TAILS, n)
    return np.array([_join(f"and {v} {o} {p} the {x}", t) for v, o, p, x, t in zip(verb, obj, prep, other, tail,
                                                                                    strict=True)], dtype=object)


FAMILIES = 10
HELD_OUT_FAMILIES = (8, 9)
TRAIN_FAMILIES = tuple(f for f in range(FAMILIES) if f not in HELD_OUT_FAMILIES)
TYPO_SHARE = 0.08
NOISE_SHARE = 0.3  # share of requests that also carry made-up words (topics, names, jargon)
CHATTY_SHARE = 0.4  # share of requests that also ask for something everyday (a neutral clause)
SILENT_SHARE = 0.4  # how often a fact at its default value is not mentioned at all


def _pick(rng: np.random.Generator, bank: Sequence[str], n: int) -> np.ndarray:
    return np.asarray(bank, dtype=object)[rng.integers(0, len(bank), n)]


def safety_states(rng: np.random.Generator, cols: Columns) -> dict[str, np.ndarray]:
    """What the text says about each safety fact: 0 silent, 1 affirmed, 2 denied (silence = the default)."""
    out: dict[str, np.ndarray] = {}
    n = cols["risk"].shape[0]
    for flag in SAFETY_FLAGS:
        value = cols[flag]
        default = SAFETY_DEFAULT[flag]
        mention = rng.random(n) >= SILENT_SHARE
        state = np.where(value, 1, 2)
        out[flag] = np.where((value == default) & ~mention, 0, state).astype(np.int64)
    return out


def compose(cols: Columns, rng: np.random.Generator, families: Sequence[int] = TRAIN_FAMILIES) -> tuple[
        np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """English requests for fact columns (``contains_pii``, the safety flags, ``protected_attribute_used``,
    ``automated``, ``risk``, ``harm_level``, ``domain``): (texts, family per row, safety states)."""
    n = cols["risk"].shape[0]
    states = safety_states(rng, cols)
    family = np.asarray(families)[rng.integers(0, len(families), n)]
    domain = cols["domain"]
    data = np.empty(n, dtype=object)
    for d, name in enumerate(DOMAINS):
        at = domain == d
        pii, plain = at & cols["contains_pii"], at & ~cols["contains_pii"]
        data[pii] = _pick(rng, PII_PHRASES[name], int(pii.sum()))
        k = int(plain.sum())
        data[plain] = np.where(rng.random(k) < 0.5, _pick(rng, PLAIN_PHRASES[name], k), neutral_object(rng, k))
    verb_index = rng.integers(0, len(VERBS), n)
    verb = np.asarray(VERBS, dtype=object)[verb_index]
    verb_past = np.asarray(VERBS_PAST, dtype=object)[verb_index]
    empty = np.full(n, "", dtype=object)

    def clause(yes: Sequence[str], no: Sequence[str], state: np.ndarray) -> np.ndarray:
        out = empty.copy()
        out[state == 1] = _pick(rng, yes, int((state == 1).sum()))
        out[state == 2] = _pick(rng, no, int((state == 2).sum()))
        return out

    consent = clause(CONSENT_YES, CONSENT_NO, states["consent"])
    audit = clause(AUDIT_YES, AUDIT_NO, states["has_audit_trail"])
    explain = clause(EXPLAIN_YES, EXPLAIN_NO, states["explanation_provided"])
    oversight = clause(OVERSIGHT_YES, OVERSIGHT_NO, states["human_oversight_available"])
    manual = np.where(rng.random(n) < 0.3, _pick(rng, MANUAL, n), empty)
    automated = np.where(cols["automated"], _pick(rng, AUTOMATED_YES, n), manual)
    protected = np.where(cols["protected_attribute_used"], _pick(rng, PROTECTED, n), empty)
    risk = np.empty(n, dtype=object)
    harm = np.empty(n, dtype=object)
    for level in range(4):
        at = cols["risk"] == level
        risk[at] = _pick(rng, RISK_WORDS[level], int(at.sum()))
        at = cols["harm_level"] == level
        harm[at] = _pick(rng, HARM_WORDS[level], int(at.sum()))
    opener = _pick(rng, OPENERS, n)
    dest = _pick(rng, DESTINATIONS, n)
    scenario = np.asarray([SCENARIO_WORDS[d] for d in DOMAINS], dtype=object)[domain]
    rows = zip(family.tolist(), opener, verb, verb_past, data, dest, consent, automated, protected, audit, explain,
               oversight, risk, harm, scenario, strict=True)
    texts = np.array([_render(*row) for row in rows], dtype=object)
    noisy = np.flatnonzero(rng.random(n) < NOISE_SHARE)
    counts = rng.integers(1, 6, noisy.shape[0])
    front = rng.random(noisy.shape[0]) < 0.5
    made_up = pseudo_words(rng, int(counts.sum())).tolist()
    ends = np.cumsum(counts).tolist()
    for i, end, k, f in zip(noisy.tolist(), ends, counts.tolist(), front.tolist(), strict=True):
        words = " ".join(made_up[end - k : end])
        texts[i] = f"{words.capitalize()}: {texts[i]}" if f else f"{texts[i]} ({words})"
    chatty = np.flatnonzero(rng.random(n) < CHATTY_SHARE)
    for i, extra in zip(chatty.tolist(), neutral_clause(rng, chatty.shape[0]), strict=True):
        texts[i] = f"{texts[i]} Also {extra[4:]}."
    typo = np.flatnonzero(rng.random(n) < TYPO_SHARE)
    seeds = rng.integers(0, 2**31, typo.shape[0])
    for i, s in zip(typo.tolist(), seeds.tolist(), strict=True):
        texts[i] = add_typo(texts[i], s)
    return texts, family, states


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _sentence(*parts: str) -> str:
    text = _join(*parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def _render(family: int, opener: str, verb: str, verb_past: str, data: str, dest: str, consent: str, automated: str,
            protected: str, audit: str, explain: str, oversight: str, risk: str, harm: str, scenario: str) -> str:
    """One request in template family ``family`` (0-7 train, 8-9 held out)."""
    if family == 0:  # imperative, everything in one sentence
        return _sentence(opener, verb, data, dest, consent, automated, protected, audit, explain, oversight) + (
            " " + _sentence(risk, harm) if risk or harm else "")
    if family == 1:  # context first
        return _join(_sentence(risk), _sentence(harm), _sentence(opener, verb, data, dest, protected),
                     _sentence(consent, automated, audit), _sentence(explain, oversight))
    if family == 2:  # a question
        return _join(_sentence(risk), (_join("can we", verb, data, dest, automated, consent, protected, audit,
                                             explain, oversight) + "?").capitalize(), _sentence(harm))
    if family == 3:  # ticket style
        return _join(f"Request: {verb} {data} {dest}.".replace(" .", "."), _sentence("details:", consent, automated,
                     protected), _sentence(audit, explain, oversight), _sentence("impact:", risk, harm))
    if family == 4:  # passive
        return _sentence(data, "will be", verb_past, dest, automated, consent, protected, audit, explain,
                         oversight) + (" " + _sentence(risk, harm) if risk or harm else "")
    if family == 5:  # terse
        return _join(verb, data, dest, consent, automated, protected, audit, explain, oversight, risk, harm)
    if family == 6:  # scenario framing
        return _join(_sentence("in our", scenario, "work", opener, verb, data, dest),
                     _sentence(protected, consent, automated), _sentence(oversight, explain, audit),
                     _sentence(harm, risk))
    if family == 7:  # polite, clauses last
        return _join(_sentence("hi, could you help", opener, verb, data, dest), _sentence(risk),
                     _sentence(consent, protected, automated, audit, explain, oversight, harm))
    if family == 8:  # held out: a plan in the first person, clauses in another order
        return _join(_sentence("my plan is to", verb, data, dest), _sentence(oversight, audit),
                     _sentence(protected, automated, consent, explain), _sentence(harm, risk))
    # held out: a reported request
    return _join(_sentence("someone asked whether we can", verb, data, dest, protected),
                 _sentence("this would happen", automated, explain, consent),
                 _sentence(audit, oversight, risk, harm))


_CONSONANTS = np.array(list("bcdfghklmnprstvwz"))
_VOWELS = np.array(list("aeiou"))


def pseudo_words(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` made-up words (2-4 consonant-vowel syllables and a final consonant): the words a request has
    besides its governance facts (names, topics, jargon), so the model learns that words it has never seen
    carry no facts."""
    syllables = (_CONSONANTS[rng.integers(0, len(_CONSONANTS), (n, 3))].astype(object)
                 + _VOWELS[rng.integers(0, len(_VOWELS), (n, 3))].astype(object))
    length = rng.integers(1, 4, n)
    final = _CONSONANTS[rng.integers(0, len(_CONSONANTS), n)].tolist()
    return np.array(["".join(row[:k]) + f for row, k, f in zip(syllables.tolist(), length.tolist(), final,
                                                                strict=True)], dtype=object)


def add_typo(text: str, seed: int) -> str:
    """``text`` with two adjacent letters of one word (4+ letters) swapped."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    rng = np.random.default_rng(seed)
    i = candidates[int(rng.integers(0, len(candidates)))]
    w = words[i]
    j = int(rng.integers(0, len(w) - 1))
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


# ---------------------------------------------------------------- hashed n-grams

BUCKETS = 1 << 15
MAX_NGRAMS = 256
_WORD = re.compile(r"[a-z0-9']+")


def _bucket(token: str) -> int:
    return 1 + zlib.crc32(token.encode()) % (BUCKETS - 1)  # 0 is padding


def ngram_ids(text: str, extra: Sequence[str] = ()) -> list[int]:
    """Hashed ids of ``extra`` tokens and ``text``'s words, word bigrams and character 4-grams (at most
    :data:`MAX_NGRAMS`)."""
    words = _WORD.findall(text.lower())
    grams: list[str] = list(extra)  # first: a long text must not push the structured context out
    grams += [f"w:{w}" for w in words]
    grams += [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    for w in words:
        padded = f"<{w}>"
        grams += [f"c:{padded[i : i + 4]}" for i in range(len(padded) - 3)]
    return [_bucket(g) for g in grams[:MAX_NGRAMS]]


def featurize(texts: Sequence[str], extras: Sequence[Sequence[str]] | None = None, length: int = MAX_NGRAMS
              ) -> np.ndarray:
    """Hashed n-gram ids [n, length] (0-padded) for texts; ``extras[i]`` are structured tokens of row i."""
    out = np.zeros((len(texts), length), dtype=np.int64)
    for i, text in enumerate(texts):
        ids = ngram_ids(text, extras[i] if extras is not None else ())[:length]
        out[i, : len(ids)] = ids
    return out


# ---------------------------------------------------------------- facts as targets and as readings

def fact_targets(cols: Columns, states: dict[str, np.ndarray]) -> np.ndarray:
    """The fact head's targets per row: [binaries (3), safety states (4), risk, harm level] as int64."""
    parts = [cols[f].astype(np.int64) for f in RISK_FLAGS] + [states[f] for f in SAFETY_FLAGS]
    parts += [cols["risk"].astype(np.int64), cols["harm_level"].astype(np.int64)]
    return np.stack(parts, axis=1)


def read_facts(fact_logits: np.ndarray) -> Columns:
    """Facts read from the fact head's logits [n, FACT_WIDTH]: flags (silence = default), safety states, risk
    and harm levels."""
    k = len(RISK_FLAGS)
    out: Columns = {f: fact_logits[:, j] > 0.0 for j, f in enumerate(RISK_FLAGS)}
    for j, flag in enumerate(SAFETY_FLAGS):
        state = fact_logits[:, k + 3 * j : k + 3 * j + 3].argmax(axis=1)
        out[f"{flag}_state"] = state
        out[flag] = np.where(state == 0, SAFETY_DEFAULT[flag], state == 1)
    base = k + 3 * len(SAFETY_FLAGS)
    out["risk"] = fact_logits[:, base : base + 4].argmax(axis=1).astype(np.int64)
    out["harm_level"] = fact_logits[:, base + 4 : base + 8].argmax(axis=1).astype(np.int64)
    return out


def restrictive_merge(client: Columns, supplied: dict[str, np.ndarray], read: Columns) -> Columns:
    """The facts the guard judges: for each fact the more restrictive of what the client supplied and what the
    text says. Risk flags: either says so. Safety flags: the text's explicit word wins when it denies, the
    client's value stands when the text is silent or affirms (a client cannot assert consent the text denies,
    and a text that affirms consent the client denies stays denied). Risk and harm: the higher level."""
    out: Columns = {}
    for flag in RISK_FLAGS:
        out[flag] = client[flag] | read[flag]
    for flag in SAFETY_FLAGS:
        state = read[f"{flag}_state"]
        given = supplied[flag]
        from_text = np.where(state == 0, SAFETY_DEFAULT[flag], state == 1)
        out[flag] = np.where(state == 2, False, np.where(given, client[flag], from_text))
    out["risk"] = np.maximum(client["risk"], read["risk"]).astype(np.int64)
    harm_level = np.maximum(harm_level_of(client["harm_score"]), read["harm_level"])
    out["harm_level"] = harm_level
    out["harm_score"] = np.maximum(client["harm_score"], HARM_SCORES[harm_level])
    return out


def harm_level_of(score: np.ndarray) -> np.ndarray:
    """The harm level of a harm score: negligible < 0.3 <= moderate < 0.55 <= serious < 0.7 <= severe."""
    return np.searchsorted(np.array([0.3, 0.55, 0.7]), np.asarray(score, dtype=np.float64), side="right").astype(
        np.int64)
