"""MovieLens loader: the real latest-small files against a csv-module parse, each variant's
file format on small files written here in GroupLens's layout, path/env/cache resolution,
and the download path (real urllib on file:// URLs, real zip archives, real MD5 checks)."""

from __future__ import annotations

import csv
import hashlib
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from rerank import datasets
from rerank.datasets import movielens


@pytest.fixture(autouse=True)
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.ENV_DIR, raising=False)
    monkeypatch.setenv(datasets.ENV_CACHE, str(tmp_path / "default-cache"))


# ------------------------------------------------------------------ the real files
@pytest.mark.movielens
def test_latest_small_matches_csv_module_parse(movielens_dir):
    ratings, cats = movielens("latest-small", movielens_dir)
    with open(movielens_dir / "ratings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(ratings) == len(rows)
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    for pos in (0, 1, len(rows) // 2, len(rows) - 1):
        r = rows[pos]
        want = [int(r["userId"]), int(r["movieId"]), float(r["rating"]), int(r["timestamp"])]
        assert ratings.iloc[pos].tolist() == want
    assert ratings["rating"].sum() == pytest.approx(sum(float(r["rating"]) for r in rows))
    expected = set()
    with open(movielens_dir / "movies.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            for g in r["genres"].split("|"):
                if g != "(no genres listed)":
                    expected.add((int(r["movieId"]), g))
    assert set(zip(cats["item_id"], cats["category"], strict=True)) == expected
    assert len(cats) == len(expected)
    assert "(no genres listed)" not in set(cats["category"])


# ------------------------------------------------------------------ synthetic files
def write_latest(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,10,4.5,100\n1,20,3.0,200\n2,10,5.0,300\n"
    )
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n10,"Heat, The (1995)",Action|Crime|Thriller\n'
        "20,Nothing (2000),(no genres listed)\n30,Toy (1995),Animation\n"
    )
    return folder


def write_100k(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
              "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
              "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    flags_242 = ["0"] * 19
    flags_242[genres.index("Comedy")] = "1"
    flags_242[genres.index("Romance")] = "1"
    flags_302 = ["0"] * 19
    flags_302[0] = "1"  # only the "unknown" flag: no category
    (folder / "u.item").write_bytes(
        ("242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(flags_242) + "\n"
         "302|L.A. Caf\xe9 (1997)|01-Jan-1997||http://y|" + "|".join(flags_302) + "\n").encode("latin-1")
    )
    return folder


def write_1m(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n2::1357::4::978298709\n")
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "1357::Shine (1996)::Drama|Romance\n2000::Am\xe9lie (2001)::Comedy|Romance\n".encode("latin-1")
    )
    return folder


def pairs(cats):
    return sorted(zip(cats["item_id"].tolist(), cats["category"].tolist(), strict=True))


def test_csv_layout(tmp_path):
    ratings, cats = movielens("25m", write_latest(tmp_path / "ml-25m"))
    assert ratings.values.tolist() == [[1, 10, 4.5, 100], [1, 20, 3.0, 200], [2, 10, 5.0, 300]]
    assert ratings.dtypes.tolist() == ["int64", "int64", "float64", "int64"]
    assert pairs(cats) == [(10, "Action"), (10, "Crime"), (10, "Thriller"), (30, "Animation")]


def test_100k_layout(tmp_path):
    ratings, cats = movielens("100k", write_100k(tmp_path / "ml-100k"))
    assert ratings.values.tolist() == [[196, 242, 3.0, 881250949], [186, 302, 3.0, 891717742]]
    assert pairs(cats) == [(242, "Comedy"), (242, "Romance")]


def test_1m_layout(tmp_path):
    ratings, cats = movielens("1m", write_1m(tmp_path / "ml-1m"))
    assert ratings.values.tolist() == [[1, 1193, 5.0, 978300760], [2, 1357, 4.0, 978298709]]
    assert pairs(cats) == [(1193, "Drama"), (1357, "Drama"), (1357, "Romance"), (2000, "Comedy"), (2000, "Romance")]


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, f"{folder.name}/{file.name}")
    return archive


def test_path_forms_and_env_variable(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_1m(root / "ml-1m")
    expected = movielens("1m", root / "ml-1m").ratings
    # The parent folder, the zip archive, and the parent holding only the zip all work.
    pd.testing.assert_frame_equal(movielens("1m", root).ratings, expected)
    archive = zip_folder(root / "ml-1m", tmp_path / "ml-1m.zip")
    pd.testing.assert_frame_equal(movielens("1m", archive).ratings, expected)
    pd.testing.assert_frame_equal(movielens("1m", tmp_path).ratings, expected)
    monkeypatch.setenv(datasets.ENV_DIR, str(root))
    pd.testing.assert_frame_equal(movielens("1m", download=False).ratings, expected)
    with pytest.raises(FileNotFoundError, match=r"ml-100k\.zip.*RERANK_MOVIELENS_DIR"):
        movielens("100k", download=False)
    with pytest.raises(FileNotFoundError, match="holds no MovieLens 20m files"):
        movielens("20m", root)
    with pytest.raises(ValueError, match="unknown MovieLens variant '10k'"):
        movielens("10k")


# ------------------------------------------------------------------ download + checksum
def serve(tmp_path: Path, folder_writer, name: str, md5_text: str | None = None) -> str:
    server = tmp_path / "server"
    server.mkdir(exist_ok=True)
    folder = folder_writer(tmp_path / "src" / name)
    archive = zip_folder(folder, server / f"{name}.zip")
    if md5_text is None:
        md5_text = f"MD5 ({name}.zip) = {hashlib.md5(archive.read_bytes()).hexdigest()}\n"
    (server / f"{name}.zip.md5").write_text(md5_text)
    return server.as_uri() + "/"


def test_download_verifies_extracts_and_caches(tmp_path):
    url = serve(tmp_path, write_latest, "ml-latest-small")
    cache = tmp_path / "cache"
    first = movielens("latest-small", cache_dir=cache, base_url=url)
    assert (cache / "ml-latest-small" / "ratings.csv").is_file()
    assert not list(cache.glob(".download-*"))
    # Second call reads the cache: the server may disappear.
    for f in (tmp_path / "server").iterdir():
        f.unlink()
    second = movielens("latest-small", cache_dir=cache, base_url=url)
    pd.testing.assert_frame_equal(first.ratings, second.ratings)
    pd.testing.assert_frame_equal(first.item_categories, second.item_categories)


def test_download_with_wrong_published_checksum_is_discarded(tmp_path):
    url = serve(tmp_path, write_latest, "ml-latest-small", md5_text="MD5 (ml-latest-small.zip) = " + "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="checksum mismatch"):
        movielens("latest-small", cache_dir=cache, base_url=url)
    assert list(cache.iterdir()) == []


def test_pinned_checksum_rejects_a_different_archive(tmp_path):
    # Our tiny 100k archive is not GroupLens's: the pinned MD5 must reject it.
    url = serve(tmp_path, write_100k, "ml-100k")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=f"expected {datasets.VARIANTS['100k'].md5}"):
        movielens("100k", cache_dir=cache, base_url=url)
    assert list(cache.iterdir()) == []


def test_unreachable_server_explains_how_to_get_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="could not download"):
        movielens("1m", cache_dir=tmp_path / "cache", base_url=(tmp_path / "nowhere").as_uri())


def test_published_md5_formats(tmp_path):
    digest = "0123456789abcdef0123456789ABCDEF"
    for text in (f"MD5 (ml-latest-small.zip) = {digest}\n", f"{digest}  ml-latest-small.zip\n"):
        f = tmp_path / "x.md5"
        f.write_text(text)
        assert datasets.published_md5(f.as_uri()) == digest.lower()


# ------------------------------------------------------------------ variant detection
def test_detect_variant_from_the_files(tmp_path):
    assert datasets.detect_variant(write_100k(tmp_path / "anything")) == "100k"
    assert datasets.detect_variant(write_1m(tmp_path / "my-1m-copy")) == "1m"
    assert datasets.detect_variant(write_latest(tmp_path / "ml-25m")) == "25m"
    assert datasets.detect_variant(write_latest(tmp_path / "ratings-here")) == "latest-small"
    # a folder holding one variant's folder or zip, and the zip itself
    parent = tmp_path / "parent"
    write_100k(parent / "ml-100k")
    assert datasets.detect_variant(parent) == "100k"
    archive = zip_folder(parent / "ml-100k", tmp_path / "download.zip")
    assert datasets.detect_variant(archive) == "100k"
    only_zip = tmp_path / "only-zip"
    only_zip.mkdir()
    zip_folder(write_latest(tmp_path / "src" / "ml-32m"), only_zip / "ml-32m.zip")
    assert datasets.detect_variant(only_zip) == "32m"


def test_detect_variant_refuses_ambiguous_or_empty_folders(tmp_path):
    both = tmp_path / "both"
    write_100k(both / "ml-100k")
    write_1m(both / "ml-1m")
    with pytest.raises(ValueError, match=r"several MovieLens variants \(100k, 1m\)"):
        datasets.detect_variant(both)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no MovieLens files"):
        datasets.detect_variant(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.detect_variant(tmp_path / "nowhere")


def test_movielens_without_variant_reads_what_the_path_holds(tmp_path):
    folder = write_100k(tmp_path / "some-folder")
    detected = movielens(path=folder)
    explicit = movielens("100k", folder)
    pd.testing.assert_frame_equal(detected.ratings, explicit.ratings)
    pd.testing.assert_frame_equal(detected.item_categories, explicit.item_categories)
    assert pairs(detected.item_categories) == [(242, "Comedy"), (242, "Romance")]
