"""Published-table loaders: counts, identities, the packaged copies (byte-identical to shared/data) and CSV/Parquet reading.

Expected counts come from /work/shared/data/README.md (and the papers it cites): 245 Chinchilla
points, 5 dropped by Besiroglu et al. 2024 (arXiv:2404.10102); 182 datablations runs (Muennighoff
et al. 2023, arXiv:2305.16264); 1,745 isoFLOP points in 15 settings (Porian et al. 2024,
arXiv:2406.19146).
"""

import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pytest

from learnmech.data import tables
from learnmech.data.tables import (
    PORIAN_KEYS,
    load_chinchilla,
    load_datablations,
    load_porian,
    porian_settings,
    read_table,
    tables_dir,
)


@pytest.fixture(scope="module")
def settings():
    return porian_settings()


def test_chinchilla_counts_and_tokens():
    full, kept = load_chinchilla(drop_highest=0), load_chinchilla()
    assert full["n"].size == 245 and kept["n"].size == 240
    # D = C / (6 N): the tokens column is defined by this identity (float64 round-off only)
    np.testing.assert_allclose(kept["d"] * 6.0 * kept["n"], kept["flops"], rtol=1e-12)
    # the dropped points are exactly the five highest losses
    assert np.sort(full["loss"])[-5:].min() > kept["loss"].max()
    assert set(kept) == {"n", "d", "flops", "loss"}


def test_chinchilla_rejects_negative_drop():
    with pytest.raises(ValueError, match="drop_highest"):
        load_chinchilla(drop_highest=-1)


def test_datablations_counts():
    t = load_datablations()
    assert {k: v.size for k, v in t.items()} == dict.fromkeys(("n", "d", "u", "loss", "name"), 182)
    assert np.all(t["u"] <= t["d"] * (1 + 1e-12))  # unique tokens never exceed total tokens
    assert np.all((t["loss"] > 1.0) & (t["loss"] < 10.0))


def test_porian_counts(settings):
    table = load_porian()
    assert table["n"].size == 1745
    assert len(settings) == 15
    assert sum(s["n"].size for s in settings) == 1745
    assert len({tuple(s[k] for k in PORIAN_KEYS) for s in settings}) == 15
    for s in settings:
        assert s["budgets"].size in (11, 12)
        assert s["n_star_published"].shape == s["budgets"].shape
        assert set(np.unique(s["flops"])) == set(s["budgets"])
        np.testing.assert_allclose(s["d"] * 6.0 * s["n"], s["flops"], rtol=1e-9)  # D = C / (6N)
    # budgets the authors could not place (minimum on the edge of the grid): 1 + 2 + 1 of them
    missing = sum(int(np.isnan(s["n_star_published"]).sum()) for s in settings)
    assert missing == 4


def test_tables_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNMECH_TABLES", str(tmp_path))
    assert tables_dir() == tmp_path
    monkeypatch.setenv("LEARNMECH_TABLES", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="LEARNMECH_TABLES"):
        tables_dir()


def test_the_tables_are_packaged_with_their_licences_and_sources(monkeypatch):
    monkeypatch.delenv("LEARNMECH_TABLES", raising=False)
    found = tables_dir()
    assert found == Path(tables.__file__).with_name("published")
    names = {"chinchilla_svg_extracted_data.csv", "datablations_c4_runs_182.csv", "porian2024_isoflop_points.csv",
             "datablations_LICENSE.md", "porian2024_LICENSE.txt", "SOURCES.md"}
    assert {p.name for p in found.iterdir()} == names
    sources = (found / "SOURCES.md").read_text()
    assert all(paper in sources for paper in ("arXiv:2404.10102", "arXiv:2305.16264", "arXiv:2406.19146"))


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # the project's originals, beside the checkout


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared/data beside this checkout to compare with")
def test_the_packaged_tables_are_byte_identical_to_the_originals(monkeypatch):
    monkeypatch.delenv("LEARNMECH_TABLES", raising=False)
    for original in sorted(SHARED.iterdir()):
        if original.name == "README.md":
            continue  # the packaged sources note (SOURCES.md) stands for it
        packaged = tables_dir() / original.name
        assert hashlib.sha256(packaged.read_bytes()).hexdigest() == hashlib.sha256(original.read_bytes()).hexdigest()


def test_read_table_parquet_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    cols = {"n": rng.uniform(1e6, 1e9, 17), "loss": rng.uniform(2.0, 4.0, 17)}
    csv = tmp_path / "points.csv"
    np.savetxt(csv, np.stack([cols["n"], cols["loss"]], 1), delimiter=",", header="n,loss",
               comments="", fmt="%.17g")
    pq = tmp_path / "points.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv_auto('{csv}')) TO '{pq}' (FORMAT PARQUET)")
    con.close()
    from_csv, from_pq = read_table(csv), read_table(pq)
    for name, values in cols.items():
        np.testing.assert_array_equal(from_csv[name], values)  # %.17g round-trips float64 exactly
        np.testing.assert_array_equal(from_pq[name], values)


def test_read_table_shared_csv_through_parquet(tmp_path):
    src = tables_dir() / "chinchilla_svg_extracted_data.csv"
    pq = tmp_path / "chinchilla.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv_auto('{src}')) TO '{pq}' (FORMAT PARQUET)")
    con.close()
    a, b = read_table(src), read_table(pq)
    assert list(a) == list(b) and a["loss"].size == 245
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_read_table_errors(tmp_path):
    with pytest.raises(ValueError, match="^file: .*extension"):
        read_table(tmp_path / "points.xlsx")
    with pytest.raises(ValueError, match="^file: .*does not exist"):
        read_table(tmp_path / "absent.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    with pytest.raises(ValueError, match="^file: .*could not be read"):
        read_table(bad)
