"""Realistic comments for the benchmark, built by combining fragments so bodies vary.

Fragments come from the labelled dev set when it is beside the repository (../shared/data) and
from the lists below; clean comments for the end-to-end and read measurements use only the
lists below, checked against the engine so they are published.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CLEAN_OPENERS = [
    "Thank you for such a careful article.",
    "This was a really balanced piece.",
    "I appreciated the section on what the research does and does not show.",
    "My mother started esketamine treatment last spring.",
    "I have lived with depression for most of my adult life.",
    "As a nurse on a psychiatric ward, I found this useful.",
    "Great overview of where the studies stand today.",
    "I shared this with my support group this morning.",
    "The interview with the researcher was fascinating.",
    "I was nervous before my first session at the clinic.",
    "My brother has been on the waiting list for months.",
    "Clear, calm and honest writing, thank you.",
    "I read this twice and learned something both times.",
    "Our local hospital just opened a treatment room.",
    "I teach statistics, and the way you explained the trial sizes was spot on.",
    "After ten years of trying different medications, this gave me some hope.",
    "My partner and I read this together last night.",
    "I remember when this was only discussed in journals.",
    "It is good to see this covered without hype.",
    "I found the timeline of the approvals really helpful.",
]
CLEAN_MIDDLES = [
    "The two hours of observation afterwards felt long but reassuring.",
    "Our insurance covered most of it after an appeal.",
    "My psychiatrist explained the monitoring very clearly.",
    "It did not work for everyone in my family, and that is okay.",
    "I wish more clinics offered evening appointments.",
    "The trials still seem small to me, so I am cautiously optimistic.",
    "Weekly talk therapy alongside it made the biggest difference.",
    "I would love a follow-up on the long-term outcomes.",
    "The waiting room was quiet and the staff were kind.",
    "The travel to the clinic was the hardest part for us.",
    "My doctor was careful to check my blood pressure every time.",
    "I kept a journal of my moods, which helped at the reviews.",
    "The first month was mostly about getting used to the routine.",
    "It was not a miracle, but it was a real improvement.",
    "The nurses answered every question my father had.",
    "Some days were better than others, which the team expected.",
    "I liked that the article mentioned the cost so openly.",
    "The part about how researchers measure response was new to me.",
    "Being honest with my care team about side effects really mattered.",
    "We found a support group through the clinic, which helped a lot.",
    "The paperwork took longer than the treatment itself.",
    "My GP had not heard much about it, so I brought this article along.",
    "Every clinic seems to run the sessions a little differently.",
    "I appreciated the quotes from patients as well as doctors.",
    "A friend drove me to each appointment, which was a relief.",
]
CLEAN_CLOSERS = [
    "Looking forward to the next article.",
    "Thanks again to the author.",
    "Wishing everyone here well.",
    "Keep up the good work.",
    "Hope this helps someone reading.",
    "Please write more about this.",
    "Take care, all of you.",
    "Grateful for pieces like this.",
    "I will be following the research closely.",
    "Sending good thoughts to anyone going through it.",
    "Would be great to hear from more patients.",
    "Bookmarking this for later.",
    "",
    "",
]
SPAM_FRAGMENTS = [
    "Buy cheap ketamine online at www.best-meds-shop.biz, no prescription needed!",
    "Earn $500 a day working from home, message me on WhatsApp +1 555 019 92231.",
    "Visit http://cheap-pills-discount.shop for 70% off all antidepressants.",
    "Subscribe to my channel and win a free iPhone!!!",
    "DM me on telegram @pharma_plug for esketamine without a doctor.",
    "CLICK HERE >>> http://bit.ly/k3t4m1n <<< best prices guaranteed",
    "I made $8,000 last month with this crypto trick, ask me how.",
    "Order generic Spravato overnight delivery at meds-express-247.top",
    "Check out my profile for more, follow for follow!",
    "Lose 20 pounds in 2 weeks with this one weird pill, link in bio.",
]
PROFANE_FRAGMENTS = [
    "This is fucking ridiculous.",
    "What a load of shit.",
    "The damn insurance company refused us again.",
    "My old psychiatrist was a total asshole about it.",
    "Honestly the price is bullshit.",
    "Who the hell can afford $800 a session?",
    "Fuck the waiting lists, seriously.",
    "The side effects were a bitch for the first week.",
]
MEDICAL_FRAGMENTS = [
    "Just stop taking your antidepressants and try ketamine instead.",
    "You can get ketamine from a vet supply and dose yourself at home.",
    "Double the dose if the first one does not work.",
    "There is no need for the monitoring, I drive home right after every session.",
    "Mix it with a couple of drinks, it works faster that way.",
    "Skip the psychiatrist, ketamine cures depression in one go.",
    "Come off your lithium cold turkey before starting, it works better.",
    "Microdosing every day at home is safer than the clinic.",
]
AUTHORS = ["Maya", "Jon R.", "Priya", "Tomasz", "Aoife", "Daniel K.", "Lucia", "Sam", "Farah",
           "Oluwaseun", "Grace", "Mateo", "Hannah W.", "Kenji", "Rosa", "Elif", "Noah", "Ines",
           "Marcus", "Yuki", "Bea", "Chidi", "Lena", "Arjun"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def shared_data_dir(repo: Path) -> Path:
    """../shared/data beside the repository (also in CI, where the repo is cloned elsewhere)."""
    return (repo / ".." / "shared" / "data").resolve()


def load_dev_set(repo: Path) -> list[dict[str, Any]]:
    """The labelled dev comments, or [] when the shared data is not there."""
    path = shared_data_dir(repo) / "dev_comments.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sentences(bodies: Iterable[str]) -> list[str]:
    """Sentences of the given bodies, short scraps dropped."""
    out = []
    for body in bodies:
        out += [s.strip() for s in _SENTENCE.split(body) if len(s.strip()) >= 12]
    return out


class Corpus:
    """Varied comments of four kinds: clean, spam, profane, medical."""

    KINDS = ("clean", "spam", "profane", "medical")
    MIX = {"clean": 0.45, "spam": 0.20, "profane": 0.15, "medical": 0.20}

    def __init__(self, dev: list[dict[str, Any]] | None = None, seed: int = 6) -> None:
        self.rng = random.Random(seed)
        dev = dev or []
        by = {lab: [r["body"] for r in dev if r.get("label") == lab] for lab in
              ("ok", "spam", "profanity", "unsafe_medical")}
        self.clean_openers = list(CLEAN_OPENERS)
        self.clean_middles = list(CLEAN_MIDDLES)
        self.clean_closers = list(CLEAN_CLOSERS)
        self.dev_clean = sentences(r["body"] for r in dev
                                   if r.get("label") == "ok" and r.get("expect") == "publish")
        self.spam = SPAM_FRAGMENTS + by["spam"]
        self.profane = PROFANE_FRAGMENTS + by["profanity"]
        self.medical = MEDICAL_FRAGMENTS + by["unsafe_medical"]
        self._n = 0
        # Texts already handed out, folded as the duplicate detector folds them: a comment
        # meant to be clean must not be held as a repeat of an earlier phase's comment.
        self._issued: set[str] = set()

    @staticmethod
    def _fold(body: str) -> str:
        return re.sub(r"\W+", " ", body.casefold()).strip()

    def keep_clean(self, ok: Any) -> int:
        """Drop curated clean fragments the engine would not publish; returns how many went."""
        before = len(self.clean_openers) + len(self.clean_middles) + len(self.clean_closers)
        self.clean_openers = [s for s in self.clean_openers if ok(s)] or CLEAN_OPENERS[:1]
        self.clean_middles = [s for s in self.clean_middles if ok(s)] or CLEAN_MIDDLES[:1]
        self.clean_closers = [s for s in self.clean_closers if not s or ok(s)]
        return before - len(self.clean_openers) - len(self.clean_middles) - len(self.clean_closers)

    def author(self) -> str:
        self._n += 1
        name = self.rng.choice(AUTHORS)
        return name if self.rng.random() < 0.6 else f"{name} {self._n % 97}"

    def email(self, author: str) -> str | None:
        if self.rng.random() < 0.5:
            return None
        return f"{re.sub(r'[^a-z0-9]+', '.', author.lower()).strip('.')}.{self.rng.randrange(10**6)}@example.org"

    def clean(self, dev: bool = False) -> str:
        """A clean comment: opener, middle, optional closer (dev-set sentences if `dev`)."""
        r = self.rng
        middle = r.choice(self.dev_clean) if dev and self.dev_clean and r.random() < 0.5 \
            else r.choice(self.clean_middles)
        parts = [r.choice(self.clean_openers), middle]
        if r.random() < 0.5:
            parts.append(r.choice(self.clean_middles))
        parts.append(r.choice(self.clean_closers))
        return " ".join(p for p in parts if p)

    def make(self, kind: str) -> str:
        """One comment of `kind`, mixing its fragments with clean text."""
        r = self.rng
        if kind == "clean":
            return self.clean(dev=True)
        frag = {"spam": self.spam, "profane": self.profane, "medical": self.medical}[kind]
        bad = r.choice(frag)
        shape = r.random()
        if shape < 0.3:
            return bad
        if shape < 0.65:
            return f"{r.choice(self.clean_openers)} {bad}"
        return f"{bad} {r.choice(self.clean_middles)}"

    def mixed(self, n: int) -> list[tuple[str, str]]:
        """n (kind, body) pairs in the proportions of MIX, shuffled."""
        kinds: list[str] = []
        for kind, share in self.MIX.items():
            kinds += [kind] * round(n * share)
        kinds = (kinds + ["clean"] * n)[:n]
        self.rng.shuffle(kinds)
        out = [(k, self.make(k)) for k in kinds]
        self._issued.update(self._fold(b) for _, b in out)
        return out

    def clean_unique(self, n: int) -> list[str]:
        """n clean comments from the curated fragments, none handed out before in this run."""
        out: list[str] = []
        tries = 0
        while len(out) < n and tries < n * 20:
            tries += 1
            body = self.clean()
            if self._fold(body) not in self._issued:
                self._issued.add(self._fold(body))
                out.append(body)
        while len(out) < n:  # combinations ran out: number them rather than repeat
            body = f"{self.clean()} (note {len(self._issued)})"
            self._issued.add(self._fold(body))
            out.append(body)
        return out

    def payload(self, body: str) -> dict[str, Any]:
        """The JSON a commenter posts."""
        author = self.author()
        data: dict[str, Any] = {"author": author, "body": body}
        email = self.email(author)
        if email:
            data["email"] = email
        return data
