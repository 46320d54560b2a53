"""Deliberately broken rerankers, each breaking one guarantee of ``rerank.testing`` (and maybe
others as a consequence), to show that the battery catches them. Most wrap the library's
reranker and spoil its output or its input in one way; a few are hand-written.

``CATCHES`` maps each to the guarantee that must name it, and to what it declares."""

from __future__ import annotations

import random

import pandas as pd

from rerank import CalibratedReranker
from rerank.testing import Objective, Quota, from_reranker

ours = from_reranker(normalize=None)  # raw scores: normalising per user would undo some of the breakages below


def k_plus_one(history, item_categories, candidates, *, k, lam):
    """Returns k + 1 rows for users with more than k candidates."""
    return ours(history, item_categories, candidates, k=k + 1, lam=lam)


def drops_short_users(history, item_categories, candidates, *, k, lam):
    """Leaves out users with fewer than k candidates."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    sizes = candidates.groupby("user_id", sort=False)["item_id"].transform("size")
    short = candidates.loc[sizes < k, "user_id"]
    return out[~out["user_id"].isin(short)].reset_index(drop=True)


def drops_last_item(history, item_categories, candidates, *, k, lam):
    """Drops the last item of every list of two or more (an off-by-one in the cut)."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    last = out.groupby("user_id", sort=False).cumcount(ascending=False) == 0
    long_enough = out.groupby("user_id", sort=False)["item_id"].transform("size") > 1
    return out[~(last & long_enough)].reset_index(drop=True)


def duplicates_top_item(history, item_categories, candidates, *, k, lam):
    """Each list of two or more ends with its first item again (the length stays right)."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    last = out.groupby("user_id", sort=False).cumcount(ascending=False) == 0
    first = out.groupby("user_id", sort=False)["item_id"].transform("first")
    long_enough = out.groupby("user_id", sort=False)["item_id"].transform("size") > 1
    out.loc[last & long_enough, "item_id"] = first[last & long_enough]
    return out


def ids_as_strings(history, item_categories, candidates, *, k, lam):
    """Casts item ids to text."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    return out.assign(item_id=out["item_id"].astype(str))


def ids_through_float(history, item_categories, candidates, *, k, lam):
    """Passes integer user ids through float64 (as a numpy pipeline might)."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    if pd.api.types.is_integer_dtype(out["user_id"]):
        out = out.assign(user_id=out["user_id"].astype("float64"))
    return out


def random_ties(history, item_categories, candidates, *, k, lam):
    """Breaks score ties at random (the library breaks them by input position)."""
    shuffled = candidates.sample(frac=1.0, random_state=random.randrange(2**32))
    return ours(history, item_categories, shuffled, k=k, lam=lam)


def ignores_lam0(history, item_categories, candidates, *, k, lam):
    """Treats λ = 0 as "not given" and falls back to 0.5."""
    return ours(history, item_categories, candidates, k=k, lam=lam or 0.5)


def global_minmax(history, item_categories, candidates, *, k, lam):
    """Min-max normalises scores over all users at once, so other users' rows move the trade-off."""
    s = candidates["score"] / 2  # halves: the span of extreme finite scores does not overflow
    span = s.max() - s.min()
    scaled = candidates.assign(score=(s - s.min()) / span if span > 0 else 0.0)
    out = ours(history, item_categories, scaled, k=k, lam=lam)
    return out.drop(columns="score").merge(candidates, on=["user_id", "item_id"], how="left")[
        ["user_id", "item_id", "score", "rank"]]


def leaks_other_users_items(history, item_categories, candidates, *, k, lam):
    """Fills short lists with the best items of other users."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    extra = []
    for user, rows in out.groupby("user_id", sort=False):
        if len(rows) >= k:
            continue
        others = candidates[(candidates["user_id"] != user) & ~candidates["item_id"].isin(rows["item_id"])]
        fill = others.drop_duplicates("item_id").sort_values("score", ascending=False).head(k - len(rows))
        extra.append(fill.assign(user_id=user, rank=range(len(rows) + 1, len(rows) + 1 + len(fill))))
    return pd.concat([out, *extra], ignore_index=True)[list(out.columns)] if extra else out


def swaps_in_a_catalogue_item(history, item_categories, candidates, *, k, lam):
    """Replaces each list's last item by a catalogue item that is not among the user's candidates."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    catalogue = list(pd.unique(item_categories["item_id"]))
    for user, rows in out.groupby("user_id", sort=False):
        own = set(candidates.loc[candidates["user_id"] == user, "item_id"])
        spare = [i for i in catalogue if i not in own]
        if spare:
            out.loc[rows.index[-1], "item_id"] = spare[0]
    return out


def normalised_output_scores(history, item_categories, candidates, *, k, lam):
    """Returns min-max normalised scores in the output's score column."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    lo = out.groupby("user_id", sort=False)["score"].transform("min")
    hi = out.groupby("user_id", sort=False)["score"].transform("max")
    return out.assign(score=((out["score"] - lo) / (hi - lo)).fillna(0.0))


def ranks_from_zero(history, item_categories, candidates, *, k, lam):
    """Numbers each list from 0."""
    out = ours(history, item_categories, candidates, k=k, lam=lam)
    return out.assign(rank=out["rank"] - 1)


def adds_a_column_in_place(history, item_categories, candidates, *, k, lam):
    """Adds a helper column to the caller's candidates frame."""
    candidates["score_rank"] = candidates.groupby("user_id", sort=False)["score"].rank(ascending=False)
    return ours(history, item_categories, candidates, k=k, lam=lam)


def fails_on_cold_users(history, item_categories, candidates, *, k, lam):
    """Raises when a user has no history."""
    cold = set(candidates["user_id"]) - set(history["user_id"])
    if cold:
        raise KeyError(f"no history for {sorted(map(str, cold))[0]}")
    return ours(history, item_categories, candidates, k=k, lam=lam)


def no_safeguard(history, item_categories, candidates, *, k, lam):
    """Steck's greedy without the safeguard: can end below top-k on the objective."""
    reranker = CalibratedReranker(k=k, lam=lam, safeguard=False, normalize=None)
    return reranker.fit(history, item_categories).rerank(candidates)


def rounds_scores(history, item_categories, candidates, *, k, lam):
    """Compares scores rounded to whole numbers (ties then fall to input order), returns the
    input scores."""
    rounded = candidates.assign(score=candidates["score"].round(0))
    out = ours(history, item_categories, rounded, k=k, lam=lam)
    return out.drop(columns="score").merge(candidates, on=["user_id", "item_id"], how="left")[
        ["user_id", "item_id", "score", "rank"]]


#: broken reranker -> (the guarantee that must catch it, keyword arguments of check_reranker)
CATCHES = {
    k_plus_one: ("length", {}),
    drops_short_users: ("length", {}),
    drops_last_item: ("length", {}),
    duplicates_top_item: ("no-duplicates", {}),
    ids_as_strings: ("ids-unchanged", {}),
    ids_through_float: ("ids-unchanged", {}),
    random_ties: ("deterministic", {}),
    ignores_lam0: ("lam0-topk", {}),
    global_minmax: ("user-independence", {}),
    leaks_other_users_items: ("user-independence", {}),
    swaps_in_a_catalogue_item: ("subset", {}),
    normalised_output_scores: ("scores-unchanged", {}),
    ranks_from_zero: ("ranks", {}),
    adds_a_column_in_place: ("inputs-unchanged", {}),
    fails_on_cold_users: ("no-error", {}),
    no_safeguard: ("not-below-topk", {}),
    rounds_scores: ("row-order", {}),
    # the library's reranker on raw scores, declared as min-max normalising
    ours: ("score-affine", {"objective": Objective(normalize="minmax")}),
    # the library's reranker without quota mode, declared as keeping quotas
    from_reranker(min_share=False): ("quota", {"quota": Quota(1.0)}),
}
