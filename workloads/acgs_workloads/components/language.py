"""Requests in plain words: latent governance facts -> English requests, text -> hashed n-gram ids.

The governance components learn from requests as people write them. A request has latent **facts**
(personal data and its kind, consent, automation, a protected attribute, an audit trail, an explanation,
human oversight, risk and harm levels, a domain); :func:`compose` writes each row of facts as a sentence
from phrase banks (many synonyms per fact, negations such as "without asking them", optional clauses,
typos) in one of several **template families** (word order, ticket style, questions, passive voice).
Families listed in :data:`HELD_OUT_FAMILIES` are never used for training: evaluation uses them to measure
generalisation to wordings the model has not seen.

Real requests are often short, so :func:`quiet_rows` marks brief requests (few facts, no extra words) and
everyday ones (no facts: :func:`everyday_requests`); a change request names the system it changes, and
:data:`SYSTEMS` says how risky that is. Personal data and protected attributes are also composed word by word
(:func:`personal_data`, :data:`PROTECTED_FRAMES` x :data:`PROTECTED_ATTRIBUTES`), and :data:`NEUTRAL_TAILS`
holds decoys: the words facts use ("based on", "with their", "people") in clauses that state none.

Silence means the default: no consent, no audit trail, no explanation, a human reviewer available, not
automated, low risk, negligible harm. :func:`featurize` turns text into hashed word uni/bi-grams and
character 4-grams (fastText-style buckets; a stable CRC32 hash, so nothing is downloaded or trained for
the tokenizer and a typo still shares some of its 4-grams with the word it misspells).
"""

from __future__ import annotations

import functools
import itertools
import re
import zlib
from collections.abc import Callable, Sequence

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
                "face scans of visitors", "voice recordings of callers", "genetic test results of participants",
                # special categories and other sensitive kinds, named the way people name them
                "employees' medical diagnoses", "HIV test results of our clients", "staff mental health records",
                "therapy session notes", "pregnancy test results", "vaccination records of employees",
                "criminal records of applicants", "the immigration status of our workers",
                "members' political opinions", "religious beliefs of employees", "the union membership list",
                "the children's photos and birthdates", "employees' private emails", "staff's private chat messages",
                "precise GPS locations of our users", "users' phone contact lists", "iris scans of employees",
                "employees' sick-leave records", "the disciplinary records of staff", "customers' credit reports",
                "our clients' tax returns", "students' grades and home addresses", "the names and numbers of callers",
                "patients' addiction treatment records", "drivers' licence scans", "tenants' rent arrears history",
                "the sexual orientation field of user profiles", "people's search histories",
                "the kids' in-app activity", "home CCTV recordings of customers", "customers' purchase histories",
                "employees' keystrokes and screenshots", "webcam footage of remote staff", "staff's personal phones",
                "the data of users who deleted their accounts", "employees' facial expressions on video calls",
                "drivers' telematics and home locations", "voters' profiles", "the whistleblower's identity"),
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
                "the expense report template", "the list of supported browsers", "the recipe for the team lunch",
                "aggregate website visit counts", "the anonymised survey totals", "the public annual report",
                "our own product roadmap", "the open-source code", "the public job advert", "the server uptime summary",
                "the public holiday calendar", "the API documentation", "the onboarding checklist",
                "the office floor plan", "the sales pitch deck", "the company's published prices"),
    "content-moderation": ("the community guidelines", "aggregate report counts", "the moderation queue totals",
                           "the list of banned keywords"),
    "security": ("the firewall configuration", "server CPU metrics", "the patch schedule",
                 "the open-source license list"),
}
# Personal data as "<whose> <what>": every owner with every kind, so each word says its part ("religion",
# "fingerprints", "patients'") wherever it appears, not only inside the phrases above
DATA_OWNERS = ("patients'", "customers'", "employees'", "users'", "applicants'", "tenants'", "students'", "members'",
               "drivers'", "children's", "callers'", "staff's", "clients'", "riders'", "our users'", "visitors'",
               "borrowers'", "voters'", "job seekers'", "residents'")
DATA_KINDS = ("medical records", "diagnoses", "HIV status", "home addresses", "phone numbers", "bank details",
              "salaries", "fingerprints", "face scans", "private messages", "location history", "GPS traces",
              "sick-leave records", "religion", "criminal records", "convictions", "immigration status",
              "social security numbers", "SSNs", "passport scans", "DNA samples", "credit scores",
              "health insurance claims", "birthdates", "email addresses", "browsing history", "photos",
              "voice recordings", "performance reviews", "disciplinary notes", "names and addresses",
              "ID numbers", "payslips", "therapy notes", "genetic data", "political views", "union membership",
              "sexual orientation", "disability records", "pregnancy status", "card numbers", "contact details",
              "passwords")
PLAIN_QUALIFIERS = ("aggregate", "anonymised", "public", "total", "average", "summarised", "quarterly", "published",
                    "de-identified", "company-wide")
PLAIN_KINDS = ("sales figures", "usage statistics", "website visits", "survey results", "server metrics", "costs",
               "revenue", "ticket counts", "stock levels", "energy use", "download numbers", "error rates",
               "delivery times", "headcount", "budget lines", "traffic numbers")


PERSON_NAMES = ("Maria", "Tom", "Aisha", "Lukas", "Wei", "Priya", "Carlos", "Olga", "Sam", "Noor", "Kofi", "Elena")
DATA_SOURCES = ("from the CRM", "from the HR system", "from the door access system", "from the app", "in the database",
                "from the patient portal", "in the shared drive", "from the payroll tool")


def personal_data(rng: np.random.Generator, n: int) -> np.ndarray:
    """Personal data: "<whose> <what>" ("tenants' convictions"), and, as people also write it, without an
    owner ("the fingerprints from the door access system") or about one person ("the therapy notes for Olga"):
    the kind of data alone says it is personal."""
    kind = _pick(rng, DATA_KINDS, n)
    form = rng.random(n)
    owner, source, person = _pick(rng, DATA_OWNERS, n), _pick(rng, DATA_SOURCES, n), _pick(rng, PERSON_NAMES, n)
    owned, one = form < 0.6, form >= 0.85
    bare = ~owned & ~one
    out = np.empty(n, dtype=object)  # each row written in its form only
    out[owned] = owner[owned] + " " + kind[owned]
    out[bare] = "the " + kind[bare] + " " + source[bare]
    out[one] = "the " + kind[one] + " for " + person[one]
    return out


def plain_data(rng: np.random.Generator, n: int) -> np.ndarray:
    """Data about no one ("the anonymised survey results")."""
    return "the " + _pick(rng, PLAIN_QUALIFIERS, n) + " " + _pick(rng, PLAIN_KINDS, n)


VERBS = ("send", "export", "share", "copy", "upload", "transfer", "give", "forward", "sell", "publish", "move",
         "hand over", "analyse", "process", "merge", "use", "review", "access", "summarise", "draft", "format",
         "translate", "update", "compile", "tidy up", "print")
VERBS_PAST = ("sent", "exported", "shared", "copied", "uploaded", "transferred", "given", "forwarded", "sold",
              "published", "moved", "handed over", "analysed", "processed", "merged", "used", "reviewed",
              "accessed", "summarised", "drafted", "formatted", "translated", "updated", "compiled", "tidied up",
              "printed")
# Where the data goes, and the harm that disclosing people's data there without their consent does by itself
# (a harm level, 0-3): nobody writes "this could seriously hurt people" after "sell their location history to a
# data broker", the act says it. Internal uses are harmless; a processor working for us a little; a third party
# that can act on the data (an employer, an insurer, a debt collector) seriously; the public or a broker severely.
DESTINATION_HARM: tuple[tuple[str, int], ...] = (
    ("to a partner", 2), ("to an external vendor", 2), ("for an internal report", 0),
    ("to our cloud analytics service", 1), ("for a research study", 1), ("for a marketing campaign", 2),
    ("to the insurance company", 2), ("to the board", 0), ("to a contractor", 1), ("for the audit team", 0),
    ("to a data broker", 3), ("for model training", 1), ("", 0),
    ("with their employers", 2), ("to an advertising network", 2), ("to a debt collector", 2),
    ("to the press", 3), ("on a public website", 3), ("to a political campaign", 3),
    ("to a recruitment agency", 2), ("with their landlords", 2), ("to an overseas affiliate", 1),
    ("to the support team", 0), ("for the finance team", 0), ("to our own CRM", 0), ("to the payroll team", 0),
    ("to our backup server", 0),
)
DESTINATIONS = tuple(dest for dest, _ in DESTINATION_HARM)
DISCLOSING_VERBS = frozenset(("send", "export", "share", "copy", "upload", "transfer", "give", "forward", "sell",
                              "publish", "move", "hand over"))  # the others use the data where it is
SELLING_VERBS = frozenset(("sell", "publish"))  # put it beyond recall: one level worse, serious at least
OPENERS = ("", "please", "I need to", "we want to", "our team plans to", "can you", "I'd like to",
           "the analytics group wants to", "marketing asks us to", "let's", "we have to", "management wants us to")
CONSENT_YES = ("with their consent", "since they opted in", "as the customers agreed to it",
               "with signed consent forms", "because everyone involved consented", "after getting their permission",
               "at their own request", "because they signed up for it", "with the parents' written permission",
               "as agreed in their contract", "since they ticked the consent box", "with the explicit opt-in they gave")
CONSENT_NO = ("without consent", "without asking them", "although they never agreed", "even though they opted out",
              "without telling them", "without their permission", "behind their backs", "without notifying anyone",
              "even though they unsubscribed", "without an opt-in", "without the parents' permission",
              "though they never signed up for this", "without a legal basis", "before anyone can object",
              "no need to tell them", "without their knowledge", "secretly", "quietly, so they don't find out",
              "although they asked us to delete it", "after they withdrew their consent",
              "even though they asked to be forgotten", "beyond what they agreed to", "hidden from the people affected",
              "and keep the monitoring hidden from staff")
AUTOMATED_YES = ("automatically", "with an automated script", "and let the model decide",
                 "through a nightly batch job", "using an algorithm with no manual step", "by an automated pipeline",
                 "and let the algorithm make the final call", "with automatic rejections", "fully automatically",
                 "with the bot deciding on its own", "with the AI deciding", "and have the model auto-reject people",
                 "auto-approving or auto-declining each case", "using an automated scoring system",
                 "with the decision made by software")
MANUAL = ("by hand", "manually", "with a person doing each step")
EXPLAIN_YES = ("and explain each decision to the people affected", "and give everyone a written reason",
               "with an explanation sent to each person", "and tell people why")
EXPLAIN_NO = ("without telling people why", "and give no explanation", "with no reasons given",
              "without explaining the outcome", "and just tell them no", "with only a one-word answer",
              "and never explain the result", "with no way to appeal", "and keep the criteria secret",
              "without any explanation")
PROTECTED = ("based on their age", "using their gender", "filtering by ethnicity", "ranking people by disability",
             "taking religion into account", "by nationality", "based on pregnancy status",
             "using sexual orientation", "leaving out older applicants", "preferring men", "excluding immigrants",
             "screening out people with disabilities", "by race", "using postcode as a proxy for ethnicity",
             "rejecting pregnant candidates", "excluding wheelchair users",
             "for people whose names suggest a particular ethnic background", "based on their accent",
             "by the origin of their surname", "favouring younger candidates", "screening out anyone over 50",
             "penalising gaps for maternity leave", "excluding people with foreign-sounding names",
             "based on their religion", "by marital status", "charging women more", "by skin colour",
             "based on caste", "filtering out union members", "by health condition", "excluding single mothers",
             "based on disability status", "steering minorities to worse offers")
PROTECTED_FRAMES = ("based on their", "using their", "filtering by", "ranking people by", "excluding people by",
                    "screening candidates by", "pricing by", "scoring people by", "deciding by",
                    "sorting applicants by", "with different terms by")
PROTECTED_ATTRIBUTES = ("age", "gender", "ethnicity", "race", "religion", "disability", "pregnancy", "nationality",
                        "sexual orientation", "skin colour", "marital status", "caste", "accent", "surname origin",
                        "country of birth", "immigration status", "health condition", "union membership",
                        "family status", "sex", "ethnic-sounding names", "postcode as a proxy for race")
AUDIT_YES = ("with every access logged", "keeping an audit trail", "and record it in the audit log",
             "with full logging", "and log the change", "with a ticket for every step",
             "keeping a record of who did what", "and note it in the change log")
AUDIT_NO = ("without keeping logs", "off the record", "and don't log it", "with logging switched off",
            "and wipe the logs afterwards", "and delete the audit records", "so nobody needs to know",
            "keeping it quiet", "and don't write it down", "and shred the paperwork", "and backdate the records",
            "and edit the logs afterwards", "and purge the access history", "leaving no paper trail",
            "and keep it out of the ticket system", "and falsify the records")
OVERSIGHT_YES = ("a manager reviews the result", "with human review", "and a reviewer signs off",
                 "with a person checking the output", "after a peer review", "once QA signs off",
                 "after the safety team approves", "with a four-eyes check")
OVERSIGHT_NO = ("no one will review it", "with no human in the loop", "and nobody is available to check it",
                "without any human review", "skipping the sign-off", "without testing it first",
                "bypassing the approval step", "skip QA", "no testing", "without a code review",
                "without running the tests", "no need to loop in legal", "bypassing the change board",
                "without telling compliance", "don't wait for approval", "without the safety review",
                "nobody double-checks it", "skipping the pilot", "bypassing the two-person rule",
                "with just me approving", "turning off branch protection", "without a second approver",
                "and grant myself admin access", "recruiters won't look at it", "with no one to appeal to",
                "overriding the safety lockout")
RISK_WORDS: tuple[tuple[str, ...], ...] = (
    ("", "it is routine", "a low-stakes task", "just a minor change"),
    ("it is moderately sensitive", "a medium-risk task", "it affects a few teams", "it has some business impact"),
    ("it is high-risk", "it affects people's jobs", "a large-scale change", "it decides who gets a loan",
     "it decides who gets hired", "it affects patients' treatment", "it moves large sums of money",
     "it sets insurance premiums", "it sets people's credit limits", "it screens tenants", "it grades exams",
     "it decides who gets benefits", "it flags people for fraud"),
    ("it is safety-critical", "it controls the power grid", "it runs on medical devices", "a critical system",
     "it touches life-support equipment", "it changes the factory's safety controls", "it affects aircraft systems",
     "it changes emergency services software", "it changes the alarm systems", "it touches medical implants",
     "it controls vehicle brakes", "it runs the chemical plant", "it is a hotfix to production safety systems",
     "it affects railway signals", "it runs the insulin pumps", "it steers the self-driving cars",
     "it controls the ventilators", "it runs the water treatment plant", "it controls the lifts",
     "it runs the fire alarms", "it doses radiation therapy", "it runs the nuclear plant's cooling"),
)
HARM_WORDS: tuple[tuple[str, ...], ...] = (
    ("", "harmless", "no one can be hurt by it"),
    ("it could cause some inconvenience", "a little disruption is possible", "minor harm is possible"),
    ("it could cause financial loss", "it could seriously hurt people", "real damage is possible",
     "people could lose their jobs", "customers could lose money", "it could wreck people's credit",
     "it could expose people to fraud", "people could be wrongly refused"),
    ("it could cause severe harm", "it could endanger lives", "people could be badly injured",
     "someone could die", "it hides a safety defect", "it puts the public in danger",
     # harmful acts: what they do, not how bad they are
     "hiding the known safety defect", "keeping the failed safety test quiet", "holding back the recall notice",
     "removing the safety warnings from the labels", "marking the failed inspection as passed",
     "falsifying the test results", "ignoring the alarm readings", "skipping the mandatory safety checks",
     "covering up the incident", "leaving the side effects out of the leaflet", "silencing the alarms",
     "backdating the maintenance records", "telling the regulator nothing about the fault",
     "dropping the allergy warnings", "burying the complaint reports", "although people could be hurt",
     # records made false or destroyed, consent nobody gave, access controls gone around: harmful whatever the
     # system, so a request to do them is not a routine request
     "rewriting the temperature logs", "changing the lab readings so they pass", "deleting the incident reports",
     "erasing the CCTV footage", "shredding the inspection reports", "editing the timestamps in the ledger",
     "fabricating the calibration certificates", "signing off checks that never happened",
     "inventing the missing sensor readings", "destroying the evidence before the investigation",
     "scrubbing the audit trail before the auditors come", "doctoring the expense receipts",
     "faking the training attendance sheets", "recording consent nobody gave",
     "ticking the consent box on their behalf", "skipping the access request to get admin rights",
     "sharing the root password with the team", "disabling two-factor login for everyone",
     "giving the contractor full database admin", "turning off the fraud alerts",
     "switching off the security cameras", "hiding the data breach from the people affected"),
)
SCENARIO_WORDS = {d: d.replace("-", " ") for d in DOMAINS}

# Change requests name the system they change; the system says how risky the change is (risk level 0-3), so a
# request to "push a hotfix to the infusion pump firmware" is critical without the words "safety-critical".
SYSTEMS: tuple[tuple[str, ...], ...] = (
    ("the intranet banner", "the blog's colour scheme", "the office wiki theme", "the lunch-order form",
     "the newsletter template", "the staging test data", "the team dashboard layout", "the docs site search box",
     "the meeting room booking page", "the internal style guide"),
    ("the invoicing service", "the internal CRM", "the customer support chatbot", "the warehouse stock tracker",
     "the shared file server", "the payroll export", "the email marketing tool", "the staff rota planner",
     "the order management system", "the customer self-service portal"),
    ("the credit scoring model", "the loan approval rules", "the CV screening filter", "the insurance pricing engine",
     "the fraud detection thresholds", "the patient triage rules", "the benefits eligibility checker",
     "the tenant screening model", "the exam grading algorithm", "the payment gateway", "the bail risk score",
     "the welfare sanctions model"),
    ("the infusion pump firmware", "the pacemaker telemetry module", "the braking control software",
     "the autopilot software", "the insulin pump dosing code", "the ventilator settings",
     "the railway signalling software", "the water treatment plant controls", "the power grid load balancer",
     "the reactor cooling monitors", "the elevator safety controller", "the fire alarm system",
     "the air traffic control displays", "the gas pipeline pressure valves", "the chemical plant's safety interlocks",
     "the airbag deployment logic", "the radiation therapy dose settings", "the mine ventilation monitors",
     "the smoke detectors in the care home", "the dam's floodgate controls", "the anaesthesia machine settings",
     "the self-driving cars' lane-keeping model", "the level-crossing barriers", "the hospital's oxygen supply alarms"),
)
CHANGE_VERBS = ("deploy an update to", "push a hotfix to", "patch", "reconfigure", "roll out a new version of",
                "change", "modify", "replace", "retrain", "switch off", "disable", "recalibrate", "upgrade", "tweak",
                "rewrite", "ship changes to")
CHANGE_VERBS_PAST = ("updated", "hotfixed", "patched", "reconfigured", "replaced by a new version", "changed",
                     "modified", "replaced", "retrained", "switched off", "disabled", "recalibrated", "upgraded",
                     "tweaked", "rewritten", "changed")
CHANGE_WHEN = ("", "", "in production", "tonight", "before the weekend", "across all sites",
               "on every unit in the field", "right away", "during peak hours", "on the live system")
CHANGE_SHARE = np.array([0.15, 0.25, 0.4, 0.55])  # share of requests at each risk level that change a system

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
                 "recipe", "team lunch", "office party", "charity event", "volunteer day", "sports day", "trophy",
                 # safety teaching and planning: safety words, but nothing is changed or put at risk
                 "fire drill", "evacuation plan", "first-aid course", "safety briefing", "safety induction",
                 "fire warden rota", "hand-washing poster", "ladder safety talk", "hi-vis vest order",
                 "emergency contact sheet")
NEUTRAL_ADJECTIVES = ("new", "old", "weekly", "monthly", "annual", "short", "long", "simple", "shared", "internal",
                      "public", "draft", "final", "updated", "blue", "green", "seasonal", "quarterly", "printed",
                      "digital", "small", "big", "next", "last", "team", "company", "spring", "summer", "autumn")
NEUTRAL_PREPOSITIONS = ("for", "about", "with", "on", "before", "after", "from", "near", "under")


NEUTRAL_TAILS = ("so they can plan ahead", "for their next meeting", "before they leave for the holidays",
                 "so their team can see it", "and send it to them by Friday", "so people know where to find it",
                 "for the staff who asked about it", "so that everyone can use it", "for their managers", "",
                 # words that also appear in facts, here saying none ("based on", "with their", "people")
                 "based on last month's totals", "based on current usage", "sorted by region", "filtered by date",
                 "ranked by revenue", "grouped by product line", "broken down by team", "with their managers",
                 "with their own slides", "using their public company names", "using the feedback from the survey",
                 "for 18 people", "for 40 people", "for everyone in the office", "for the people on the rota",
                 "as the client asked", "as requested", "as the manager asked us to", "with the dates agreed",
                 "under budget", "for the new starters", "in plain language", "with owners and due dates",
                 "because someone from the team asked for it", "for someone in accounts", "so someone can check it",
                 "as somebody suggested", "if anyone wants it", "so the public can read it",
                 # checking for unfairness names protected attributes without using them to decide
                 "and check the outcomes for bias across gender and age",
                 "then compare results across ethnic groups to find unfair gaps", "in gender-neutral language",
                 "so nobody is treated differently because of their age",
                 "and flag any gap between men and women for review",
                 "with an accessibility check for disabled readers")


NEUTRAL_ARTICLES = ("the", "the", "a", "our", "my", "this week's", "the next")


def neutral_object(rng: np.random.Generator, n: int) -> np.ndarray:
    """Objects made of everyday words ("the weekly team newsletter", "a poster")."""
    article = _pick(rng, NEUTRAL_ARTICLES, n)
    adjective = np.where(rng.random(n) < 0.6, _pick(rng, NEUTRAL_ADJECTIVES, n), "")
    noun = _pick(rng, NEUTRAL_NOUNS, n)
    return np.array(_join(article.tolist(), adjective.tolist(), noun.tolist()), dtype=object)


def neutral_clause(rng: np.random.Generator, n: int) -> np.ndarray:
    """Clauses made of everyday words ("and update the short agenda for the office party")."""
    verb = _pick(rng, NEUTRAL_VERBS, n)
    obj = neutral_object(rng, n)
    prep = _pick(rng, NEUTRAL_PREPOSITIONS, n)
    other = _pick(rng, NEUTRAL_NOUNS, n)
    tail = _pick(rng, NEUTRAL_TAILS, n)
    clause = [f"and {v} {o} {p} the {x}" for v, o, p, x in zip(verb.tolist(), obj.tolist(), prep.tolist(),
                                                                 other.tolist(), strict=True)]
    return np.array(_join(clause, tail.tolist()), dtype=object)


def everyday_requests(rng: np.random.Generator, n: int) -> np.ndarray:
    """Requests with no governance facts at all, short or long ("Draft a poster for the office party.",
    "can you tidy up our monthly budget pls")."""
    opener = np.where(rng.random(n) < 0.5, _pick(rng, OPENERS, n), "")
    verb = _pick(rng, NEUTRAL_VERBS, n)
    obj = np.where(rng.random(n) < 0.75, neutral_object(rng, n), _pick(rng, PLAIN_PHRASES["general"], n))
    prep = _pick(rng, NEUTRAL_PREPOSITIONS, n)
    other = neutral_object(rng, n)
    with_other = rng.random(n) < 0.5
    tail = np.where(rng.random(n) < 0.3, _pick(rng, NEUTRAL_TAILS, n), "")
    form = rng.integers(0, 4, n)
    rest = np.array(_join(np.where(with_other, prep + " " + other, "").tolist(), tail.tolist()), dtype=object)
    return write_groups(form, {"opener": opener, "verb": verb, "obj": obj, "rest": rest}, _everyday)


def _everyday(form: int, opener: Sequence[str], verb: Sequence[str], obj: Sequence[str], rest: Sequence[str]
              ) -> list[str]:
    """Everyday requests in form ``form``: a sentence, a question, a ticket or a terse note."""
    if form == 0:
        return _sentence(opener, verb, obj, rest)
    if form == 1:
        return [q.capitalize() + "?" for q in _join("can you", verb, obj, rest)]
    if form == 2:
        return [f"Request: {t}." for t in _join(verb, obj, rest)]
    return _join(verb, obj, rest, "pls")


BRIEF_SHARE = 0.3  # drawn brief: most facts at their defaults and unsaid, no extra words (37 % with everyday)
EVERYDAY_SHARE = 0.1  # everyday requests: no governance facts at all (brief too)
BRIEF_RESET = 0.6  # chance that a brief request's fact is put back to its default


def quiet_rows(rng: np.random.Generator, cols: Columns) -> None:
    """Mark brief and everyday rows (``brief``, ``everyday``) and put their facts back to the defaults: an
    everyday request has none, a brief one few. Real requests are often a handful of words; without them the
    model meets short texts only at serving time."""
    n = cols["risk"].shape[0]
    everyday = np.asarray(rng.random(n) < EVERYDAY_SHARE)
    brief = everyday | np.asarray(rng.random(n) < BRIEF_SHARE)
    for flag in (*RISK_FLAGS, *SAFETY_FLAGS):
        keep = flag == "contains_pii"  # a brief request still names the data it is about
        reset = everyday | (brief & (rng.random(n) < BRIEF_RESET) & (not keep))
        cols[flag] = np.where(reset, SAFETY_DEFAULT.get(flag, False), cols[flag])
    for level in ("risk", "harm_level"):
        reset = everyday | (brief & (rng.random(n) < BRIEF_RESET))
        cols[level] = np.where(reset, 0, cols[level]).astype(np.int64)
    cols["brief"], cols["everyday"] = brief, everyday


_DISCLOSES = np.array([verb in DISCLOSING_VERBS for verb in VERBS])
_SELLS = np.array([verb in SELLING_VERBS for verb in VERBS])
_DEST_HARM = np.array([harm for _, harm in DESTINATION_HARM], dtype=np.int64)
ACT_SILENT_SHARE = 0.6  # how often a request whose act implies its harm says nothing more of harm or risk


def implied_harm(verb: np.ndarray, dest: np.ndarray, personal: np.ndarray, consent: np.ndarray) -> np.ndarray:
    """The harm level (0-3) that the act itself implies: personal data without consent, disclosed by ``verb``
    (indices into :data:`VERBS`) to ``dest`` (into :data:`DESTINATIONS`); a verb that uses the data where it
    is harms one level less, selling or publishing one level more (serious at least)."""
    level = np.where(_DISCLOSES[verb], _DEST_HARM[dest], np.maximum(_DEST_HARM[dest] - 1, 0))
    level = np.where(_SELLS[verb], np.minimum(np.maximum(level, 1) + 1, 3), level)
    return np.where(personal & ~consent, level, 0).astype(np.int64)


def sample_acts(rng: np.random.Generator, cols: Columns) -> None:
    """Each request's act (``verb``, ``dest``: indices into :data:`VERBS` and :data:`DESTINATIONS`) and the harm
    it implies (``implied_harm``): the harm level is at least that, and the risk level at least as high (high at
    most: critical is for safety-critical systems)."""
    n = cols["risk"].shape[0]
    cols["verb"] = np.asarray(rng.integers(0, len(VERBS), n))
    cols["dest"] = np.asarray(rng.integers(0, len(DESTINATIONS), n))
    implied = implied_harm(cols["verb"], cols["dest"], cols["contains_pii"], cols["consent"])
    cols["implied_harm"] = implied
    cols["harm_level"] = np.maximum(cols["harm_level"], implied)
    cols["risk"] = np.maximum(cols["risk"], np.minimum(implied, 2))


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
    """What the text says about each safety fact: 0 silent, 1 affirmed, 2 denied (silence = the default; a
    brief request rarely states a default, an everyday request never)."""
    out: dict[str, np.ndarray] = {}
    n = cols["risk"].shape[0]
    brief = cols.get("brief", np.zeros(n, dtype=bool))
    everyday = cols.get("everyday", np.zeros(n, dtype=bool))
    silent_share = np.where(everyday, 1.0, np.where(brief, 0.9, SILENT_SHARE))
    for flag in SAFETY_FLAGS:
        value = cols[flag]
        default = SAFETY_DEFAULT[flag]
        mention = rng.random(n) >= silent_share
        state = np.where(value, 1, 2)
        out[flag] = np.where((value == default) & ~mention, 0, state).astype(np.int64)
    return out


def compose(cols: Columns, rng: np.random.Generator, families: Sequence[int] = TRAIN_FAMILIES) -> tuple[
        np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """English requests for fact columns (``contains_pii``, the safety flags, ``protected_attribute_used``,
    ``automated``, ``risk``, ``harm_level``, ``domain`` and the act: ``verb``, ``dest``, ``implied_harm``, see
    :func:`sample_acts`): (texts, family per row, safety states)."""
    n = cols["risk"].shape[0]
    states = safety_states(rng, cols)
    family = np.asarray(families)[rng.integers(0, len(families), n)]
    domain = cols["domain"]
    data = np.empty(n, dtype=object)
    for d, name in enumerate(DOMAINS):
        at = domain == d
        pii, plain = at & cols["contains_pii"], at & ~cols["contains_pii"]
        k = int(pii.sum())
        data[pii] = np.where(rng.random(k) < 0.5, _pick(rng, PII_PHRASES[name], k), personal_data(rng, k))
        k = int(plain.sum())
        form = rng.random(k)
        data[plain] = np.where(form < 0.35, _pick(rng, PLAIN_PHRASES[name], k),
                               np.where(form < 0.6, plain_data(rng, k), neutral_object(rng, k)))
    verb = np.asarray(VERBS, dtype=object)[cols["verb"]]
    verb_past = np.asarray(VERBS_PAST, dtype=object)[cols["verb"]]
    dest = np.asarray(DESTINATIONS, dtype=object)[cols["dest"]]
    brief = cols.get("brief", np.zeros(n, dtype=bool))
    everyday = cols.get("everyday", np.zeros(n, dtype=bool))
    acted = cols["implied_harm"] > 0  # the disclosure is the point of the request: it stays in the words
    # change requests: a system named by its risk, changed (with personal data, "using" it)
    change = (rng.random(n) < CHANGE_SHARE[cols["risk"]]) & ~everyday & ~acted
    change_index = rng.integers(0, len(CHANGE_VERBS), n)
    verb = np.where(change, np.asarray(CHANGE_VERBS, dtype=object)[change_index], verb)
    verb_past = np.where(change, np.asarray(CHANGE_VERBS_PAST, dtype=object)[change_index], verb_past)
    system = np.empty(n, dtype=object)
    for level in range(4):
        at = cols["risk"] == level
        system[at] = _pick(rng, SYSTEMS[level], int(at.sum()))
    uses = change & cols["contains_pii"]  # a change with personal data names the system "using" it
    data[uses] = system[uses] + " using " + data[uses]
    data[change & ~uses] = system[change & ~uses]
    dest = np.where(change, _pick(rng, CHANGE_WHEN, n), dest)
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
    frame, attribute = _pick(rng, PROTECTED_FRAMES, n), _pick(rng, PROTECTED_ATTRIBUTES, n)
    phrased = np.asarray(rng.random(n) < 0.5)  # a phrase from PROTECTED, else "<frame> <attribute>"
    phrase = _pick(rng, PROTECTED, n)
    used = cols["protected_attribute_used"]
    protected = empty.copy()
    protected[used] = np.where(phrased[used], phrase[used], frame[used] + " " + attribute[used])
    risk = np.empty(n, dtype=object)
    harm = np.empty(n, dtype=object)
    for level in range(4):
        at = cols["risk"] == level
        risk[at] = _pick(rng, RISK_WORDS[level], int(at.sum()))
        at = cols["harm_level"] == level
        harm[at] = _pick(rng, HARM_WORDS[level], int(at.sum()))
    risk[change & (rng.random(n) < 0.5)] = ""  # the system said it
    said = acted & (cols["harm_level"] == cols["implied_harm"]) & (rng.random(n) < ACT_SILENT_SHARE)
    harm[said] = ""  # the act said it, and the risk when it is no higher than the act implies
    risk[said & (cols["risk"] <= np.minimum(cols["implied_harm"], 2))] = ""
    risk[brief & (cols["risk"] == 0)] = ""  # a brief request says nothing of what is routine
    harm[brief & (cols["harm_level"] == 0)] = ""
    opener = _pick(rng, OPENERS, n)
    scenario = np.asarray([SCENARIO_WORDS[d] for d in DOMAINS], dtype=object)[domain]
    texts = write_groups(family, {"opener": opener, "verb": verb, "verb_past": verb_past, "data": data, "dest": dest,
                                  "consent": consent, "automated": automated, "protected": protected,
                                  "audit": audit, "explain": explain, "oversight": oversight, "risk": risk,
                                  "harm": harm, "scenario": scenario}, _render, rows=~everyday)
    texts[everyday] = everyday_requests(rng, int(everyday.sum()))  # no facts to state: written apart
    noisy = np.flatnonzero((rng.random(n) < NOISE_SHARE) & ~brief)
    counts = rng.integers(1, 6, noisy.shape[0])
    front = rng.random(noisy.shape[0]) < 0.5
    made_up = pseudo_words(rng, int(counts.sum())).tolist()
    ends = np.cumsum(counts).tolist()
    words = [" ".join(made_up[end - k : end]) for end, k in zip(ends, counts.tolist(), strict=True)]
    texts[noisy] = [f"{w.capitalize()}: {text}" if f else f"{text} ({w})"
                    for w, text, f in zip(words, texts[noisy].tolist(), front.tolist(), strict=True)]
    chatty = np.flatnonzero((rng.random(n) < CHATTY_SHARE) & ~brief)
    texts[chatty] = [f"{text} Also {extra[4:]}." for text, extra in zip(
        texts[chatty].tolist(), neutral_clause(rng, chatty.shape[0]).tolist(), strict=True)]
    typo = np.flatnonzero(rng.random(n) < TYPO_SHARE)
    seeds = rng.integers(0, 2**31, typo.shape[0])
    texts[typo] = [add_typo(text, s) for text, s in zip(texts[typo].tolist(), seeds.tolist(), strict=True)]
    return texts, family, states


Words = Sequence[str] | str  # one part of a request per row, or the same words on every row


def _rows(parts: tuple[Words, ...]) -> zip[tuple[str, ...]]:
    """The rows of ``parts`` (at least one a column; a str stands for itself on every row)."""
    n = len(next(p for p in parts if not isinstance(p, str)))
    return zip(*([p] * n if isinstance(p, str) else p for p in parts), strict=True)


def _join(*parts: Words) -> list[str]:
    """Each row's non-empty parts joined by spaces."""
    if len(parts) == 1 and not isinstance(parts[0], str):
        return list(parts[0])  # one part: the row's words as they are
    return [" ".join(filter(None, row)) for row in _rows(parts)]


def _sentence(*parts: Words) -> list[str]:
    """Each row's parts joined as a sentence: first letter upper case, a full stop (an empty row stays empty)."""
    first = parts[0]
    if isinstance(first, str) and first:  # every row starts with these words: capitalise them once
        return [text + "." for text in _join(first[0].upper() + first[1:], *parts[1:])]
    return [text[0].upper() + text[1:] + "." if text else "" for text in _join(*parts)]


def _then(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """Each row of ``first``, then its row of ``second`` after a space when that is not empty."""
    return [a + " " + b if b else a for a, b in zip(first, second, strict=True)]


def _render(family: int, opener: Sequence[str], verb: Sequence[str], verb_past: Sequence[str], data: Sequence[str],
            dest: Sequence[str], consent: Sequence[str], automated: Sequence[str], protected: Sequence[str],
            audit: Sequence[str], explain: Sequence[str], oversight: Sequence[str], risk: Sequence[str],
            harm: Sequence[str], scenario: Sequence[str]) -> list[str]:
    """Requests in template family ``family`` (0-7 train, 8-9 held out), one per row of the parts."""
    if family == 0:  # imperative, everything in one sentence
        return _then(_sentence(opener, verb, data, dest, consent, automated, protected, audit, explain, oversight),
                     _sentence(risk, harm))
    if family == 1:  # context first
        return _join(_sentence(risk), _sentence(harm), _sentence(opener, verb, data, dest, protected),
                     _sentence(consent, automated, audit), _sentence(explain, oversight))
    if family == 2:  # a question
        question = [(q + "?").capitalize() for q in _join("can we", verb, data, dest, automated, consent, protected,
                                                          audit, explain, oversight)]
        return _join(_sentence(risk), question, _sentence(harm))
    if family == 3:  # ticket style
        request = [f"Request: {v} {d} {t}.".replace(" .", ".") for v, d, t in zip(verb, data, dest, strict=True)]
        return _join(request, _sentence("details:", consent, automated, protected),
                     _sentence(audit, explain, oversight), _sentence("impact:", risk, harm))
    if family == 4:  # passive
        return _then(_sentence(data, "will be", verb_past, dest, automated, consent, protected, audit, explain,
                               oversight), _sentence(risk, harm))
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


def write_groups(group: np.ndarray, parts: dict[str, np.ndarray], write: Callable[..., list[str]],
                 rows: np.ndarray | None = None) -> np.ndarray:
    """The text of each row: ``write(g, **parts)`` on the rows of each value ``g`` of ``group`` together (a
    template family, a form), so a text costs a few list operations rather than a chain of calls per row.
    ``rows`` (a mask) limits the rows written; the others are left None."""
    texts = np.empty(group.shape[0], dtype=object)
    wanted = np.ones(group.shape[0], dtype=bool) if rows is None else rows
    for g in np.unique(group[wanted]).tolist():
        at = np.flatnonzero((group == g) & wanted)
        texts[at] = write(g, **{name: column[at].tolist() for name, column in parts.items()})
    return texts


_CONSONANTS = np.array(list("bcdfghklmnprstvwz"))
_VOWELS = np.array(list("aeiou"))
_SYLLABLES = np.array([[c + v for v in _VOWELS.tolist()] for c in _CONSONANTS.tolist()], dtype=object)


def pseudo_words(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` made-up words (2-4 consonant-vowel syllables and a final consonant): the words a request has
    besides its governance facts (names, topics, jargon), so the model learns that words it has never seen
    carry no facts."""
    consonant = rng.integers(0, len(_CONSONANTS), (n, 3))
    syllables = _SYLLABLES[consonant, rng.integers(0, len(_VOWELS), (n, 3))]
    length = rng.integers(1, 4, n)
    final = _CONSONANTS.astype(object)[rng.integers(0, len(_CONSONANTS), n)]
    syllables[np.arange(3) >= length[:, None]] = ""  # the syllables past each word's length
    return syllables[:, 0] + syllables[:, 1] + syllables[:, 2] + final


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


@functools.lru_cache(maxsize=1 << 16)  # requests share most of their grams; bounded for a server
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


AFFIRM_CONFIDENCE = 0.9  # consent, an audit trail or an explanation counts only when read this surely


def read_facts(fact_logits: np.ndarray) -> Columns:
    """Facts read from the fact head's logits [n, FACT_WIDTH]: flags (silence = default), safety states, risk
    and harm levels."""
    k = len(RISK_FLAGS)
    out: Columns = {f: fact_logits[:, j] > 0.0 for j, f in enumerate(RISK_FLAGS)}
    for j, flag in enumerate(SAFETY_FLAGS):
        logits = fact_logits[:, k + 3 * j : k + 3 * j + 3]
        state = logits.argmax(axis=1)
        if not SAFETY_DEFAULT[flag]:  # affirming it relaxes the rules: only when the text says so clearly
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            unsure = (state == 1) & (shifted[:, 1] / shifted.sum(axis=1) < AFFIRM_CONFIDENCE)
            state = np.where(unsure, np.where(logits[:, 2] > logits[:, 0], 2, 0), state)
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
