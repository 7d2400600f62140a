"""Byte-level text corpora: the running interpreter's standard library, or a user's text file.

Contract (every corpus obeys it):

- Tokens are raw bytes: a 1-D ``np.uint8`` array, vocabulary 256, no tokenizer. A loss in nats per
  token is therefore a loss per byte, and :func:`bits_per_byte` is ``loss / ln 2``.
- A :class:`Corpus` holds two disjoint, read-only byte arrays, ``train`` and ``validation``, and
  ``sha256`` = SHA-256 of the bytes of ``train`` followed by the bytes of ``validation``, exactly as
  used (so two runs that agree on ``sha256`` trained and validated on the same bytes).
- Nothing here downloads; nothing is random. The split is a pure function of the files.

The standard-library corpus (:func:`stdlib_corpus`): every ``*.py`` file under
``sysconfig.get_paths()["stdlib"]``, found recursively without following symbolic links (links to
files are skipped too), leaving out any path with a directory named ``test``, ``tests``,
``idle_test``, ``site-packages``, ``dist-packages`` or ``__pycache__`` and any file named
``test_*.py``. The files are sorted by relative POSIX path; file ``i`` of that list goes to
validation when ``i % 10 == 9`` and to train otherwise (a split by file, so no source file is
partly in both). Each side is its files' bytes joined with one ``b"\\n"`` between consecutive files.
Its size depends on the Python build (about 13 MB for CPython 3.11).

A user's file (:func:`text_corpus`): UTF-8 text without NUL bytes, at most
:data:`MAX_CORPUS_BYTES` (1 GiB, a bound on memory). The last tenth of its bytes (rounded up, and
at least two windows of ``seq_len + 1`` bytes) is validation, the bytes before it train; train must
also hold two windows.

Windows (:func:`windows`): non-overlapping runs of ``seq_len + 1`` bytes, inputs ``w[:, :-1]``,
next-byte targets ``w[:, 1:]``.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import hashlib
import math
import os
import stat
import sys
import sysconfig
from pathlib import Path

import numpy as np

__all__ = [
    "bits_per_byte",
    "Corpus",
    "CorpusError",
    "EXCLUDED_DIRS",
    "load_corpus",
    "MAX_CORPUS_BYTES",
    "source_files",
    "stdlib_corpus",
    "text_corpus",
    "VALIDATION_EVERY",
    "windows", "SHA_DIGITS", "corpus_scalars", "unigram_entropy"]

EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
VALIDATION_EVERY = 10  # file i of the sorted list is validation when i % 10 == 9
FILE_SEPARATOR = b"\n"  # written between consecutive files of one split
MAX_CORPUS_BYTES = 2**30  # 1 GiB: a user's file larger than this is refused (memory bound)
UTF8_CHECK_BYTES = 2**20  # the first 1 MiB of a user's file must decode as UTF-8
DEFAULT_SEQ_LEN = 64  # the TransformerConfig default context length
_LN2 = math.log(2.0)


class CorpusError(ValueError):
    """A corpus that cannot be used: missing, a directory, empty, binary, too small or too large."""


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
    """A byte-level corpus split into disjoint train and validation byte arrays.

    Attributes:
      name: short label ("stdlib" or the file name).
      files: relative POSIX paths of the files read, in the order read (sorted for the stdlib).
      train: (n_train,) read-only uint8 bytes.
      validation: (n_validation,) read-only uint8 bytes.
      sha256: hex SHA-256 of ``train.tobytes() + validation.tobytes()``.
      validation_files: the files (from ``files``) whose bytes form ``validation``; empty for a
        user's file, whose validation is its last bytes (see ``split``).
      source: "stdlib", or the absolute path of the user's file.
      root: the directory the ``files`` are relative to.
      split: one line stating how train and validation were cut.
    """

    name: str
    files: tuple[str, ...]
    train: np.ndarray
    validation: np.ndarray
    sha256: str
    validation_files: tuple[str, ...]
    source: str
    root: str = ""
    split: str = ""

    def describe(self) -> dict:
        """A JSON-able record of exactly which bytes this corpus holds (stored with every run)."""
        record = {
            "name": self.name,
            "source": self.source,
            "root": self.root,
            "sha256": self.sha256,
            "sha256_of": "train bytes then validation bytes, as used",
            "split": self.split,
            "n_files": len(self.files),
            "train_bytes": int(self.train.size),
            "validation_bytes": int(self.validation.size),
        }
        if self.source == "stdlib":
            record["python"] = sys.version.split()[0]
            record["validation_files"] = list(self.validation_files)
            record["files"] = list(self.files)
        else:
            record["path"] = self.source
        return record


def _excluded(relative: Path) -> bool:
    """True when a path under the root is left out: an excluded directory, or a test_*.py file."""
    return any(part in EXCLUDED_DIRS for part in relative.parts[:-1]) or relative.name.startswith("test_")


def source_files(root) -> tuple[str, ...]:
    """The ``*.py`` files under ``root`` that form a source corpus, as sorted relative POSIX paths.

    Walks ``root`` without following symbolic links (linked files are skipped as well); leaves out
    paths through :data:`EXCLUDED_DIRS` and files named ``test_*.py``. Sorting is by the relative
    POSIX path string, so the order does not depend on the file system.
    """
    root = Path(root)
    found = []
    for directory, subdirs, names in os.walk(root, followlinks=False):
        subdirs[:] = [d for d in subdirs if d not in EXCLUDED_DIRS]  # prune excluded trees early
        for name in names:
            path = Path(directory) / name
            if not name.endswith(".py") or path.is_symlink() or not path.is_file():
                continue
            relative = path.relative_to(root)
            if not _excluded(relative):
                found.append(relative.as_posix())
    return tuple(sorted(found))


def _digest(train: np.ndarray, validation: np.ndarray) -> str:
    """hex SHA-256 of the train bytes followed by the validation bytes."""
    h = hashlib.sha256()
    h.update(memoryview(train))
    h.update(memoryview(validation))
    return h.hexdigest()


def _read_only(data: bytes) -> np.ndarray:
    """bytes -> (n,) uint8 array that cannot be written (a view of the immutable bytes)."""
    return np.frombuffer(data, dtype=np.uint8)


def _tree_corpus(root, name: str, source: str) -> Corpus:
    """The corpus of :func:`source_files` under ``root``, split by file (``i % 10 == 9`` validates)."""
    root = Path(root)
    files = source_files(root)
    if len(files) < VALIDATION_EVERY:
        raise CorpusError(
            f"corpus: {root} holds {len(files)} Python source files; at least {VALIDATION_EVERY} are needed"
        )
    contents = [(root / f).read_bytes() for f in files]
    is_validation = [i % VALIDATION_EVERY == VALIDATION_EVERY - 1 for i in range(len(files))]
    train = _read_only(FILE_SEPARATOR.join(c for c, v in zip(contents, is_validation) if not v))
    validation = _read_only(FILE_SEPARATOR.join(c for c, v in zip(contents, is_validation) if v))
    return Corpus(
        name=name,
        files=files,
        train=train,
        validation=validation,
        sha256=_digest(train, validation),
        validation_files=tuple(f for f, v in zip(files, is_validation) if v),
        source=source,
        root=root.as_posix(),
        split=f"by file: sorted file i is validation when i % {VALIDATION_EVERY} == {VALIDATION_EVERY - 1}; "
        "files joined with b'\\n'",
    )


@functools.cache
def stdlib_corpus() -> Corpus:
    """The running interpreter's standard-library Python sources as a byte corpus (cached per process).

    Files: see the module docstring (``*.py`` under ``sysconfig.get_paths()["stdlib"]``, tests and
    site-packages left out, sorted; every 10th file validation). ``describe()`` records the Python
    version and the full file lists, since the bytes differ between Python builds.
    """
    return _tree_corpus(sysconfig.get_paths()["stdlib"], "stdlib", "stdlib")


def _check_seq_len(seq_len) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    return int(seq_len)


def _file_size(path: Path) -> int:
    """Size in bytes of a regular file, or a CorpusError naming why it is not one."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CorpusError(f"corpus: file not found: {path}") from None
    except OSError as err:
        raise CorpusError(f"corpus: cannot read {path}: {err.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise CorpusError(f"corpus: {path} is a directory; give a text file")
    if not stat.S_ISREG(info.st_mode):
        raise CorpusError(f"corpus: {path} is not a regular file")
    if info.st_size == 0:
        raise CorpusError(f"corpus: {path} is empty")
    if info.st_size > MAX_CORPUS_BYTES:
        raise CorpusError(
            f"corpus: {path} has {info.st_size} bytes; at most {MAX_CORPUS_BYTES} (1 GiB) are allowed"
        )
    return info.st_size


def _check_text(data: bytes, path: Path) -> None:
    """Refuse binary data: any NUL byte, or a first MiB that is not valid UTF-8."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(f"corpus: {path} is binary (NUL byte at offset {nul}); give a UTF-8 text file")
    head = data[:UTF8_CHECK_BYTES]
    try:  # final=False: a character cut at the 1 MiB boundary is not an error
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) == len(data))
    except UnicodeDecodeError as err:
        raise CorpusError(f"corpus: {path} is not UTF-8 text (invalid byte at offset {err.start})") from None


def _validation_size(n: int, seq_len: int) -> int:
    """Bytes at the end that validate: ceil(n / 10), and at least two windows of seq_len + 1."""
    return max(-(-n // VALIDATION_EVERY), 2 * (seq_len + 1))


def text_corpus(path, *, seq_len: int = DEFAULT_SEQ_LEN) -> Corpus:
    """A user's UTF-8 text file as a byte corpus: the last tenth validates, the rest trains.

    Split: ``n_val = max(ceil(n / 10), 2 (seq_len + 1))`` final bytes are validation, the first
    ``n - n_val`` train; both must hold at least two windows of ``seq_len + 1`` bytes, so the file
    needs at least ``4 (seq_len + 1)`` bytes. Raises :class:`CorpusError` (one line naming "corpus"
    and the path) for a missing file, a directory, an empty, binary (NUL anywhere, or invalid UTF-8
    in the first MiB), too small or too large (> :data:`MAX_CORPUS_BYTES`) file.
    """
    seq_len = _check_seq_len(seq_len)
    path = Path(os.fspath(path)).expanduser().absolute()
    size = _file_size(path)
    need = 4 * (seq_len + 1)
    if size < need:
        raise CorpusError(
            f"corpus: {path} has {size} bytes; at least {need} are needed "
            f"(two windows of seq_len + 1 = {seq_len + 1} bytes each for train and validation)"
        )
    data = path.read_bytes()
    _check_text(data, path)
    tokens = _read_only(data)  # (n,)
    n_train = tokens.size - _validation_size(tokens.size, seq_len)
    train, validation = tokens[:n_train], tokens[n_train:]
    return Corpus(
        name=path.name,
        files=(path.name,),
        train=train,
        validation=validation,
        sha256=_digest(train, validation),
        validation_files=(),
        source=path.as_posix(),
        root=path.parent.as_posix(),
        split=f"by bytes: the last {validation.size} of {tokens.size} bytes "
        f"(max(ceil(n/10), 2 windows of {seq_len + 1})) are validation",
    )


def load_corpus(path=None, *, seq_len: int = DEFAULT_SEQ_LEN) -> Corpus:
    """The corpus a run asks for: :func:`stdlib_corpus` when ``path`` is None, else :func:`text_corpus`.

    ``seq_len`` sets the minimum size of a user's file (two windows each side); the standard
    library is far larger than any window, and is checked the same way.
    """
    if path is None:
        seq_len = _check_seq_len(seq_len)
        corpus = stdlib_corpus()
        if min(corpus.train.size, corpus.validation.size) < 2 * (seq_len + 1):
            raise ValueError(f"seq_len {seq_len} is too long for the stdlib corpus (two windows each side)")
        return corpus
    return text_corpus(path, seq_len=seq_len)


def windows(tokens, seq_len: int, offset: int = 0) -> np.ndarray:
    """Non-overlapping windows of ``seq_len + 1`` tokens: ``w[i] = tokens[o + i s : o + (i + 1) s]``.

    With stride ``s = seq_len + 1`` and ``o = offset``, there are ``n = (len - o) // s`` windows; the
    tail that does not fill one is dropped. Inputs are ``w[:, :-1]``, next-token targets
    ``w[:, 1:]``. Returns an (n, seq_len + 1) uint8 view of ``tokens`` (no copy).
    """
    seq_len = _check_seq_len(seq_len)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.dtype != np.uint8:
        raise ValueError(f"tokens must be a 1-D uint8 array, got shape {tokens.shape}, dtype {tokens.dtype}")
    integer = isinstance(offset, (int, np.integer)) and not isinstance(offset, bool)
    if not integer or not 0 <= offset < max(tokens.size, 1):
        raise ValueError(f"offset must be an integer in [0, {tokens.size}), got {offset!r}")
    stride = seq_len + 1
    n = (tokens.size - int(offset)) // stride
    if n < 1:
        raise ValueError(
            f"seq_len {seq_len} is too long: {tokens.size - int(offset)} tokens after offset {offset} "
            f"hold no window of seq_len + 1 = {stride}"
        )
    return tokens[int(offset): int(offset) + n * stride].reshape(n, stride)  # (n, seq_len + 1)


def bits_per_byte(nats):
    """Convert a byte-level loss from nats per token to bits per byte: ``bpb = nats / ln 2``.

    One token is one byte here, so no tokens-per-byte factor appears. Scalars give a float, arrays
    an array of float64.
    """
    if np.ndim(nats) == 0:
        return float(nats) / _LN2
    return np.asarray(nats, dtype=np.float64) / _LN2


SHA_DIGITS = 12  # hex digits of the corpus hash stored as a number: 48 bits, exact in a float64


def unigram_entropy(tokens) -> float:
    """``H_1 = -sum_b p_b ln p_b`` in nats, ``p_b`` the frequency of byte ``b`` in ``tokens`` (1-D uint8; ``0 ln 0 = 0``).

    The cross-entropy of the best model that ignores the context, on the same bytes: a language model whose
    held-out loss is below it has learned more than byte frequencies.

    >>> round(unigram_entropy(np.array([0, 1, 0, 1], np.uint8)), 6)  # ln 2
    0.693147
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.dtype != np.uint8 or tokens.size == 0:
        raise ValueError(f"tokens: must be a non-empty 1-D uint8 array, got {tokens.dtype} {tokens.shape}")
    counts = np.bincount(tokens, minlength=256).astype(np.float64)  # (256,)
    p = counts[counts > 0] / tokens.size
    return float(-np.sum(p * np.log(p)))


def corpus_scalars(corpus: Corpus) -> dict[str, float]:
    """The corpus as numbers a run can store: train / validation bytes, file count, the first :data:`SHA_DIGITS`
    hex digits of its SHA-256 as an integer, and the unigram entropy of its training bytes (nats)."""
    return {"train_bytes": float(corpus.train.size), "validation_bytes": float(corpus.validation.size),
            "n_files": float(len(corpus.files)), "sha256_prefix": float(int(corpus.sha256[:SHA_DIGITS], 16)),
            "unigram_entropy": unigram_entropy(corpus.train)}
