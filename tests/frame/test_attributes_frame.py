"""Several attributes through the pandas API: per-attribute targets, weights by name, the same
lists as the array API, metrics per attribute (docs/design.md §3, §9.1)."""

from __future__ import annotations

import pandas as pd
import pytest

from rerank import CalibratedReranker, metrics, popularity_categories
from rerank.errors import InputError
from rerank.testing import reference as ref
from rerank.testing import reference_beyond as bref

GENRES = pd.DataFrame({
    "item_id": ["a", "b", "c", "d", "e", "f", "f"],
    "category": ["drama", "drama", "doc", "doc", "drama", "doc", "drama"],
})
HISTORY = pd.DataFrame({
    "user_id": ["u"] * 6 + ["v"] * 3,
    "item_id": ["a", "a", "a", "b", "c", "d", "a", "b", "e"],
})


def two_attributes():
    return pd.concat(
        [GENRES.assign(attribute="genre"), popularity_categories(HISTORY)], ignore_index=True
    )


def test_targets_are_per_attribute():
    reranker = CalibratedReranker(k=2, lam=0.5).fit(HISTORY, two_attributes())
    p = reranker.target_distributions(["u"]).loc["u"]
    assert p.index.names == ["attribute", "category"]
    # genre: u has 4 drama (a a a b) and 2 doc (c d); popularity by item counts: a:4 b:2 c,d,e:1
    assert p["genre"].to_dict() == pytest.approx({"doc": 2 / 6, "drama": 4 / 6})
    assert p["genre"].sum() == pytest.approx(1.0)
    assert p["popularity"].sum() == pytest.approx(1.0)


def test_user_without_mass_in_one_attribute_gets_that_block_of_the_population():
    cats = pd.concat([GENRES.assign(attribute="genre"),
                      pd.DataFrame({"item_id": ["e"], "category": ["new"], "attribute": ["age"]})])
    reranker = CalibratedReranker(k=2).fit(HISTORY, cats)
    p_u = reranker.target_distributions(["u"]).loc["u"]
    assert p_u["age"].to_dict() == {"new": 1.0}  # u never saw e: the population's block (only v)
    assert p_u["genre"].sum() == pytest.approx(1.0)


def test_frame_lists_equal_the_reference_with_weights_by_name():
    cats = two_attributes()
    weights = {"genre": 3.0, "popularity": 1.0}
    reranker = CalibratedReranker(k=3, lam=0.8, attribute_weights=weights, normalize=None).fit(HISTORY, cats)
    items = ["a", "b", "c", "d", "e", "f"]
    scores = [0.9, 0.8, 0.5, 0.45, 0.3, 0.2]
    cand = pd.DataFrame({"user_id": "u", "item_id": items, "score": scores})
    out = reranker.rerank(cand)
    columns = list(reranker.categories_)
    cat_attr = [0 if attr == "genre" else 1 for attr, _ in columns]
    table = reranker.item_categories_
    item_cats = []
    for item in items:
        row = table.matrix[table.rows_for([item])[0]]
        item_cats.append({int(g): float(a) for g, a in zip(row.indices, row.data, strict=True)})
    p = reranker.target_distributions(["u"]).loc["u"].tolist()
    chosen = bref.general_greedy(scores, item_cats, p, 3, 0.8, cat_attr=cat_attr, attr_w=[0.75, 0.25])
    assert out["item_id"].tolist() == [items[j] for j in chosen]


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"genre": 1.0}, "no weight for attribute 'popularity'"), ({"genre": 1, "popularity": 1, "x": 1}, "'x'"),
     ({"genre": "1", "popularity": 1}, "numbers")],
)
def test_bad_attribute_weights(weights, message):
    with pytest.raises(InputError, match=message):
        CalibratedReranker(attribute_weights=weights).fit(HISTORY, two_attributes())


def test_attribute_weights_without_attribute_column():
    with pytest.raises(InputError, match="attribute"):
        CalibratedReranker(attribute_weights={"genre": 1.0}).fit(HISTORY, GENRES)


def test_metrics_per_attribute():
    cats = two_attributes()
    reranker = CalibratedReranker(k=2, lam=0.0).fit(HISTORY, cats)
    recs = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "c"], "rank": [1, 2]})
    targets = reranker.target_distributions(["u"])
    per_user = metrics.user_metrics(recs, targets, reranker.item_categories_)
    for attribute in ("genre", "popularity"):
        one = metrics.user_metrics(
            recs, targets[attribute], reranker.item_categories_.attribute_table(attribute)
        )
        for column in one.columns:
            assert per_user[f"{column}[{attribute}]"].equals(one[column])
    assert "miscalibration_kl" not in per_user.columns  # no silent blend of the attributes
    # genre of the list (a drama, c doc) against u's (2/3, 1/3)
    q = [0.5, 0.5]
    assert per_user.loc["u", "miscalibration_kl[genre]"] == pytest.approx(ref.kl([2 / 6, 4 / 6], q, 0.01))


def test_exact_solver_refused_with_several_attributes():
    reranker = CalibratedReranker(k=2, solver="exact").fit(HISTORY, two_attributes())
    with pytest.raises(InputError, match="exact"):
        reranker.rerank(pd.DataFrame({"user_id": "u", "item_id": ["a", "b", "c"], "score": [1.0, 0.5, 0.1]}))


def test_attribute_column_checked_like_an_id():
    cats = two_attributes()
    cats.loc[0, "attribute"] = None
    with pytest.raises(InputError, match="attribute"):
        CalibratedReranker().fit(HISTORY, cats)


def test_lambda_from_a_budget_frame_api():
    """lam="auto": a 'lam' column per row, report_.lam per user, equal to a plain run with
    those λ as a mapping, and each list within the budget or at λ = 1."""
    cats = two_attributes()
    cand = pd.DataFrame({"user_id": ["u"] * 6 + ["v"] * 6, "item_id": list("abcdef") * 2,
                         "score": [0.9, 0.8, 0.5, 0.45, 0.3, 0.2, 0.2, 0.3, 0.9, 0.8, 0.7, 0.1]})
    reranker = CalibratedReranker(k=3, lam="auto", max_miscalibration=0.3).fit(HISTORY, cats)
    out = reranker.rerank(cand, explain=True)
    report = reranker.report_
    assert out.groupby("user_id")["lam"].first().to_dict() == report.lam.to_dict()
    plain = CalibratedReranker(k=3, lam=report.lam.to_dict()).fit(HISTORY, cats).rerank(cand)
    assert out["item_id"].tolist() == plain["item_id"].tolist()
    assert ((report.miscalibration <= 0.3) | (report.lam == 1.0)).all()
    assert "λ from the budget C ≤ 0.3" in report.summary()


def test_lam_auto_needs_a_budget():
    with pytest.raises(InputError, match="max_miscalibration"):
        CalibratedReranker(lam="auto").fit(HISTORY, GENRES)


def test_summarize_per_attribute():
    cats = two_attributes()
    reranker = CalibratedReranker(k=2, lam=0.0).fit(HISTORY, cats)
    recs = pd.DataFrame({"user_id": ["u", "u", "v", "v"], "item_id": ["a", "c", "a", "e"], "rank": [1, 2, 1, 2]})
    targets = reranker.target_distributions(["u", "v"])
    got = metrics.summarize(recs, targets, reranker.item_categories_)
    for attribute in ("genre", "popularity"):
        one = metrics.summarize(recs, targets[attribute], reranker.item_categories_.attribute_table(attribute))
        assert got[f"miscalibration_kl[{attribute}]"] == one["miscalibration_kl"]
    assert "miscalibration_kl" not in got
