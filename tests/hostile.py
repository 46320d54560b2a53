"""Hypothesis strategies for arbitrary, often hostile, input frames, and an independent checker
of what a valid output must look like (used by test_validation.py and test_fuzz_inputs.py).

Hostile means: wrong dtypes (strings, booleans, objects in ``score``), NaN / ±inf / ±max-float
/ subnormal scores, null ids, duplicate (user, item) rows, mixed id types in one column,
floats as ids, unicode ids, empty frames, missing or extra columns.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import strategies as st

MAX = np.finfo(np.float64).max
TINY = 5e-324

UNICODE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=4)

SCORES = st.one_of(
    st.floats(-3, 3, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, MAX, -MAX, 1e308, -1e308, TINY, -TINY, 1e-300]),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def id_values(draw, n: int, pool: int, *, allow_hostile: bool):
    """``n`` ids drawn from a small pool; one kind per column unless hostile."""
    kinds = ["int", "str", "unicode"] + (["float", "mixed", "bool", "bytes"] if allow_hostile else [])
    kind = draw(st.sampled_from(kinds))
    picks = draw(st.lists(st.integers(0, pool - 1), min_size=n, max_size=n))
    if kind == "int":
        values = [int(p) for p in picks]
    elif kind == "str":
        values = [f"u{p}" for p in picks]
    elif kind == "unicode":
        names = draw(st.lists(UNICODE, min_size=pool, max_size=pool, unique=True))
        values = [names[p] for p in picks]
    elif kind == "float":
        values = [p + draw(st.sampled_from([0.0, 0.5])) for p in picks]
    elif kind == "mixed":
        values = [p if p % 2 else f"{p}" for p in picks]
    elif kind == "bool":
        values = [bool(p % 2) for p in picks]
    else:
        values = [f"{p}".encode() for p in picks]
    if allow_hostile and n and draw(st.booleans()):
        for at in draw(st.lists(st.integers(0, n - 1), max_size=2)):
            values[at] = draw(st.sampled_from([None, np.nan]))
    return values


@st.composite
def score_column(draw, n: int, *, allow_hostile: bool):
    kind = draw(st.sampled_from(["float", "int"] + (["str", "bool", "object", "none"] if allow_hostile else [])))
    if kind == "int":
        return [draw(st.integers(-(2**53), 2**53)) for _ in range(n)]
    if kind == "str":
        return [f"{draw(SCORES)}" for _ in range(n)]
    if kind == "bool":
        return [draw(st.booleans()) for _ in range(n)]
    if kind == "object":
        return pd.Series([draw(st.one_of(SCORES, st.just("x"), st.none())) for _ in range(n)], dtype=object)
    if kind == "none":
        return [None] * n
    return [draw(SCORES) for _ in range(n)]


FAULTS = ("user_kind", "item_kind", "null_ids", "score_kind", "non_finite", "duplicates", "drop_column",
          "extra_column")


@st.composite
def candidate_frames(draw, *, hostile: bool = True, max_rows: int = 14, n_items: int = 8, n_users: int = 6):
    """Candidate frames ``user_id, item_id, score``: integer users ``0..n_users-1`` and string
    items ``i0..`` (the ids of :func:`clean_inputs`), finite (possibly extreme) scores, no
    duplicates — then, when ``hostile``, up to three faults from :data:`FAULTS`."""
    n = draw(st.integers(0, max_rows))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    items = [f"i{p}" for p in draw(st.lists(st.integers(0, n_items - 1), min_size=n, max_size=n))]
    scores = [draw(SCORES.filter(math.isfinite)) for _ in range(n)]
    frame = pd.DataFrame({"user_id": pd.Series(users, dtype=np.int64), "item_id": pd.Series(items, dtype=object),
                          "score": pd.Series(scores, dtype=np.float64)})
    frame = frame.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)
    if not hostile:
        return frame
    n = len(frame)
    chosen = draw(st.sets(st.sampled_from(FAULTS), max_size=3))
    for fault in [f for f in FAULTS if f in chosen]:  # drop_column last, after faults on columns
        if fault == "user_kind" and n:
            frame["user_id"] = pd.Series(draw(id_values(n, 4, allow_hostile=True)), dtype=object).infer_objects()
        elif fault == "item_kind" and n:
            frame["item_id"] = pd.Series(draw(id_values(n, n_items, allow_hostile=True)), dtype=object).infer_objects()
        elif fault == "null_ids" and n:
            column = draw(st.sampled_from(["user_id", "item_id"]))
            at = draw(st.integers(0, n - 1))
            frame[column] = frame[column].astype(object)
            frame.loc[at, column] = draw(st.sampled_from([None, np.nan]))
        elif fault == "score_kind":
            frame["score"] = draw(score_column(n, allow_hostile=True)) if n else []
        elif fault == "non_finite" and n:
            if frame["score"].dtype != np.float64:
                frame["score"] = frame["score"].astype(object)
            frame.loc[draw(st.integers(0, n - 1)), "score"] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        elif fault == "duplicates" and n:
            frame = pd.concat([frame, frame.sample(n=1, random_state=draw(st.integers(0, 99)))], ignore_index=True)
        elif fault == "drop_column":
            frame = frame.drop(columns=[draw(st.sampled_from(["user_id", "item_id", "score"]))])
        elif fault == "extra_column":
            frame["extra"] = "x"
    return frame


@st.composite
def clean_inputs(draw, n_items: int = 8, n_cat: int = 3):
    """Valid (history, item_categories) with string item ids ``i0..``; some items uncategorised."""
    cat_rows = []
    for i in range(n_items):
        for g in draw(st.lists(st.integers(0, n_cat - 1), max_size=2, unique=True)):
            cat_rows.append((f"i{i}", f"g{g}"))
    cats = pd.DataFrame(cat_rows, columns=["item_id", "category"])
    n_hist = draw(st.integers(0, 10))
    hist = pd.DataFrame(
        {
            "user_id": draw(st.lists(st.integers(0, 5), min_size=n_hist, max_size=n_hist)),
            "item_id": [f"i{i}" for i in draw(st.lists(st.integers(0, n_items - 1), min_size=n_hist, max_size=n_hist))],
        }
    )
    return hist, cats


def assert_valid_output(out: pd.DataFrame, candidates: pd.DataFrame, k: int, skipped_users=()) -> None:
    """Independent check of docs/design.md §4.1 and §5 on a frame-API / CLI output.

    Every non-skipped input user appears with exactly ``min(k, n_u)`` distinct items from
    their own candidates, ranks 1..len, scores equal to the input scores and finite.
    """
    assert list(out.columns) == ["user_id", "item_id", "score", "rank"]
    assert out["score"].dtype == np.float64
    assert np.isfinite(out["score"].to_numpy()).all()
    skipped = set(skipped_users)
    expected_users = [u for u in pd.unique(candidates["user_id"].dropna()) if u not in skipped]
    assert list(pd.unique(out["user_id"])) == expected_users
    for user, rows in out.groupby("user_id", sort=False):
        cands = candidates[candidates["user_id"] == user]
        pairs = dict(zip(cands["item_id"], cands["score"], strict=True))
        assert len(rows) == min(k, len(cands))
        assert rows["item_id"].is_unique
        assert list(rows["rank"]) == list(range(1, len(rows) + 1))
        for item, score in zip(rows["item_id"], rows["score"], strict=True):
            assert item in pairs
            assert float(pairs[item]) == score


# ----------------------------------------------------------------------------- exact ids (issue 17)
ID_DTYPES = [
    "int64", "uint64", "int32", "uint8",  # numpy: no nulls
    "Int64", "UInt64", "Int32", "UInt16",  # pandas nullable
    "int64[pyarrow]", "uint64[pyarrow]", "int32[pyarrow]",  # pyarrow
    "object",  # Python ints (and None) in an object column
    "str", "string", "string[pyarrow]", "object-str",  # strings: pandas 3 str, python, pyarrow, object
    "dictionary-int64", "dictionary-str",  # pyarrow dictionary-encoded (as dictionary Parquet columns read)
]
NULLABLE = {d for d in ID_DTYPES if not d.startswith(("int", "uint")) or d.endswith("[pyarrow]")}


def is_text_dtype(dtype: str) -> bool:
    return dtype.startswith(("str", "object-str", "dictionary-str"))


def id_edges(dtype: str) -> list[int]:
    """Integer ids at the edges of a dtype's range: 0, ±1, the extremes, and (where the dtype
    holds them) 2**53 + 1, 2**60 + 1, 2**63 ± 1, where a float64 or int64 cast merges or wraps."""
    if dtype in ("object", "dictionary-int64"):
        info = np.iinfo(np.int64)
    else:
        resolved = pd.api.types.pandas_dtype(dtype)
        info = np.iinfo(getattr(resolved, "numpy_dtype", resolved))
    candidates = [0, 1, 2, -1, info.min, info.min + 1, info.max - 1, info.max,
                  2**53, 2**53 + 1, 2**60, 2**60 + 1, 2**63 - 1, 2**63, 2**63 + 1]
    return sorted({v for v in candidates if info.min <= v <= info.max})


def id_column(values: list, dtype: str):
    """``values`` (None for a null) as a column of the pseudo-dtype ``dtype`` (``"object"``:
    Python ints, ``"object-str"``: Python strings, both in an object column; ``"dictionary-*"``:
    pyarrow dictionary-encoded int64 or strings)."""
    if dtype in ("object", "object-str"):
        return pd.array(values, dtype=object)
    if dtype.startswith("dictionary-"):
        import pyarrow as pa

        value_type = pa.int64() if dtype == "dictionary-int64" else pa.string()
        return pd.array(values, dtype=pd.ArrowDtype(value_type)).astype(
            pd.ArrowDtype(pa.dictionary(pa.int32(), value_type)))
    if dtype.startswith(("int", "uint")) and "[" not in dtype:
        # numpy: never pd.array(list, dtype="uint64"), which pandas 3 builds wrong (2**64 - 1 -> 0)
        return np.array(values, dtype=dtype)
    return pd.array(values, dtype=dtype)


def id_pool(dtype: str, size: int, draw) -> list:
    """``size`` distinct ids of a dtype, taken around the edges of its range (near 2**53, 2**63
    and 2**64, where a float64 or an int64 cast would merge or wrap them)."""
    if is_text_dtype(dtype):
        names = draw(st.lists(st.sampled_from(["u1", "01", "1", "NA", " x", "é", "a,b", 'q"t', "nan", "0"]),
                              min_size=size, max_size=size, unique=True))
        return names
    return draw(st.lists(st.sampled_from(id_edges(dtype)), min_size=size, max_size=size, unique=True))


@st.composite
def exact_id_inputs(draw, max_rows: int = 12):
    """``(candidates, history, item_categories, dtype)``: candidate ids of one integer or string
    dtype (numpy, nullable or pyarrow) drawn near the edges of its range, with nulls where the
    dtype allows them, some non-finite scores and repeated (user, item) rows; history and item
    categories over the same ids (plain int64 / str, some users and items unknown)."""
    dtype = draw(st.sampled_from(ID_DTYPES))
    users = id_pool(dtype, 4, draw)
    items = id_pool(dtype, 5, draw)
    n = draw(st.integers(0, max_rows))
    rows = sorted(draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=n, max_size=n)))
    user_col = [users[u] for u, _ in rows]
    item_col = [items[i] for _, i in rows]
    scores = [draw(st.one_of(st.floats(-2, 2), st.sampled_from([np.nan, np.inf]))) for _ in rows]
    if dtype in NULLABLE and n:
        for at in draw(st.lists(st.integers(0, n - 1), max_size=2)):
            (user_col if draw(st.booleans()) else item_col)[at] = None
    candidates = pd.DataFrame({"user_id": id_column(user_col, dtype), "item_id": id_column(item_col, dtype),
                               "score": pd.Series(scores, dtype=np.float64)})
    plain = object if is_text_dtype(dtype) else None
    warm = draw(st.lists(st.sampled_from(users), max_size=3))
    history = pd.DataFrame({"user_id": pd.Series(warm, dtype=plain),
                            "item_id": pd.Series([items[j % len(items)] for j in range(len(warm))], dtype=plain)})
    known = draw(st.lists(st.sampled_from(items), max_size=4, unique=True))
    categories = pd.DataFrame({"item_id": pd.Series(known, dtype=plain),
                               "category": [f"g{j % 2}" for j in range(len(known))]})
    if plain is None:  # an integer dtype: the history and categories hold Python ints (object if > int64)
        history = history.infer_objects()
        categories = categories.infer_objects()
    return candidates, history, categories, dtype


def expected_skips(candidates: pd.DataFrame) -> tuple[dict, int]:
    """Independent account of ``on_invalid="skip"`` on exact Python values: the users to skip
    with their first reason (null item, then bad score, then duplicate item) and the number of
    rows without a user id."""
    reasons: dict = {}
    seen: set = set()
    without_user = 0
    rank = {"null item_id": 0, "score missing or not a finite number": 1, "duplicate item_id": 2}
    for user, item, score in zip(candidates["user_id"].astype(object), candidates["item_id"].astype(object),
                                 candidates["score"], strict=True):
        if pd.isna(user):
            without_user += 1
            continue
        reason = None
        if pd.isna(item):
            reason = "null item_id"
        elif not math.isfinite(score):
            reason = "score missing or not a finite number"
        elif (user, item) in seen:
            reason = "duplicate item_id"
        if not pd.isna(item):
            seen.add((user, item))
        if reason is not None and (user not in reasons or rank[reason] < rank[reasons[user]]):
            reasons[user] = reason
    return reasons, without_user


def write_arrow_parquet(frame: pd.DataFrame, path) -> None:
    """Parquet as pyarrow or Spark write it: no pandas metadata (pandas cannot restore dtypes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None), path)


@st.composite
def csv_with_faults(draw, columns=("user_id", "item_id", "score")):
    """``(text, fault)``: a CSV of ``columns`` (+ maybe an ``extra`` one) whose rows are valid
    (ids as text, ``score`` / ``weight`` in [0, 1]), then with probability 3/4 one fault: a row
    with one field more or less than the header (``("ragged", line, fields, header_fields)``) or a
    repeated header name (``("duplicate", name)``); ``None`` when the file is valid."""
    n = draw(st.integers(1, 8))
    header = list(columns) + (["extra"] if draw(st.booleans()) else [])
    lines = [",".join(header)]
    for r in range(n):
        fields = [repr(draw(st.floats(0, 1))) if name in ("score", "weight") else "x" if name == "extra"
                  else f"{name[0]}{r // 3 if i == 0 else r % 3}" for i, name in enumerate(header)]
        lines.append(",".join(fields))
    fault = draw(st.sampled_from([None, "more", "fewer", "duplicate"]))
    if fault in ("more", "fewer"):
        at = draw(st.integers(1, n))
        fields = lines[at].split(",")
        fields = fields + ["9"] if fault == "more" else fields[:-1]
        lines[at] = ",".join(fields)
        fault = ("ragged", at + 1, len(fields), len(header))
    elif fault == "duplicate":
        name = draw(st.sampled_from(header))
        lines[0] = lines[0] + "," + name
        lines[1:] = [line + ",0" for line in lines[1:]]
        fault = ("duplicate", name)
    return "\n".join(lines) + "\n", fault
