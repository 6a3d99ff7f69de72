"""A stateful property test over two folders with clashing names: create, edit
(same size, mtime restored), rename, delete, link outside, ingest with and without
--prune, and ingests killed at a random batch. After every step the store equals
a simple model: each file's text under its folder's collection, nothing else."""

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ingest import Ingestor
from retrieval import Notebook
from tests.helpers import check_store_consistent
from tests.test_ingest_identity import hashed_embedder

SECRET = "outside secret text"
NAMES = st.sampled_from(["a.txt", "b.txt", "sub/c.txt", "sub/d.txt", "e.md"])
TEXTS = st.text(alphabet="abc xyz\n", max_size=30)
ROOT = st.sampled_from([0, 1])


class Crash(Exception):
    pass


class IngestMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="noteloom-state-"))
        self.roots = [self.tmp / "one" / "notes", self.tmp / "two" / "notes"]
        for root in self.roots:
            root.mkdir(parents=True)
        self.outside = self.tmp / "outside.md"
        self.outside.write_text(SECRET)
        self.data = self.tmp / "data"
        self.nb = Notebook(self.data, embedder=hashed_embedder)
        self.files: list[dict[str, str]] = [{}, {}]
        self.model: dict[tuple[int, str], str] = {}

    def teardown(self) -> None:
        self.nb.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _path(self, r: int, name: str) -> Path:
        return self.roots[r] / name

    @rule(r=ROOT, name=NAMES, text=TEXTS)
    def write(self, r, name, text):
        path = self._path(r, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()  # never write through a link to the outside
        path.write_text(text)
        self.files[r][name] = text

    @rule(r=ROOT, name=NAMES, data=st.data())
    def edit_same_size_same_mtime(self, r, name, data):
        if name not in self.files[r]:
            return
        old = self.files[r][name]
        text = data.draw(st.text(alphabet="pqr \n", min_size=len(old), max_size=len(old)))
        path = self._path(r, name)
        before = path.stat()
        path.write_text(text)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.files[r][name] = text

    @rule(r=ROOT, a=NAMES, b=NAMES)
    def rename(self, r, a, b):
        if a not in self.files[r] or b in self.files[r] or self._path(r, b).is_symlink():
            return
        self._path(r, b).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self._path(r, a), self._path(r, b))
        self.files[r][b] = self.files[r].pop(a)

    @rule(r=ROOT, name=NAMES)
    def delete(self, r, name):
        if name in self.files[r]:
            self._path(r, name).unlink()
            del self.files[r][name]

    @rule(r=ROOT, name=NAMES)
    def link_outside(self, r, name):
        path = self._path(r, name)
        if name in self.files[r] or path.is_symlink():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(self.outside, path)

    def _expect_ingest(self, r: int, prune: bool) -> None:
        for (root, name) in list(self.model):
            if root == r and (name in self.files[r] or prune):
                del self.model[(root, name)]
        for name, text in self.files[r].items():
            if text.strip():
                self.model[(r, name)] = text

    @rule(r=ROOT, prune=st.booleans())
    def ingest(self, r, prune):
        report = Ingestor(self.nb).ingest_paths([self.roots[r]], prune=prune)
        assert report.failed == []
        self._expect_ingest(r, prune)

    @precondition(lambda self: any(self.files))
    @rule(r=ROOT, prune=st.booleans(), after=st.integers(0, 4))
    def killed_then_finished_ingest(self, r, prune, after):
        calls = {"n": 0}

        def crashing(texts):
            calls["n"] += 1
            if calls["n"] > after:
                raise Crash()
            return hashed_embedder(texts)

        try:
            Ingestor(Notebook(self.data, embedder=crashing), batch_chunks=0).ingest_paths([self.roots[r]], prune=prune)
        except Crash:
            pass
        self.no_secret_and_consistent()
        # whatever batches were committed, every stored text is one a file had
        texts = {t for f in self.files for t in f.values()} | set(self.model.values())
        assert all(t in texts for t in self._stored().values())
        self.ingest(r, prune)

    def _stored(self) -> dict[str, str]:
        return {d["source"]: self.nb.document(d["id"])["text"] for d in self.nb.documents(limit=1000)}

    @invariant()
    def no_secret_and_consistent(self):
        check_store_consistent(self.nb)
        assert not any(SECRET in t for t in self._stored().values())

    @invariant()
    def store_equals_model(self):
        names = {c.root: c.name for c in self.nb.store.collections().values()}
        expected = {f"{names[str(self.roots[r].resolve())]}/{name}": text for (r, name), text in self.model.items()}
        assert self._stored() == expected
        assert len(set(names.values())) == len(names)


IngestMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=20, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestIngestStateful = IngestMachine.TestCase


def test_an_ingest_that_died_mid_way_is_seen_at_once_by_an_open_notebook(tmp_path):
    # The case the machine above found: a reader built its (empty) index a moment
    # ago, then another writer committed one batch and died without saving the
    # index. With no writer left holding the lock, the reader rebuilds now instead
    # of serving the stale index for STALE_REBUILD_SECONDS.
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("a.txt", "b.txt"):
        (notes / name).write_text(f"text of {name}", encoding="utf-8")
    reader = Notebook(tmp_path / "data", embedder=hashed_embedder)
    assert reader.index().count == 0
    calls = {"n": 0}

    def dies_after_one_batch(texts):
        calls["n"] += 1
        if calls["n"] > 1:
            raise Crash()
        return hashed_embedder(texts)

    try:
        Ingestor(Notebook(tmp_path / "data", embedder=dies_after_one_batch), batch_chunks=0).ingest_paths([notes])
    except Crash:
        pass
    counts = check_store_consistent(reader)
    assert reader.index().count == reader.counts().chunks >= 1, counts
