"""Links, e-mail addresses, phone numbers and handles: the engine's patterns, defined here once.

Two families, on purpose. The spam filter's patterns (`LINK`, `EMAIL`, `HANDLE`, `PHONE`) find
spans to highlight and must not over-reach. The learned model's (`MODEL_*`) tag features; the
stored models were trained on exactly these, so changing one is a model change (retrain and
`make eval`), not a refactoring. Normalisation's `EMAILISH` only keeps a word from being folded.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

DATA = Path(__file__).parent / "filters" / "data"

# RFC 2606/6761 names stand in for real domains in anonymised data; look through them.
RESERVED_SUFFIXES = (".example.com", ".example.net", ".example.org", ".example", ".test",
                     ".invalid", ".localhost")
TLDS = ("com|net|org|info|biz|io|co|me|ly|gl|uk|de|fr|es|it|ru|in|us|ca|au|nl|pl|br|cn|xyz|online|"
        "shop|store|site|club|top|live|app|health|clinic|example|test|invalid|gov|edu|int|eu|mx|id|at|"
        "win|blog|vip|bet|click|link|icu|cam|care|tv|cc|ws|su|today|space|fun|life|world|pharmacy|"
        "email|pro|ink|lol|buzz|work|agency|center|rocks|page|news|tk|ml|ga|cf|gq|ua|kz|ng|za|ph|pk")
LINK = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'\]\[)]+|(?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:" + TLDS +
    r")\b(?:/[^\s<>\"'\]\[)]*)?")
DOT_TLD = re.compile(r"\.(?:" + TLDS + r")\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
HANDLE = re.compile(r"(?<![\w@.])@([a-z0-9_.]{3,30})")
PHONE = re.compile(r"(?<![\w/.])\+?\d[\d ().-]{7,}\d(?![\w/])")

# The learned model's feature tags.
MODEL_TLDS = "com|net|org|info|biz|io|co|me|ly|gl|uk|de|ru|example|test|invalid"
MODEL_URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:" + MODEL_TLDS
                       + r")\b(?:/\S*)?")
# Every MODEL_URL match holds "http", "www." or one of these: far cheaper to look for than
# MODEL_URL itself, which tries a host name at every word of the comment.
MODEL_URL_HINT = re.compile(r"\.(?:" + MODEL_TLDS + r")\b")
MODEL_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
MODEL_HANDLE = re.compile(r"(?<![\w@])@[a-z0-9_.]{3,}")
MODEL_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")

# A whole word that looks like an address: normalisation leaves it as it is.
EMAILISH = re.compile(r"^[\w.]+@[\w.]+$")


def host_of(link: str) -> str:
    """Lower-case host of a link with or without a scheme."""
    if "://" not in link:
        link = "http://" + link
    try:
        host = urlsplit(link).hostname or ""
    except ValueError:
        host = ""
    return host.lower().strip(".")


def domain_in(host: str, domains: frozenset[str]) -> bool:
    """True if `host` or one of its parent domains is in `domains`."""
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts)))


def read_list(name: str) -> list[str]:
    """Lines of a data file, without comments and blanks."""
    path = DATA / name
    if not path.exists():
        return []
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


@lru_cache(maxsize=1)
def _allowed() -> tuple[frozenset[str], frozenset[str]]:
    allow = frozenset(read_list("spam_allow_domains.txt"))
    # "cochranelibrary" for cochranelibrary.com: matched against anonymised hosts
    return allow, frozenset(d.rsplit(".", 1)[0] for d in allow if "." in d)


def is_reputable(host: str) -> bool:
    """True for hosts on the health-source allow list (looking through reserved test names)."""
    allow, allow_names = _allowed()
    if domain_in(host, allow):
        return True
    for suf in RESERVED_SUFFIXES:
        if host.endswith(suf):
            inner = host[: -len(suf)]
            if inner and (domain_in(inner, allow) or inner in allow_names
                          or inner.split(".")[-1] in allow_names):
                return True
    return False
