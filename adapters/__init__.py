"""Adapters: turn a recommender's output into candidate frames (installed as rerank.adapters).

Every adapter has ``candidates(users, n=100, exclude_seen=True, items=None) ->
DataFrame[user_id, item_id, score]`` in external ids; :func:`recommend_calibrated` chains it
with a :class:`rerank.CalibratedReranker`. ``implicit`` and ``lightfm`` are imported only when
their adapter is used with a model.
"""

from rerank.adapters.base import CandidateAdapter, recommend_calibrated
from rerank.adapters.generic import CallableAdapter, ScoreMatrixAdapter
from rerank.adapters.implicit import ImplicitAdapter
from rerank.adapters.interactions import Interactions, interaction_matrix
from rerank.adapters.lightfm import LightFMAdapter

__all__ = [
    "CallableAdapter",
    "CandidateAdapter",
    "ImplicitAdapter",
    "Interactions",
    "LightFMAdapter",
    "ScoreMatrixAdapter",
    "interaction_matrix",
    "recommend_calibrated",
]
