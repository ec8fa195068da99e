import csv
import json

import pytest
from better_profanity import Profanity

from services.config import ROOT
from workers.engine.filters.base import Context
from workers.engine.filters.profanity import (
    ProfanityFilter,
    WordList,
    mask,
    read_list,
    reference_words,
)
from workers.engine.normalise import normalise

SHARED = ROOT.parent / "shared" / "data"

CRAFTED = [
    "f u c k", "blow job here", "a blow job", "bull shit", "b u l l s h i t", "hand-job x",
    "2 girls 1 cup", "x 2 girls 1 cup y", "sh1t", "$h1t", "a$$", "f*ck", "h3ll no", "ass", "a", "ab",
    "x ass", "ass x", "cum laude", "tit for tat", "f_u_c_k", "f.u.c.k this", "what the f.u.c.k",
    "shit!", '"shit"', "shit's", "ASS", "Fuck-tard is", "doggy style ok", "  shit  ", "",
    "Scunthorpe assessment cocktail Dickens therapist class", "Damn, hell of a day", "crap",
    # text starting or ending with a separator or a one-letter word, words joined across
    # separators (the ASCII path cuts text into tokens and separators)
    "- fuck -", "!fuck", "shit a", "x f", "fu ck", "f u c k ", " f.u.c.k.", "bull  shit", "a\nss",
    "2 girls 1 cup!", "blow job", "x", " x ", "sh it s", "jerk-off.", "\"ass\" hole", "é fuck é",
]


def corpus():
    rows = list(CRAFTED)
    dev = SHARED / "dev_comments.jsonl"
    if dev.exists():
        # better-profanity needs ~20 ms per comment, so a sample keeps the test quick
        rows += [json.loads(line)["body"] for line in dev.open(encoding="utf-8") if line.strip()][::3]
    for p in sorted((SHARED / "youtube-spam").glob("*.csv")):
        with p.open(encoding="utf-8", newline="") as f:
            rows += [r["CONTENT"] for r in csv.DictReader(f)][:15]
    return rows


@pytest.fixture(scope="module")
def texts():
    return corpus()


def test_identical_to_better_profanity_without_allow_list(texts):
    ref = Profanity()
    ours = WordList(reference_words())
    for t in texts:
        assert ours.censor(t) == ref.censor(t), t


def test_identical_to_better_profanity_with_our_allow_list_as_whitelist(texts):
    allow = read_list("profanity_allow.txt")
    ref = Profanity()
    ref.load_censor_words(whitelist_words=list(allow))
    ours = WordList(reference_words(), allow=allow)
    for t in texts:
        assert ours.censor(t) == ref.censor(t), t


def masked(body):
    f = ProfanityFilter()
    return mask(body, f.check(normalise(body), Context()))


@pytest.mark.parametrize("body", [
    "Any clinics up near Scunthorpe?", "The assessment was thorough", "the usual cocktail of an SSRI",
    "reads like something out of Dickens", "My therapist suggested it", "my pharmacology class",
    "graduated summa cum laude", "tit for tat arguments", "oral ketamine", "broken down by sex and age",
    "Lovely balanced article xx", "a safer alternative to PCP", "Penistone Pete", "Lucas Cockburn",
    "Damn good article", "went through hell", "shiitake extract", "Mr. Dickinson",
    "which test is right for you", "the ovary and the testis", "a slippery slope",
    "know the signs of heat stroke", "I used to hate facial hair",
])
def test_innocent_words_never_masked(body):
    assert masked(body) == body


@pytest.mark.parametrize("body,expected", [
    ("Holy shit, finally", "Holy ****, finally"),
    ("this sh1t actually works", "this **** actually works"),
    ("sh\u200bit, wish I'd known", "****, wish I'd known"),
    ("f u c k the stigma", "**** the stigma"),
    ("What the f.u.c.k is wrong", "What the **** is wrong"),
    ("Fuuuuck. Read it", "****. Read it"),
    ("Holy fuсk, wow", "Holy ****, wow"),
    ("ｆｕｃｋ depression", "**** depression"),
    ("fück this", "**** this"),
    ("a total clusterfuck.", "a total ****."),
    ("motherf***ing insurance", "**** insurance"),
    ("$#!% this is good", "**** this is good"),
    ("Bloody hell, John", "Bloody ****, John"),
    ("c r a p. waiting", "****. waiting"),
    ("the worst f-ing headaches", "the worst **** headaches"),
    ("Joder, qué buen artículo", "****, qué buen artículo"),
    ("fvck the stigma", "**** the stigma"),
])
def test_obfuscated_profanity_masked(body, expected):
    assert masked(body) == expected


def test_mask_leaves_everything_else_byte_identical():
    body = "Émile 😀 said: sh1t\u200b happens\r\n  — and 'ﬁne' ｔｈｅｎ"
    out = masked(body)
    assert out == body.replace("sh1t", "****")


def test_finding_spans_point_into_original():
    body = "ok then, ｆｕｃｋ it"
    [f] = ProfanityFilter().check(normalise(body), Context())
    assert [body[a:b] for a, b in f.spans] == ["ｆｕｃｋ"]
    assert f.category == "profanity"
