"""`triage import disqus|wordpress` and `triage export`, on messy sample files written here."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from services.cli import cli
from services.comments.models import Article, Comment, Decision
from services.importers.common import ImportError_
from services.importers.export import export
from services.importers.run import import_file
from tests.conftest import DEMO

DISQUS = """<?xml version="1.0" encoding="utf-8"?>
<disqus xmlns="http://disqus.com" xmlns:dsq="http://disqus.com/disqus-internals">
  <category dsq:id="1"><forum>healthnews</forum><title>General</title></category>
  <thread dsq:id="100">
    <id>ketamine-new-hope-depression</id><forum>healthnews</forum>
    <link>https://news.example/2024/05/ketamine-new-hope-depression/</link>
    <title>Ketamine</title><createdAt>2024-05-01T08:00:00Z</createdAt>
  </thread>
  <thread dsq:id="200">
    <id></id><forum>healthnews</forum>
    <link>https://news.example/2024/06/sleep-and-mood/</link><title>Sleep and mood</title>
  </thread>
  <thread dsq:id="300"><id></id><forum>healthnews</forum><link></link><title></title></thread>
  <post dsq:id="2">
    <message><![CDATA[<p>Replying before my parent appears in the file.</p>]]></message>
    <createdAt>2024-05-02T10:00:00Z</createdAt><isDeleted>false</isDeleted><isSpam>false</isSpam>
    <author><email>bo@example.org</email><name>Bo</name></author>
    <thread dsq:id="100"/><parent dsq:id="1"/>
  </post>
  <post dsq:id="1">
    <message><![CDATA[<p>Great read. See <a
      href="https://www.nimh.nih.gov/health">the NIMH page</a> &amp; more.</p>]]></message>
    <createdAt>2024-05-02T09:00:00Z</createdAt><isDeleted>false</isDeleted><isSpam>false</isSpam>
    <author><email>  Ana@Example.org  </email><name>Ana</name></author>
    <thread dsq:id="100"/>
  </post>
  <post dsq:id="3">
    <message><![CDATA[This was deleted.]]></message>
    <createdAt>2024-05-02T11:00:00Z</createdAt><isDeleted>true</isDeleted><isSpam>false</isSpam>
    <author><name>Gone</name></author><thread dsq:id="100"/>
  </post>
  <post dsq:id="4">
    <message><![CDATA[A reply to a deleted comment.]]></message>
    <createdAt>2024-05-02T12:00:00Z</createdAt><isDeleted>false</isDeleted><isSpam>false</isSpam>
    <author><name>Cy</name></author><thread dsq:id="100"/><parent dsq:id="3"/>
  </post>
  <post dsq:id="5">
    <message><![CDATA[Buy cheap pills now]]></message>
    <createdAt>2024-05-02T13:00:00Z</createdAt><isDeleted>false</isDeleted><isSpam>true</isSpam>
    <author><name>Spammer</name></author><thread dsq:id="100"/>
  </post>
  <post dsq:id="6">
    <message><![CDATA[No thread id.]]></message><createdAt>2024-05-02T14:00:00Z</createdAt>
    <author><name>Di</name></author><thread dsq:id=""/>
  </post>
  <post dsq:id="7">
    <message><![CDATA[Thread missing from the file.]]></message><createdAt>2024-05-02T15:00:00Z</createdAt>
    <author><name>Ed</name></author><thread dsq:id="999"/>
  </post>
  <post dsq:id="8">
    <message><![CDATA[Sleep matters more than people think.]]></message>
    <createdAt>2024-06-03T09:30:00+02:00</createdAt>
    <author><email>   </email><name>   </name><isAnonymous>true</isAnonymous></author>
    <thread dsq:id="200"/>
  </post>
  <post dsq:id="9">
    <message><![CDATA[Still awaiting approval in Disqus.]]></message>
    <createdAt>2024-06-03T10:00:00Z</createdAt><isApproved>false</isApproved>
    <author><name>Flo</name></author><thread dsq:id="200"/>
  </post>
  <post dsq:id="10">
    <message><![CDATA[Merci pour l'article — très clair 👍]]></message>
    <createdAt>2024-06-04T10:00:00Z</createdAt>
    <author><name>Gé</name></author><thread dsq:id="300"/>
  </post>
</disqus>
"""

WXR = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/{v}/">
<channel>
  <title>Health blog</title>
  <link>https://blog.example</link>
  <wp:wxr_version>{v}</wp:wxr_version>
  <item>
    <title>Ketamine, a new hope?</title>
    <link>https://blog.example/?p=10</link>
    <wp:post_id>10</wp:post_id>
    <wp:post_name>ketamine-new-hope-depression</wp:post_name>
    <wp:post_type>post</wp:post_type>
    <wp:comment>
      <wp:comment_id>1</wp:comment_id>
      <wp:comment_author><![CDATA[Ana]]></wp:comment_author>
      <wp:comment_author_email> ana@example.org </wp:comment_author_email>
      <wp:comment_date>2024-05-02 11:00:00</wp:comment_date>
      <wp:comment_date_gmt>2024-05-02 09:00:00</wp:comment_date_gmt>
      <wp:comment_content><![CDATA[Thanks, <a href="https://www.nimh.nih.gov/">NIMH</a> agrees.]]></wp:comment_content>
      <wp:comment_approved>1</wp:comment_approved>
      <wp:comment_type></wp:comment_type>
      <wp:comment_parent>0</wp:comment_parent>
    </wp:comment>
    <wp:comment>
      <wp:comment_id>2</wp:comment_id>
      <wp:comment_author><![CDATA[Bo]]></wp:comment_author>
      <wp:comment_author_email></wp:comment_author_email>
      <wp:comment_date>2024-05-02 12:00:00</wp:comment_date>
      <wp:comment_date_gmt>2024-05-02 10:00:00</wp:comment_date_gmt>
      <wp:comment_content><![CDATA[A reply.]]></wp:comment_content>
      <wp:comment_approved>1</wp:comment_approved>
      <wp:comment_type>comment</wp:comment_type>
      <wp:comment_parent>1</wp:comment_parent>
    </wp:comment>
    <wp:comment>
      <wp:comment_id>3</wp:comment_id>
      <wp:comment_author><![CDATA[Cy]]></wp:comment_author>
      <wp:comment_date>2024-05-02 13:00:00</wp:comment_date>
      <wp:comment_date_gmt>0000-00-00 00:00:00</wp:comment_date_gmt>
      <wp:comment_content><![CDATA[Waiting for approval.]]></wp:comment_content>
      <wp:comment_approved>0</wp:comment_approved>
      <wp:comment_parent>0</wp:comment_parent>
    </wp:comment>
    <wp:comment>
      <wp:comment_id>4</wp:comment_id><wp:comment_author>S</wp:comment_author>
      <wp:comment_date_gmt>2024-05-02 13:00:00</wp:comment_date_gmt>
      <wp:comment_content>cheap pills</wp:comment_content><wp:comment_approved>spam</wp:comment_approved>
    </wp:comment>
    <wp:comment>
      <wp:comment_id>5</wp:comment_id><wp:comment_author>T</wp:comment_author>
      <wp:comment_date_gmt>2024-05-02 13:00:00</wp:comment_date_gmt>
      <wp:comment_content>binned</wp:comment_content><wp:comment_approved>trash</wp:comment_approved>
    </wp:comment>
    <wp:comment>
      <wp:comment_id>6</wp:comment_id><wp:comment_author>Other blog</wp:comment_author>
      <wp:comment_date_gmt>2024-05-02 13:00:00</wp:comment_date_gmt>
      <wp:comment_content>[…] linked here […]</wp:comment_content>
      <wp:comment_approved>1</wp:comment_approved><wp:comment_type>pingback</wp:comment_type>
    </wp:comment>
    <wp:comment>
      <wp:comment_id>7</wp:comment_id><wp:comment_author>Tracker</wp:comment_author>
      <wp:comment_date_gmt>2024-05-02 13:00:00</wp:comment_date_gmt>
      <wp:comment_content>trackback</wp:comment_content>
      <wp:comment_approved>1</wp:comment_approved><wp:comment_type>trackback</wp:comment_type>
    </wp:comment>
  </item>
  <item>
    <title>About us</title><link>https://blog.example/about/</link>
    <wp:post_id>11</wp:post_id><wp:post_name>about</wp:post_name><wp:post_type>page</wp:post_type>
  </item>
  <item>
    <title>Sleep</title><link>https://blog.example/2024/06/sleep-and-mood/</link>
    <wp:post_id>12</wp:post_id><wp:post_name>sleep-and-mood</wp:post_name>
    <wp:comment>
      <wp:comment_id>8</wp:comment_id><wp:comment_author>Dee</wp:comment_author>
      <wp:comment_date_gmt>2024-06-02 13:00:00</wp:comment_date_gmt>
      <wp:comment_content>Good one.</wp:comment_content><wp:comment_approved>1</wp:comment_approved>
    </wp:comment>
  </item>
</channel>
</rss>
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def comments(service) -> dict[str, Comment]:  # type: ignore[no-untyped-def]
    """Imported comments by author."""
    with service.db.session() as s:
        rows = s.execute(select(Comment, Article.slug).join(Article)).all()
        for c, slug in rows:
            c.slug = slug  # type: ignore[attr-defined]
        return {c.author: c for c, _ in rows}


def test_a_messy_disqus_export_imports_what_it_should_and_says_why_it_skipped_the_rest(service, tmp_path):
    summary = import_file(service, "disqus", write(tmp_path, "disqus.xml", DISQUS))
    got = comments(service)
    assert set(got) == {"Ana", "Bo", "Cy", "Anonymous", "Flo", "Gé"}
    assert summary.imported == 6 and summary.held == 1
    assert dict(summary.skipped) == {"deleted": 1, "marked as spam": 1, "no thread id": 1,
                                     "thread not in the file": 1}
    ana, bo, cy = got["Ana"], got["Bo"], got["Cy"]
    # Mapped to the existing article by the thread's identifier; others created from links.
    assert ana.slug == DEMO and got["Anonymous"].slug == "sleep-and-mood"
    assert got["Gé"].slug == "disqus-300" and got["Gé"].body == "Merci pour l'article — très clair 👍"
    assert sorted(summary.articles_created) == ["disqus-300", "sleep-and-mood"]
    with service.db.session() as s:
        assert s.scalars(select(Article.url).where(Article.slug == "sleep-and-mood")).one() == \
            "https://news.example/2024/06/sleep-and-mood/"
    # HTML becomes text; the link stays readable.
    assert ana.body == "Great read. See the NIMH page (https://www.nimh.nih.gov/health) & more."
    assert ana.status == "approved" and ana.published_body == ana.body
    assert ana.email == "Ana@Example.org" and got["Anonymous"].email is None
    # The reply came before its parent in the file and is still linked to it.
    assert bo.parent_id == ana.id
    # A reply to a deleted comment stays, at the top of its article.
    assert cy.parent_id is None
    assert got["Flo"].status == "held" and got["Flo"].published_body is None
    # Dates in UTC, offsets applied.
    assert got["Anonymous"].created_at.replace(tzinfo=None).isoformat() == "2024-06-03T07:30:00"
    with service.db.session() as s:
        d = s.scalars(select(Decision).where(Decision.comment_id == ana.id)).one()
        assert (d.actor, d.action, d.from_status, d.to_status) == ("import:disqus", "import", "pending", "approved")


def test_a_second_import_imports_nothing_and_says_so(service, tmp_path):
    path = write(tmp_path, "disqus.xml", DISQUS)
    import_file(service, "disqus", path)
    again = import_file(service, "disqus", path)
    assert again.imported == 0 and again.skipped["already imported"] == 6
    assert again.lines()[0] == "imported: 0 (everything in the file was imported before)"
    assert not again.articles_created
    assert len(comments(service)) == 6


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_a_wordpress_wxr_file_of_each_version(service, tmp_path, version):
    summary = import_file(service, "wordpress", write(tmp_path, "wp.xml", WXR.format(v=version)))
    got = comments(service)
    assert set(got) == {"Ana", "Bo", "Cy", "Dee"}
    assert dict(summary.skipped) == {"marked as spam": 1, "deleted": 1, "pingback": 1, "trackback": 1}
    assert got["Ana"].slug == DEMO and got["Dee"].slug == "sleep-and-mood"
    assert summary.articles_created == ["sleep-and-mood"]  # the page without comments: none
    assert got["Ana"].body == "Thanks, NIMH (https://www.nimh.nih.gov/) agrees."
    assert got["Ana"].email == "ana@example.org" and got["Bo"].email is None
    # The GMT date where there is one; the local one (noted) where it is zeros.
    assert got["Ana"].created_at.replace(tzinfo=None).isoformat() == "2024-05-02T09:00:00"
    assert got["Cy"].created_at.replace(tzinfo=None).isoformat() == "2024-05-02T13:00:00"
    assert summary.notes["no GMT date: the site's local time taken as UTC"] == 1
    assert got["Bo"].parent_id == got["Ana"].id
    assert got["Cy"].status == "held" and got["Ana"].status == "approved"


def test_malformed_xml_names_the_line_and_a_fixed_file_resumes(service, tmp_path):
    broken = DISQUS.replace("<post dsq:id=\"8\">", "<post dsq:id=\"8\"><oops>", 1)
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "<oops>" in text)
    with pytest.raises(ImportError_) as err:
        import_file(service, "disqus", write(tmp_path, "broken.xml", broken))
    assert "malformed XML at line" in str(err.value)
    assert int(str(err.value).split("line ")[1].split(",")[0]) >= line
    before = err.value.summary
    assert before is not None and before.imported == 3  # Bo, Ana, Cy came before the error
    summary = import_file(service, "disqus", write(tmp_path, "fixed.xml", DISQUS))
    assert summary.imported == 3 and summary.skipped["already imported"] == 3
    assert len(comments(service)) == 6


def test_entities_are_not_expanded(service, tmp_path):
    bomb = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            '<disqus><post/></disqus>')
    with pytest.raises(Exception) as err:
        import_file(service, "disqus", write(tmp_path, "bomb.xml", bomb))
    assert "DTD" in type(err.value).__name__ or "DTD" in str(err.value) or "Forbidden" in type(err.value).__name__


def test_the_cli_shows_a_summary_moderates_and_exports(settings, service, tmp_path):
    spammy = DISQUS.replace("Sleep matters more than people think.",
                            "Вuу kеtаminе оnlinе, nо рrеsсriрtiоn: kеtа-shор.example")
    spammy = spammy.replace("Merci pour l'article — très clair 👍",
                            "I can't do this anymore, I am going to end my life tonight.")
    path = write(tmp_path, "disqus.xml", spammy)
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "AUTHOR_SALT": settings.author_salt, "LOG_LEVEL": "WARNING", "METRICS_DIR": ""}
    runner = CliRunner()
    first = runner.invoke(cli, ["import", "disqus", str(path), "--moderate"], env=env)
    assert first.exit_code == 0, first.output
    assert "imported: 6 (1 held for a moderator)" in first.output
    assert "skipped, deleted: 1" in first.output and "engine: checked 6" in first.output
    got = comments(service)
    assert got["Anonymous"].status == "rejected"
    assert got["Gé"].status == "held" and got["Gé"].priority == "urgent"
    assert got["Ana"].status == "approved"
    second = runner.invoke(cli, ["import", "disqus", str(path)], env=env)
    assert "imported: 0 (everything in the file was imported before)" in second.output

    out = runner.invoke(cli, ["export", "--format", "jsonl"], env=env)
    assert out.exit_code == 0
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(rows) == 6
    spam = next(r for r in rows if r["author"] == "Anonymous")
    assert {"id", "article", "status", "parent_id", "author", "created_at", "body", "decisions",
            "history"} <= set(spam)
    assert spam["created_at"] == "2024-06-03T07:30:00Z" and spam["status"] == "rejected"
    assert [d["actor"] for d in spam["decisions"]] == ["import:disqus", "engine"]
    assert spam["decisions"][1]["findings"] and "→ rejected" in spam["history"][1]
    only = runner.invoke(cli, ["export", "--article", DEMO, "--format", "csv"], env=env)
    table = list(csv.DictReader(io.StringIO(only.stdout)))
    assert {r["article"] for r in table} == {DEMO} and len(table) == 3
    bo = next(r for r in table if r["author"] == "Bo")
    assert bo["parent_id"] == got["Ana"].id and json.loads(bo["decisions"])[0]["to"] == "approved"
    missing = runner.invoke(cli, ["export", "--article", "no-such", "--format", "csv"], env=env)
    assert missing.exit_code != 0 and "no-such" in missing.output


def test_export_streams_every_article(service, tmp_path):
    import_file(service, "wordpress", write(tmp_path, "wp.xml", WXR.format(v="1.2")))
    out = io.StringIO()
    assert export(service, out, "jsonl") == 4
    slugs = [json.loads(line)["article"] for line in out.getvalue().splitlines()]
    assert sorted(set(slugs)) == sorted({DEMO, "sleep-and-mood"})
