"""Byte-level text corpora (learnmech.data.text): file selection, split, hash, windows, errors.

Every expected value is recomputed here independently (hashlib over bytes re-read from disk, a
Python loop for windows, log2(e) for bits per byte); byte comparisons are exact.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from learnmech.data import text


EXCLUDED = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}  # from the spec


def _touch(root: Path, relative: str, body: bytes = b"x = 1\n") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)


def _reference_split(root: Path, files) -> tuple[bytes, bytes]:
    """Train and validation bytes rebuilt from disk: file i validates when i % 10 == 9."""
    contents = [(root / f).read_bytes() for f in files]
    train = b"\n".join(c for i, c in enumerate(contents) if i % 10 != 9)
    validation = b"\n".join(c for i, c in enumerate(contents) if i % 10 == 9)
    return train, validation


# --- file selection --------------------------------------------------------------------------------

def test_source_files_exclusions_on_a_small_tree(tmp_path):
    kept = ["a.py", "pkg/__init__.py", "pkg/contest.py", "pkg/sub/b.py", "pkg/testing.py", "z/test.py"]
    left_out = [
        "test/x.py", "pkg/tests/y.py", "pkg/idle_test/z.py", "site-packages/m.py",
        "lib/dist-packages/m.py", "__pycache__/c.py", "pkg/test_foo.py", "test_top.py", "pkg/notes.txt",
    ]
    for relative in kept + left_out:
        _touch(tmp_path, relative)
    os.symlink(tmp_path / "a.py", tmp_path / "link.py")  # linked file: skipped
    os.symlink(tmp_path / "pkg", tmp_path / "linkdir")  # linked directory: not followed
    assert text.source_files(tmp_path) == tuple(sorted(kept))


def test_stdlib_corpus_files_split_and_hash():
    corpus = text.stdlib_corpus()
    root = Path(sysconfig.get_paths()["stdlib"])
    files = corpus.files
    assert corpus.train.size > 1_000_000  # the 3.11 standard library is ~12 MB; builds differ
    assert list(files) == sorted(files) and len(set(files)) == len(files)
    for f in files:
        parts = f.split("/")
        assert f.endswith(".py") and not parts[-1].startswith("test_"), f
        assert not set(parts[:-1]) & EXCLUDED, f
    assert corpus.validation_files == files[9::10]  # every 10th file of the sorted list
    assert not set(corpus.validation_files) & set(files[i] for i in range(len(files)) if i % 10 != 9)
    train, validation = _reference_split(root, files)  # re-read from disk, joined with b"\n"
    assert corpus.train.tobytes() == train and corpus.validation.tobytes() == validation
    assert corpus.sha256 == hashlib.sha256(train + validation).hexdigest()
    assert text.stdlib_corpus() is corpus and text.load_corpus(None) is corpus  # cached per process
    assert not corpus.train.flags.writeable and not corpus.validation.flags.writeable


def test_stdlib_describe_is_json_and_complete():
    corpus = text.stdlib_corpus()
    record = json.loads(json.dumps(corpus.describe()))
    assert record["source"] == "stdlib" and record["sha256"] == corpus.sha256
    assert record["n_files"] == len(corpus.files) == len(record["files"])
    assert record["validation_files"] == list(corpus.validation_files)
    assert record["train_bytes"] + record["validation_bytes"] == corpus.train.size + corpus.validation.size


def test_tree_split_is_by_file_and_disjoint(tmp_path):
    for i in range(23):  # 23 files: indices 9 and 19 validate
        _touch(tmp_path, f"m{i:02d}.py", f"value_{i:02d} = {i}\n".encode())
    corpus = text._tree_corpus(tmp_path, "tree", "tree")
    assert corpus.validation_files == ("m09.py", "m19.py")
    assert corpus.validation.tobytes() == b"value_09 = 9\n\nvalue_19 = 19\n"
    train = corpus.train.tobytes()
    assert b"value_09" not in train and b"value_19" not in train and train.count(b"value_") == 21
    assert corpus.sha256 == hashlib.sha256(train + corpus.validation.tobytes()).hexdigest()


# --- a user's file ---------------------------------------------------------------------------------

def test_user_file_round_trips(tmp_path):
    body = ("naïve café, λ-calculus\n" * 200).encode()  # multi-byte UTF-8: 26 bytes a line, 5,200 bytes
    path = tmp_path / "story.txt"
    path.write_bytes(body)
    corpus = text.text_corpus(path, seq_len=16)
    n_val = max(math.ceil(len(body) / 10), 2 * 17)  # last tenth, at least two windows of 17
    assert corpus.validation.size == n_val == 520
    assert corpus.train.tobytes() == body[:-n_val] and corpus.validation.tobytes() == body[-n_val:]
    assert corpus.sha256 == hashlib.sha256(body).hexdigest()  # train then validation = the file
    record = json.loads(json.dumps(corpus.describe()))
    assert record["path"] == str(path.absolute()) and record["n_files"] == 1
    assert text.load_corpus(str(path), seq_len=16).sha256 == corpus.sha256


def test_small_file_takes_two_windows_of_validation(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_bytes(b"ab" * 20)  # 40 bytes, seq_len 4: windows of 5, minimum 4 x 5 = 20 bytes
    corpus = text.text_corpus(path, seq_len=4)
    assert corpus.validation.size == 10 and corpus.train.size == 30  # ceil(40/10) = 4 < 2 windows = 10


def _bad(tmp_path, name: str, body: bytes | None) -> Path:
    path = tmp_path / name
    if body is not None:
        path.write_bytes(body)
    return path


@pytest.mark.parametrize(
    "name, body, words",
    [
        ("missing.txt", None, "not found"),
        ("empty.txt", b"", "empty"),
        ("nul.txt", b"hello\n" * 50 + b"\x00" + b"bye\n" * 50, "NUL"),
        ("latin1.txt", b"caf\xe9 " * 100, "not UTF-8"),
        ("small.txt", b"x" * (4 * 65 - 1), "at least 260"),
    ],
)
def test_bad_files_raise_one_line_corpus_error(tmp_path, name, body, words):
    path = _bad(tmp_path, name, body)
    with pytest.raises(text.CorpusError) as info:
        text.text_corpus(path)  # seq_len 64: needs 4 windows of 65 bytes
    message = str(info.value)
    assert message.startswith("corpus:") and str(path) in message and words in message
    assert "\n" not in message and isinstance(info.value, ValueError)


def test_directory_and_oversized_files_are_refused(tmp_path, monkeypatch):
    with pytest.raises(text.CorpusError, match="is a directory"):
        text.load_corpus(tmp_path)
    path = _bad(tmp_path, "big.txt", b"y" * 400)
    monkeypatch.setattr(text, "MAX_CORPUS_BYTES", 399)  # stands in for the 1 GiB limit
    with pytest.raises(text.CorpusError, match="400 bytes; at most 399"):
        text.text_corpus(path)


def test_utf8_check_reads_the_first_mib_and_nul_everywhere(tmp_path):
    mib = 2**20
    cut = b"a" * (mib - 1) + "é".encode() + b"b" * 1000  # a 2-byte character across the 1 MiB mark
    assert text.text_corpus(_bad(tmp_path, "cut.txt", cut)).train.size > 0
    late_nul = b"a" * (mib + 10) + b"\x00" + b"b" * 10
    with pytest.raises(text.CorpusError, match=f"offset {mib + 10}"):
        text.text_corpus(_bad(tmp_path, "late.txt", late_nul))


# --- windows and units -----------------------------------------------------------------------------

@pytest.mark.parametrize("n, seq_len, offset", [(100, 9, 0), (100, 9, 3), (101, 4, 1), (7, 6, 0)])
def test_windows_match_a_slicing_loop(n, seq_len, offset):
    tokens = (np.arange(n) * 37 % 256).astype(np.uint8)
    got = text.windows(tokens, seq_len, offset)
    stride = seq_len + 1
    expected = []
    start = offset
    while start + stride <= n:  # reference: consecutive slices of seq_len + 1
        expected.append(tokens[start:start + stride])
        start += stride
    assert got.dtype == np.uint8 and got.shape == ((n - offset) // stride, stride)
    np.testing.assert_array_equal(got, np.stack(expected))
    assert np.shares_memory(got, tokens)  # a view, no copy


def test_windows_bad_input():
    tokens = np.zeros(10, np.uint8)
    with pytest.raises(ValueError, match="seq_len"):
        text.windows(tokens, 10)  # needs 11 tokens
    with pytest.raises(ValueError, match="seq_len"):
        text.windows(tokens, 0)
    with pytest.raises(ValueError, match="uint8"):
        text.windows(np.zeros(10, np.int32), 3)
    with pytest.raises(ValueError, match="offset"):
        text.windows(tokens, 3, 10)


def test_bits_per_byte():
    assert text.bits_per_byte(1.0) == pytest.approx(math.log2(math.e), rel=1e-15)
    assert text.bits_per_byte(math.log(256)) == pytest.approx(8.0, rel=1e-15)  # uniform over bytes
    np.testing.assert_allclose(text.bits_per_byte([0.0, math.log(2)]), [0.0, 1.0], rtol=1e-15)
