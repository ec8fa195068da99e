"""Streaming readers of Disqus exports and WordPress WXR (1.0, 1.1, 1.2) files.

Each yields threads and posts as it reads and drops every element it has read, so memory
does not grow with the file. The XML is parsed by defusedxml: no entity expansion, no
external entities (an export is untrusted input)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import ParseError

from defusedxml.ElementTree import iterparse

from ..comments.models import Status
from .common import (
    ImportError_,
    Post,
    Thread,
    attr,
    child_text,
    clean_author,
    clean_email,
    local,
    parse_time,
)

Item = Thread | Post


def _events(stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
    try:
        yield from iterparse(stream, events=("start", "end"), forbid_dtd=True)
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise ImportError_(f"malformed XML at line {line}, column {column}: {exc}") from exc


def _bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def disqus(stream: IO[bytes]) -> Iterator[Item]:
    """A Disqus export: <thread dsq:id> elements, then <post dsq:id> elements."""
    root = None
    depth = 0
    site = ""  # the forum: post ids are Disqus's own, prefixed so two forums never collide
    for event, elem in _events(stream):
        if event == "start":
            if root is None:
                root = elem
            depth += 1
            continue
        depth -= 1
        if depth != 1:
            continue  # only the root's children are records
        name = local(elem.tag)
        if name in ("category", "thread") and not site:
            site = child_text(elem, "forum")[:100]
        if name == "thread":
            yield Thread(key=attr(elem, "id"), identifier=child_text(elem, "id"),
                         link=child_text(elem, "link"), title=child_text(elem, "title"))
        elif name == "post":
            yield _disqus_post(elem, site or "disqus")
        assert root is not None
        root.clear()  # everything read so far goes


def _disqus_post(elem: Any, site: str) -> Post:
    thread_key = parent = ""
    author = email = ""
    for c in elem:
        n = local(c.tag)
        if n == "thread":
            thread_key = attr(c, "id")
        elif n == "parent":
            parent = attr(c, "id")
        elif n == "author":
            author = child_text(c, "name") or child_text(c, "username")
            email = child_text(c, "email")
    skip = None
    if not (attr(elem, "id") or child_text(elem, "id")):
        skip = "no post id"
    elif _bool(child_text(elem, "isDeleted")):
        skip = "deleted"
    elif _bool(child_text(elem, "isSpam")):
        skip = "marked as spam"
    approved = child_text(elem, "isApproved")
    return Post(
        external_id=f"{site}/{attr(elem, 'id') or child_text(elem, 'id')}", thread_key=thread_key,
        parent_external_id=f"{site}/{parent}" if parent else None, author=clean_author(author),
        email=clean_email(email),
        body=child_text(elem, "message"), created_at=parse_time(child_text(elem, "createdAt")),
        status=Status.HELD if approved and not _bool(approved) else Status.APPROVED,
        skip=skip, ip=child_text(elem, "ipAddress") or None)


WP_SKIP = {"spam": "marked as spam", "trash": "deleted", "post-trashed": "deleted"}


def wordpress(stream: IO[bytes]) -> Iterator[Item]:
    """A WXR file: <item>s (posts and pages) holding <wp:comment>s. A comment is read when it
    ends and then removed from its item, so an item with many comments costs no more."""
    stack: list[Any] = []
    item: dict[str, str] = {}
    thread_sent = False
    site = ""  # the blog's address: comment ids are per blog
    for event, elem in _events(stream):
        if event == "start":
            stack.append(elem)
            if local(elem.tag) == "item" and len(stack) == 3:
                item, thread_sent = {}, False
            continue
        stack.pop()
        name = local(elem.tag)
        parent = stack[-1] if stack else None
        if parent is not None and local(parent.tag) == "channel" and name in ("link", "base_site_url"):
            if not site and (elem.text or "").strip():
                parts = urlsplit((elem.text or "").strip())
                site = (parts.netloc + parts.path).rstrip("/")[:100]
        elif parent is not None and local(parent.tag) == "item" and name != "comment":
            key = {"post_id": "post_id", "post_name": "post_name", "link": "link",
                   "title": "title"}.get(name)
            if key:
                item[key] = (elem.text or "").strip()
        elif name == "comment" and parent is not None and local(parent.tag) == "item":
            if not thread_sent:
                thread_sent = True
                yield Thread(key=item.get("post_id", ""), identifier=item.get("post_name", ""),
                             link=item.get("link", ""), title=item.get("title", ""))
            yield _wp_comment(elem, item.get("post_id", ""), site or "wordpress")
            parent.remove(elem)
        elif name == "item" and parent is not None:
            parent.remove(elem)


def _wp_comment(elem: Any, post_id: str, site: str) -> Post:
    get = {local(c.tag): (c.text or "") for c in elem}
    kind = get.get("comment_type", "").strip().lower()
    approved = get.get("comment_approved", "1").strip().lower()
    skip = None
    if not get.get("comment_id", "").strip():
        skip = "no comment id"
    elif kind in ("pingback", "trackback"):
        skip = kind
    elif approved in WP_SKIP:
        skip = WP_SKIP[approved]
    gmt = parse_time(get.get("comment_date_gmt"))
    when = gmt or parse_time(get.get("comment_date"))
    notes = ("no GMT date: the site's local time taken as UTC",) if gmt is None and when else ()
    parent = get.get("comment_parent", "0").strip()
    return Post(
        external_id=f"{site}/{get.get('comment_id', '').strip()}", thread_key=post_id,
        parent_external_id=f"{site}/{parent}" if parent not in ("", "0") else None,
        author=clean_author(get.get("comment_author")), email=clean_email(get.get("comment_author_email")),
        body=get.get("comment_content", ""), created_at=when,
        status=Status.APPROVED if approved == "1" else Status.HELD, skip=skip,
        ip=get.get("comment_author_IP", "").strip() or None, notes=notes)
