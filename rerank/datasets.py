"""MovieLens loader: ``movielens(variant, path=None) -> MovieLens(ratings, item_categories)``.

Variants: ``"latest-small"``, ``"100k"``, ``"1m"``, ``"20m"``, ``"25m"``, ``"32m"`` (GroupLens
file formats: 100k ``u.data`` / ``u.item`` with 19 genre flags; 1m ``::``-separated ``.dat``
files in Latin-1; latest-small, 20m, 25m, 32m ``ratings.csv`` / ``movies.csv``).

Where the files come from, first match wins:

1. ``path``: the extracted folder (``ml-1m/``), a folder holding it (or its ``.zip``), or the
   GroupLens ``.zip`` itself;
2. the environment variable ``RERANK_MOVIELENS_DIR``: a folder holding ``ml-<variant>/``
   folders or ``ml-<variant>.zip`` archives, as GroupLens names them;
3. the cache ``$RERANK_CACHE_DIR/movielens`` (default ``~/.cache/rerank/movielens``): a
   previous download, or, with ``download=True``, a fresh download from GroupLens, verified
   against the archive's MD5 before it is extracted (pinned for the fixed releases; for
   ``latest-small``, which GroupLens may update, the ``.md5`` file published next to it).

Without a variant, a ``path`` names it by its files (:func:`detect_variant`): ``u.data`` is
100k, ``ratings.dat`` is 1m, ``ratings.csv`` is the csv variant whose GroupLens folder name
the path carries (``ml-25m``), else latest-small; with no path either, latest-small.

Returned frames: ``ratings`` ``user_id, item_id, rating, timestamp`` (int64, int64, float64,
int64 seconds) and ``item_categories`` ``item_id, category`` — one row per (movie, genre),
genres split on ``|``; ``(no genres listed)`` (and 100k's ``unknown`` flag) give no row, so such
a movie has no category (docs/design.md §3). The core imports no recommender library.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from rerank.errors import InputError

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/"
ENV_DIR = "RERANK_MOVIELENS_DIR"
ENV_CACHE = "RERANK_CACHE_DIR"
NO_GENRE = {"(no genres listed)", "unknown", ""}
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)


@dataclass(frozen=True)
class Variant:
    folder: str  # GroupLens archive / folder name
    layout: str  # "csv", "100k" or "dat"
    md5: str | None  # pinned archive checksum; None: use the published .md5 file

    @property
    def marker(self) -> str:
        return {"csv": "ratings.csv", "100k": "u.data", "dat": "ratings.dat"}[self.layout]


# MD5s as GroupLens publishes them in <archive>.md5 next to each archive.
VARIANTS = {
    "latest-small": Variant("ml-latest-small", "csv", None),
    "100k": Variant("ml-100k", "100k", "0e33842e24a9c977be4e0107933c0723"),
    "1m": Variant("ml-1m", "dat", "c4d9eecfca2ab87c1945afe126590906"),
    "20m": Variant("ml-20m", "csv", "cd245b17a1ae2cc31bb14903e1204af3"),
    "25m": Variant("ml-25m", "csv", "6b51fb2759a8657d3bfcbfc42b592ada"),
    "32m": Variant("ml-32m", "csv", "d472be332d4daa821edc399621853b57"),
}


class MovieLens(NamedTuple):
    """``ratings`` (user_id, item_id, rating, timestamp) and ``item_categories`` (item_id,
    category)."""

    ratings: pd.DataFrame
    item_categories: pd.DataFrame


def variant_spec(variant: str) -> Variant:
    if variant not in VARIANTS:
        raise InputError(f"unknown MovieLens variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]


def default_cache_dir() -> Path:
    root = os.environ.get(ENV_CACHE)
    if root:
        return Path(root) / "movielens"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rerank" / "movielens"


def how_to_get(variant: str) -> str:
    """One paragraph telling a user how to provide the files."""
    spec = variant_spec(variant)
    return (
        f"MovieLens {variant} not found. Download {GROUPLENS_URL}{spec.folder}.zip, unzip it and "
        f"pass the folder (--data / path=), or set {ENV_DIR} to the folder that holds "
        f"{spec.folder}/, or allow the download into {default_cache_dir()}."
    )


def _in_folder(folder: Path, spec: Variant) -> Path | None:
    """The variant's files under ``folder``: ``folder/<name>/`` or ``folder/<name>.zip``."""
    if (folder / spec.folder / spec.marker).is_file():
        return folder / spec.folder
    if (folder / f"{spec.folder}.zip").is_file():
        return folder / f"{spec.folder}.zip"
    return None


def _variant_of_files(names, folder_name: str) -> str | None:
    """The variant whose marker file is among ``names`` (base names of one folder's files)."""
    if "u.data" in names:
        return "100k"
    if "ratings.dat" in names:
        return "1m"
    if "ratings.csv" in names:
        by_name = [v for v, spec in VARIANTS.items() if spec.layout == "csv" and spec.folder == folder_name]
        return by_name[0] if by_name else "latest-small"
    return None


def detect_variant(path) -> str:
    """The MovieLens variant held at ``path`` (a folder, a folder holding ``ml-*/`` folders or
    ``ml-*.zip`` archives, or a GroupLens zip), from its files.

    ``u.data`` -> ``"100k"``, ``ratings.dat`` -> ``"1m"``, ``ratings.csv`` -> the csv variant
    named by the folder (``ml-20m``, ``ml-25m``, ``ml-32m``, ``ml-latest-small``), else
    ``"latest-small"`` (the csv variants share one reader: the name only labels the run). A
    folder holding several variants is an error that asks for the variant.
    """
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
        names = {m.rsplit("/", 1)[-1] for m in members}
        folders = {m.split("/", 1)[0] for m in members if "/" in m}
        folder = folders.pop() if len(folders) == 1 else path.stem
        found = _variant_of_files(names, folder)
    elif path.is_dir():
        found = _variant_of_files({f.name for f in path.iterdir() if f.is_file()}, path.name)
        if found is None:
            inside = [v for v, spec in VARIANTS.items() if _in_folder(path, spec) is not None]
            if len(inside) > 1:
                raise InputError(
                    f"{path} holds several MovieLens variants ({', '.join(inside)}); choose one with "
                    f"--variant / variant="
                )
            found = inside[0] if inside else None
    else:
        raise FileNotFoundError(f"{path} does not exist")
    if found is None:
        raise FileNotFoundError(
            f"{path} holds no MovieLens files (expected u.data, ratings.dat or ratings.csv, or an "
            f"ml-<variant>/ folder or ml-<variant>.zip)"
        )
    return found


def locate(
    variant: str,
    path=None,
    *,
    cache_dir=None,
    download: bool = True,
    base_url: str = GROUPLENS_URL,
) -> Path:
    """The folder or archive holding ``variant``'s files (see the module docstring)."""
    spec = variant_spec(variant)
    if path is not None:
        path = Path(path)
        if path.is_file() and zipfile.is_zipfile(path):
            return path
        if (path / spec.marker).is_file():
            return path
        found = _in_folder(path, spec) if path.is_dir() else None
        if found is None:
            raise FileNotFoundError(
                f"{path} holds no MovieLens {variant} files (expected {spec.marker}, "
                f"{spec.folder}/ or {spec.folder}.zip)"
            )
        return found
    env = os.environ.get(ENV_DIR)
    if env:
        found = _in_folder(Path(env), spec)
        if found is not None:
            return found
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if (cache / spec.folder / spec.marker).is_file():
        return cache / spec.folder
    if not download:
        raise FileNotFoundError(how_to_get(variant))
    return fetch_into_cache(variant, cache, base_url=base_url)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def published_md5(url: str) -> str:
    """The checksum in a GroupLens ``.md5`` file (``MD5 (x.zip) = <hex>`` or ``<hex>  x.zip``)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        text = response.read(4096).decode("ascii", errors="replace")
    match = re.search(r"\b([0-9a-fA-F]{32})\b", text)
    if match is None:
        raise InputError(f"no MD5 checksum in {url}")
    return match.group(1).lower()


def fetch_into_cache(variant: str, cache_dir, *, base_url: str = GROUPLENS_URL) -> Path:
    """Download ``variant``'s archive into ``cache_dir``, verify its MD5, extract it.

    Nothing is left in the cache when the download or the check fails; a verified archive is
    extracted into a temporary folder and moved into place in one rename.
    """
    spec = variant_spec(variant)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{spec.folder}.zip"
    expected = spec.md5 or published_md5(url + ".md5")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        archive = Path(tmp) / f"{spec.folder}.zip"
        try:
            _fetch(url, archive)
        except OSError as exc:
            raise FileNotFoundError(f"could not download {url} ({exc}). {how_to_get(variant)}") from exc
        actual = _md5(archive)
        if actual != expected:
            raise InputError(
                f"checksum mismatch for {url}: MD5 {actual}, expected {expected}; the download "
                f"was discarded"
            )
        extracted = Path(tmp) / "extracted"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(extracted)
        source = extracted / spec.folder
        if not (source / spec.marker).is_file():
            raise InputError(f"{url} does not contain {spec.folder}/{spec.marker}")
        target = cache / spec.folder
        if target.exists():
            shutil.rmtree(target)
        source.rename(target)
    return target


# ---------------------------------------------------------------------------- reading
class _Files:
    """Open the variant's files by base name, from a folder or a zip archive (streamed: the
    large ``ratings.csv`` files are never held in memory as bytes)."""

    def __init__(self, source: Path):
        self.source = source

    @contextmanager
    def open(self, name: str):
        if self.source.is_dir():
            path = self.source / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing")
            with open(path, "rb") as fh:
                yield fh
            return
        with zipfile.ZipFile(self.source) as zf:
            members = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] == name]
            if not members:
                raise FileNotFoundError(f"{self.source} has no member {name}")
            with zf.open(min(members, key=len)) as fh:
                yield fh

    def read(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()


def _ratings_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame.columns = ["user_id", "item_id", "rating", "timestamp"]
    return frame.astype({"user_id": np.int64, "item_id": np.int64, "rating": np.float64, "timestamp": np.int64})


def _categories_from_genres(item_ids, genres) -> pd.DataFrame:
    """Genre strings ``A|B|C`` -> one row per (item, genre); no-genre markers give no row."""
    long = pd.DataFrame(
        {
            "item_id": np.asarray(item_ids, dtype=np.int64),
            "category": pd.Series(genres, dtype=str).fillna("").str.split("|"),
        }
    )
    long = long.explode("category", ignore_index=True)
    long["category"] = long["category"].astype(str).str.strip()
    long = long[~long["category"].isin(NO_GENRE)]
    return long.drop_duplicates().reset_index(drop=True)


def _dat(raw: bytes, names: list[str], encoding: str) -> pd.DataFrame:
    """``::``-separated lines (1m) read with the fast C parser."""
    text = raw.decode(encoding).replace("::", "\t")
    return pd.read_csv(io.StringIO(text), sep="\t", header=None, names=names, quoting=3, dtype=str)


def _read_csv_layout(files: _Files) -> MovieLens:
    with files.open("ratings.csv") as fh:
        ratings = pd.read_csv(
            fh,
            usecols=["userId", "movieId", "rating", "timestamp"],
            dtype={"userId": np.int64, "movieId": np.int64, "rating": np.float64, "timestamp": np.int64},
        )
    ratings = _ratings_frame(ratings[["userId", "movieId", "rating", "timestamp"]])
    with files.open("movies.csv") as fh:
        movies = pd.read_csv(fh, dtype={"movieId": np.int64, "genres": str})
    return MovieLens(ratings, _categories_from_genres(movies["movieId"], movies["genres"]))


def _read_100k(files: _Files) -> MovieLens:
    ratings = pd.read_csv(io.BytesIO(files.read("u.data")), sep="\t", header=None, dtype=np.int64)
    ratings = _ratings_frame(ratings)
    try:
        genre_table = pd.read_csv(
            io.BytesIO(files.read("u.genre")), sep="|", header=None, names=["genre", "index"],
            encoding="latin-1",
        ).dropna()
        genre_names = list(genre_table.sort_values("index")["genre"])
    except FileNotFoundError:
        genre_names = list(GENRES_100K)
    items = pd.read_csv(
        io.BytesIO(files.read("u.item")), sep="|", header=None, encoding="latin-1", quoting=3
    )
    flags = items.iloc[:, -len(genre_names):].to_numpy(dtype=np.int64)
    rows, cols = np.nonzero(flags)
    cats = pd.DataFrame(
        {
            "item_id": items.iloc[rows, 0].to_numpy(dtype=np.int64),
            "category": np.asarray(genre_names, dtype=object)[cols],
        }
    )
    cats["category"] = cats["category"].astype(str)
    cats = cats[~cats["category"].isin(NO_GENRE)].reset_index(drop=True)
    return MovieLens(ratings, cats)


def _read_dat(files: _Files) -> MovieLens:
    ratings = _dat(files.read("ratings.dat"), ["user_id", "item_id", "rating", "timestamp"], "latin-1")
    movies = _dat(files.read("movies.dat"), ["item_id", "title", "genres"], "latin-1")
    return MovieLens(_ratings_frame(ratings), _categories_from_genres(movies["item_id"], movies["genres"]))


READERS = {"csv": _read_csv_layout, "100k": _read_100k, "dat": _read_dat}


def read_movielens(source, variant: str) -> MovieLens:
    """Parse ``variant``'s files from a folder or a GroupLens zip archive."""
    spec = variant_spec(variant)
    return READERS[spec.layout](_Files(Path(source)))


def movielens(
    variant: str | None = None,
    path=None,
    *,
    cache_dir=None,
    download: bool = True,
    base_url: str = GROUPLENS_URL,
) -> MovieLens:
    """Load a MovieLens variant: ``(ratings, item_categories)`` (see the module docstring).

    ``path``: local files (folder or zip); else ``$RERANK_MOVIELENS_DIR``; else the cache,
    downloading from ``base_url`` (GroupLens) with checksum verification when ``download``.
    ``variant=None``: detected from ``path``'s files (:func:`detect_variant`), latest-small
    without a path.
    """
    if variant is None:
        variant = detect_variant(path) if path is not None else "latest-small"
    return read_movielens(
        locate(variant, path, cache_dir=cache_dir, download=download, base_url=base_url), variant
    )
