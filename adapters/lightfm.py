"""``LightFMAdapter``: candidates from a trained LightFM model.

Works with whichever distribution provides the ``lightfm`` module (``lightfm-next`` ships
wheels for Python 3.11-3.13; the original ``lightfm`` 1.17 builds with
``pip install --no-build-isolation lightfm``); both have the same API.

Scores come from the learned representations, in blocks of users (no per-pair Python call):

    score(u, i) = <e_u, e_i> + b_u + b_i,
    (b_u, e_u) = model.get_user_representations(user_features)[u]
    (b_i, e_i) = model.get_item_representations(item_features)[i]

which is what ``model.predict(u, i, user_features=..., item_features=...)`` computes (in
float64 here; LightFM accumulates in float32, so scores agree to ~1e-6 relative).

Features: a model trained with user or item features must be given the *same* feature
matrices (LightFM would otherwise silently use identity features for the first rows of the
embedding table). Without a ``Dataset``, a model whose embedding table has more rows than
there are users/items is taken to need features.

``lightfm`` itself is not imported: the adapter only calls methods of the model you pass.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from rerank.adapters.base import CandidateAdapter, as_csr_matrix, ids_from_mapping

from rerank.errors import InputError


def _features(features, n_rows: int | None, n_features: int, what: str):
    """Validate a feature matrix against the model (``None``: identity features)."""
    if features is None:
        if n_rows is not None and n_rows != n_features:
            raise InputError(
                f"the model has {n_features} {what} feature embeddings for {n_rows} {what}s: it "
                f"was trained with {what} features; pass the same {what}_features matrix"
            )
        return None
    features = as_csr_matrix(features, f"{what}_features").astype(np.float32)
    if features.shape[1] != n_features:
        raise InputError(
            f"{what}_features has {features.shape[1]} columns but the model has {n_features} "
            f"{what} feature embeddings: pass the matrix the model was trained with"
        )
    if n_rows is not None and features.shape[0] != n_rows:
        raise InputError(f"{what}_features has {features.shape[0]} rows for {n_rows} {what}s")
    return features


class LightFMAdapter(CandidateAdapter):
    """Candidates from a fitted ``lightfm.LightFM`` model.

    Parameters
    ----------
    model : fitted ``LightFM``.
    dataset : the ``lightfm.data.Dataset`` used to build the training data; its
        ``mapping()`` gives the external ids (and tells whether features were used).
    user_features, item_features : the feature matrices the model was trained with
        (``Dataset.build_user_features`` / ``build_item_features``); ``None`` for identity.
    user_items : the users × items training interactions (``Dataset.build_interactions``'s
        first matrix, any scipy sparse format) for ``exclude_seen``.
    user_ids, item_ids : external ids by internal index, when there is no ``dataset``.
    batch_size : users per block (default: about 4M scores per block).
    """

    def __init__(
        self,
        model,
        dataset=None,
        *,
        user_features=None,
        item_features=None,
        user_items=None,
        user_ids=None,
        item_ids=None,
        batch_size=None,
    ):
        if getattr(model, "item_embeddings", None) is None:
            raise InputError("the LightFM model is not fitted (no embeddings)")
        n_user_features = model.user_embeddings.shape[0]
        n_item_features = model.item_embeddings.shape[0]
        if dataset is not None:
            if user_ids is not None or item_ids is not None:
                raise InputError("give either dataset or user_ids/item_ids, not both")
            user_map, user_feature_map, item_map, item_feature_map = dataset.mapping()
            user_ids, item_ids = ids_from_mapping(user_map), ids_from_mapping(item_map)
            for what, fmap, n_model in (
                ("user", user_feature_map, n_user_features),
                ("item", item_feature_map, n_item_features),
            ):
                if len(fmap) != n_model:
                    raise InputError(
                        f"the Dataset has {len(fmap)} {what} features but the model has "
                        f"{n_model}: model and dataset do not belong together"
                    )
        n_users = _known_size(user_ids, user_features, user_items, 0)
        n_items = _known_size(item_ids, item_features, user_items, 1)
        user_features = _features(user_features, n_users, n_user_features, "user")
        item_features = _features(item_features, n_items, n_item_features, "item")
        user_bias, user_emb = model.get_user_representations(user_features)
        item_bias, item_emb = model.get_item_representations(item_features)
        self.model = model
        self.user_bias = np.asarray(user_bias, dtype=np.float64)
        self.user_embeddings = np.asarray(user_emb, dtype=np.float64)
        self.item_bias = np.asarray(item_bias, dtype=np.float64)
        self.item_embeddings = np.asarray(item_emb, dtype=np.float64)
        self._init_common(
            self.user_embeddings.shape[0], self.item_embeddings.shape[0], user_items,
            user_ids, item_ids, batch_size,
        )

    def _score_block(self, rows, cols):
        item_emb = self.item_embeddings if cols is None else self.item_embeddings[cols]
        item_bias = self.item_bias if cols is None else self.item_bias[cols]
        return self.user_embeddings[rows] @ item_emb.T + self.user_bias[rows, None] + item_bias


def _known_size(ids, features, user_items, axis: int) -> int | None:
    if ids is not None:
        return len(ids)
    if features is not None:
        return features.shape[0]
    if user_items is not None and sp.issparse(user_items):
        return user_items.shape[axis]
    return None
