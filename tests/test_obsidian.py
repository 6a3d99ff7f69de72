"""Obsidian vaults end to end: wiki links stored as the reader sees them (offsets
exact, markup recoverable), embeds dropped, inline and front matter tags as search
filters, aliases found by lexical search, links and backlinks on GET /documents/{id},
citations that open the note (obsidian:// in a vault, file://…#L<line> elsewhere),
metadata refreshed without re-embedding, schema 2 stores migrated, links written in
the document's transaction. Real SQLite and FAISS, ingest and the HTTP app."""

import shutil
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import Ingestor, load_bytes
from ingest.obsidian import render
from retrieval import DocumentRecord, Link, Notebook
from retrieval.records import document_id
from retrieval.vault import resolve
from tests.helpers import check_store_consistent
from tests.test_backend_contract import BACKENDS, EMBED, MODEL
from tests.test_ingest_identity import hashed_embedder, write

VAULT = Path(__file__).resolve().parent.parent / "samples" / "obsidian-vault"


def restore(text: str, links) -> str:
    """The markup as written, from the stored text and its links."""
    for link in sorted(links, key=lambda l: (l.start, l.end), reverse=True):  # an embed (empty) may share a start
        text = text[: link.start] + link.raw + text[link.end :]
    return text


# --- the body as stored ------------------------------------------------------------------


def test_links_are_stored_as_shown_with_exact_offsets_and_the_markup_recoverable():
    body = "See [[A]], [[B|bee]], [[C#Part#Sub]] and [[#Local]].\n![[pic.png]] tail [[D\\|in a table]]\n"
    out = render(body)
    assert out.text == "See A, bee, C > Part > Sub and Local.\n tail in a table\n"
    shown = [(out.text[l.start:l.end], l.target, l.heading, l.embed) for l in out.links]
    assert shown == [("A", "A", None, False), ("bee", "B", None, False), ("C > Part > Sub", "C", "Part#Sub", False),
                     ("Local", "", "Local", False), ("", "pic.png", None, True), ("in a table", "D", None, False)]
    assert restore(out.text, out.links) == body


def test_code_urls_headings_and_numbers_are_neither_links_nor_tags():
    body = ("# Heading #one\n#two starts a line, x#no, `#code [[Code]]`, ``a ` [[Code2]]``\n"
            "```\n[[Fenced]] #fenced\n```\n~~~~\n#tilde\n~~~\n~~~~\nhttps://x.org/#frag [md](#anchor) #123 #a1 #nested/tag-x\n")
    out = render(body)
    assert out.links == [] and out.text == body
    assert out.tags == ["one", "two", "a1", "nested/tag-x"]


pieces = st.sampled_from(["[[", "]]", "![[", "|", "#", "\\", "`", "```", "~~~", "\n", " ", "a", "Note", "é", "#tag", "[[x]]",
                          "<!--", "-->"])


@settings(max_examples=300, deadline=None)
@given(st.lists(pieces, max_size=40).map("".join))
def test_any_body_round_trips_and_keeps_its_line_breaks(body):
    out = render(body)
    assert restore(out.text, out.links) == body
    assert out.text.count("\n") == body.count("\n")
    ends = [(l.start, l.end) for l in out.links]
    assert ends == sorted(ends) and all(a <= b for a, b in ends)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(ends, ends[1:]))


def test_nothing_in_an_html_comment_is_a_link_or_a_tag():
    # cog's markers in a README's comment were read as a wiki link, so the stored text left the file's
    body = "<!-- [[[cog\nimport x #notatag\n]]] -->\nsee [[A]] <!-- [[B]] #hidden --> and [[C]] #shown\n`<!--` [[D]]\n<!-- [[[end]]] -->\n"
    out = render(body)
    assert [l.target for l in out.links] == ["A", "C", "D"] and out.tags == ["shown"]
    assert out.text == body.replace("[[A]]", "A").replace("[[C]]", "C").replace("[[D]]", "D")
    assert all(out.text[l.start:l.end] == l.target for l in out.links)
    assert restore(out.text, out.links) == body


def test_front_matter_and_inline_tags_merge_and_aliases_are_read():
    loaded = load_bytes((VAULT / "Welcome.md").read_bytes(), "Welcome.md")
    assert loaded.tags == ["start", "meta"] and loaded.aliases == ["Home page", "Start here"]
    assert loaded.line_offset == 5 and loaded.title == "Welcome"
    body = (VAULT / "Welcome.md").read_text().split("---\n", 2)[2]
    assert restore(loaded.text, loaded.links) == body


def test_obsidian_resolution_is_case_insensitive_without_extension_shortest_path_first():
    docs = [(1, "Archive/Old/Lantern.md"), (2, "Projects/Lantern.md"), (3, "Welcome.md"), (4, "paper.pdf")]
    assert resolve("Lantern", docs) == 2 and resolve("lantern.md", docs) == 2
    assert resolve("archive/old/LANTERN", docs) == 1 and resolve("Old/Lantern", docs) == 1
    assert resolve("paper.pdf", docs) == 4 and resolve("Missing", docs) is None and resolve("ntern", docs) is None


# --- through ingest and the HTTP API ------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from litestar.testing import TestClient

    from service.app import ServiceConfig, create_app
    from service.settings import load_settings

    root = tmp_path_factory.mktemp("obsidian")
    vault = shutil.copytree(VAULT, root / "My Vault")
    plain = root / "plain"
    write(plain, "notes/ideas.md", "---\ntags: [x]\n---\n# Ideas\n\nfirst line\n\nThe windmill idea is [[Sails|about sails]].\n")
    nb = Notebook(root / "data", embedder=hashed_embedder)
    report = Ingestor(nb).ingest_paths([vault, plain])
    assert report.failed == [] and len(report.added) == 5, report.summary()
    settings = load_settings({})
    app = create_app(ServiceConfig.from_settings(settings), settings=settings, notebook=nb, warm=False)
    with TestClient(app=app) as client:
        yield client, nb, vault, plain
    nb.close()


def ids(nb):
    return {d.path: d.id for d in nb.documents()}


def test_documents_list_their_links_resolved_and_their_backlinks(served):
    client, nb, _, _ = served
    doc_ids = ids(nb)
    welcome = client.get(f"/documents/{doc_ids['Welcome.md']}").json()
    assert welcome["aliases"] == ["Home page", "Start here"] and welcome["tags"] == ["start", "meta"]
    links = [(l["text"], l["target"], l["heading"], l["embed"], l["source"]) for l in welcome["links"]]
    assert links == [
        ("Lantern", "Lantern", None, False, "My-Vault/Projects/Lantern.md"),
        ("the lantern project", "Lantern", None, False, "My-Vault/Projects/Lantern.md"),
        ("Lantern > Design", "Lantern", "Design", False, "My-Vault/Projects/Lantern.md"),
        ("Archive/Old/Lantern", "Archive/Old/Lantern", None, False, "My-Vault/Archive/Old/Lantern.md"),
        ("Tips", "", "Tips", False, "My-Vault/Welcome.md"),
        ("", "attachments/diagram.png", None, True, None),
    ]
    for link in welcome["links"]:
        assert welcome["text"][link["start"]:link["end"]] == link["text"]
    assert "[[" not in welcome["text"] .replace("`[[Not a link]]`", "").replace("[[Fenced link]]", "")
    lantern = client.get(f"/documents/{doc_ids['Projects/Lantern.md']}").json()
    back = [(b["source"], b["text"]) for b in lantern["backlinks"]]
    assert back == [("My-Vault/Daily/2026-12-01.md", "the design notes"), ("My-Vault/Welcome.md", "Lantern"),
                    ("My-Vault/Welcome.md", "the lantern project"), ("My-Vault/Welcome.md", "Lantern > Design")]
    daily = client.get(f"/documents/{doc_ids['Daily/2026-12-01.md']}").json()
    assert [(l["target"], l["doc_id"]) for l in daily["links"]] == [
        ("lantern", doc_ids["Projects/Lantern.md"]), ("welcome", doc_ids["Welcome.md"]), ("Missing note", None)]
    archived = client.get(f"/documents/{doc_ids['Archive/Old/Lantern.md']}").json()
    assert [b["text"] for b in archived["backlinks"]] == ["Archive/Old/Lantern"]


def test_inline_and_front_matter_tags_filter_search(served):
    client, _, _, _ = served
    for tag, expected in [("daily", {"My-Vault/Daily/2026-12-01.md"}), ("project/lantern", {"My-Vault/Projects/Lantern.md"}),
                          ("project", {"My-Vault/Projects/Lantern.md"}), ("start", {"My-Vault/Welcome.md"})]:
        r = client.post("/search", json={"query": "lantern diffuser notes", "k": 10, "filters": {"tags": [tag]}})
        assert r.status_code == 200, r.text
        assert {h["source"] for h in r.json()["hits"]} == expected, tag
    for tag in ("fenced-tag", "not-a-tag", "42", "section"):
        r = client.post("/search", json={"query": "lantern", "k": 10, "filters": {"tags": [tag]}})
        assert r.json()["hits"] == [], tag


def test_an_alias_finds_its_note_by_lexical_search(served):
    client, nb, _, _ = served
    assert "beacon" not in nb.document(ids(nb)["Projects/Lantern.md"]).text.lower()
    hits = client.post("/search", json={"query": "beacon", "mode": "lexical"}).json()["hits"]
    assert [h["source"] for h in hits] == ["My-Vault/Projects/Lantern.md"]
    hits = client.post("/search", json={"query": "home page", "mode": "lexical", "k": 1}).json()["hits"]
    assert hits[0]["source"] == "My-Vault/Welcome.md"


def test_citations_open_the_note_in_obsidian_inside_a_vault(served):
    client, nb, _, _ = served
    hits = client.post("/search", json={"query": "frosted glass diffuser lithium", "k": 3}).json()["hits"]
    assert hits and all(nb.document(h["doc_id"]).text[h["start"]:h["end"]] == h["text"] for h in hits)
    urls = {h["source"]: h["open_url"] for h in hits}
    assert urls["My-Vault/Projects/Lantern.md"] == "obsidian://open?vault=My%20Vault&file=Projects%2FLantern"
    answer = client.post("/ask", json={"question": "What does the lantern diffuser use?"}).json()
    assert answer["citations"], answer
    for c in answer["citations"]:
        assert c["open_url"] == "obsidian://open?vault=My%20Vault&file=" + quote(c["source"].split("/", 1)[1][:-3], safe="")


def test_citations_outside_a_vault_are_file_urls_at_the_line_in_the_file(served):
    client, _, _, plain = served
    hits = client.post("/search", json={"query": "windmill sails", "k": 1, "mode": "lexical"}).json()["hits"]
    path = plain / "notes" / "ideas.md"
    assert hits[0]["start"] == 0 and hits[0]["open_url"] == path.as_uri() + "#L4"  # after 3 lines of front matter
    assert path.read_text().splitlines()[3] == "# Ideas"


def test_a_file_url_names_the_line_of_the_cited_sentence(served):
    _, nb, _, plain = served
    doc = next(d for d in nb.documents() if d.path == "notes/ideas.md")
    text = nb.document(doc.id).text
    start = text.index("The windmill idea")
    (url,) = nb.open_urls([(doc.id, start)])
    assert url == (plain / "notes" / "ideas.md").as_uri() + "#L8"
    assert (plain / "notes" / "ideas.md").read_text().splitlines()[7].startswith("The windmill idea")


# --- ingest keeps it current -------------------------------------------------------------


def test_a_metadata_edit_is_stored_without_re_embedding(tmp_path):
    vault = shutil.copytree(VAULT, tmp_path / "vault")
    nb = Notebook(tmp_path / "data", embedder=hashed_embedder)
    Ingestor(nb).ingest_paths([vault])
    assert [h.source for h in nb.search("lantern", k=1, filters={"tags": ["project"]})] == ["vault/Projects/Lantern.md"]
    note = vault / "Projects" / "Lantern.md"
    note.write_text(note.read_text().replace("aliases:\n  - Beacon\ntags: project", "aliases: [Lighthouse]\ntags: [product]"))
    report = Ingestor(nb).ingest_paths([vault])
    assert report.chunks_embedded == 0 and report.unchanged == 4
    doc = nb.document(document_id("vault/Projects/Lantern.md"))
    assert (doc.tags, doc.aliases) == (["product", "project/lantern"], ["Lighthouse"])
    assert [h.source for h in nb.search("lighthouse", mode="lexical")] == ["vault/Projects/Lantern.md"]
    assert nb.search("beacon", mode="lexical") == []
    assert nb.search("lantern", filters={"tags": ["project"]}) == []  # no stale filter
    assert {h.source for h in nb.search("lantern", filters={"tags": ["product"]})} == {"vault/Projects/Lantern.md"}
    (vault / "Welcome.md").unlink()
    Ingestor(nb).ingest_paths([vault], prune=True)
    assert nb.links(document_id("vault/Projects/Lantern.md")).backlinks[0].source == "vault/Daily/2026-12-01.md"
    assert nb.store.db.execute("SELECT COUNT(*) FROM links WHERE doc_id=?", (document_id("vault/Welcome.md"),)).fetchone() == (0,)
    check_store_consistent(nb)


def test_a_schema_2_store_gains_links_on_the_next_ingest_without_re_embedding(tmp_path):
    vault = shutil.copytree(VAULT, tmp_path / "vault")
    data = tmp_path / "data"
    nb = Notebook(data, embedder=hashed_embedder)
    Ingestor(nb).ingest_paths([vault])
    lantern = document_id("vault/Projects/Lantern.md")
    nb.close()
    db = sqlite3.connect(data / "notes.sqlite")  # what schema 2 had: no aliases, links, line offsets or link names
    db.executescript("""
        DROP TABLE links; DROP TABLE aliases_fts;
        ALTER TABLE documents DROP COLUMN aliases; ALTER TABLE documents DROP COLUMN line_offset;
        ALTER TABLE documents DROP COLUMN meta_hash;
        DROP INDEX documents_by_link_name; ALTER TABLE documents DROP COLUMN link_name;
    """)
    db.close()
    nb = Notebook(data, embedder=hashed_embedder)
    assert nb.store.get_meta("schema") == 3 and nb.links(lantern).backlinks == []
    report = Ingestor(nb).ingest_paths([vault])
    assert report.chunks_embedded == 0 and report.unchanged == 4
    assert len(nb.links(lantern).backlinks) == 4 and nb.document(lantern).aliases == ["Beacon"]
    assert Ingestor(nb).ingest_paths([vault]).unchanged == 4
    check_store_consistent(nb)


def test_links_are_written_in_the_documents_transaction(tmp_path):
    nb = Notebook(tmp_path / "data", embedder=hashed_embedder)
    doc = DocumentRecord("n.md", "n", "markdown", "see x", "h", links=[Link(4, 5, "x", None, "[[x]]"), Link(None, 5, "y", None, "[[y]]")])
    with pytest.raises(sqlite3.IntegrityError):
        with nb.writer() as session:
            session.put([(doc, [])])
    assert nb.counts().documents == 0
    assert nb.store.db.execute("SELECT COUNT(*) FROM links").fetchone() == (0,)


# --- what every backend must do ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_stores_links_aliases_and_refreshes_metadata(name, tmp_path):
    backend = BACKENDS[name](tmp_path / "store")
    try:
        nb = Notebook(tmp_path / "store", embedder=EMBED, backend=backend, embedding_model=MODEL)
        Ingestor(nb).ingest_paths([VAULT])
        lantern, welcome = document_id("obsidian-vault/Projects/Lantern.md"), document_id("obsidian-vault/Welcome.md")
        assert [b.source for b in backend.links(lantern).backlinks] == ["obsidian-vault/Daily/2026-12-01.md"] + ["obsidian-vault/Welcome.md"] * 3
        assert [l.doc_id for l in backend.links(welcome).links] == [lantern] * 3 + [
            document_id("obsidian-vault/Archive/Old/Lantern.md"), welcome, None]
        assert backend.document(lantern).aliases == ["Beacon"] and backend.known()["obsidian-vault/Welcome.md"].meta_hash
        assert [h.source for h in nb.search("beacon", mode="lexical")] == ["obsidian-vault/Projects/Lantern.md"]
        assert {h.source for h in nb.search("lantern", k=10, filters={"tags": ["daily"]})} == {"obsidian-vault/Daily/2026-12-01.md"}
        record = DocumentRecord("obsidian-vault/Welcome.md", "Welcome", "markdown", backend.document(welcome).text, "-",
                                tags=["edited"], aliases=["Entry"], collection="obsidian-vault", path="Welcome.md")
        with backend.writer(None, embedding_model=MODEL) as session:
            session.touch(welcome, 1.0, 2, None, meta=record)
        assert (backend.document(welcome).tags, backend.document(welcome).aliases) == (["edited"], ["Entry"])
        assert backend.links(welcome).links == [] and len(backend.links(lantern).backlinks) == 1
        assert backend.known()["obsidian-vault/Welcome.md"].meta_hash == record.meta_hash
    finally:
        backend.close()


def test_a_repaired_store_keeps_aliases_and_regains_links_on_the_next_ingest(tmp_path):
    from ingest.repair import repair

    vault = shutil.copytree(VAULT, tmp_path / "vault")
    data = tmp_path / "data"
    nb = Notebook(data, embedder=hashed_embedder)
    Ingestor(nb).ingest_paths([vault])
    nb.close()
    report = repair(data, force=True, embedder=hashed_embedder)
    assert report.recovered == 4 and not report.lost
    nb = Notebook(data, embedder=hashed_embedder)
    lantern = document_id("vault/Projects/Lantern.md")
    assert nb.document(lantern).aliases == ["Beacon"] and nb.links(lantern).backlinks == []
    again = Ingestor(nb).ingest_paths([vault])
    assert again.chunks_embedded == 0 and len(nb.links(lantern).backlinks) == 4
    check_store_consistent(nb)
