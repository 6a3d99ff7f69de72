import numpy as np

from retrieval.store import ChunkRecord, DocumentRecord, Store, chunk_id


def test_common_words_are_left_out_of_large_lexical_queries(tmp_path):
    store = Store(tmp_path / "s.sqlite", common_min_chunks=10)
    texts = [f"we use the tool number {i} here" for i in range(40)] + ["use the zebra separator for headings"]
    with store.transaction() as db:
        for i, text in enumerate(texts):
            doc = DocumentRecord(f"d{i}.md", "t", "text", text, str(i))
            store.replace_document(db, doc, [ChunkRecord(chunk_id(doc.source, str(i), 0, len(text)), 0, 0, len(text), 8, [], text,
                                                         np.ones(4, dtype=np.float32))])
    assert store.common_terms(["use", "zebra", "using"]) == {"use", "using"}  # "using" stems to "us" as well
    hits = store.lexical("use zebra", k=3)
    assert len(hits) == 1 and store.chunks([hits[0][0]])[hits[0][0]]["text"].startswith("use the zebra")
    # only common words: the query keeps them rather than matching nothing
    assert len(store.lexical("use", k=5)) == 5
    small = Store(tmp_path / "s.sqlite", common_min_chunks=10_000)
    assert small.common_terms(["use", "zebra"]) == set()  # small collections are never pruned
