"""Adapters: turn a recommender's output into candidate frames (installed as rerank.adapters).

Every adapter has ``candidates(users, n=100, exclude_seen=True, items=None) ->
DataFrame[user_id, item_id, score]`` in external ids; :func:`recommend_calibrated` chains it
with a :class:`rerank.CalibratedReranker`. ``implicit``, ``lightfm`` and ``cornac`` are imported
only when their adapter is used with a model.

:class:`SparkALSAdapter` is the cluster-side one: a Spark ``ALSModel`` in, a Spark DataFrame
``user_id, item_id, score, rank`` out (pyspark is imported only when it is used).
"""

from rerank.adapters.base import CandidateAdapter, recommend_calibrated
from rerank.adapters.cornac import CornacAdapter
from rerank.adapters.generic import CallableAdapter, ScoreMatrixAdapter
from rerank.adapters.implicit import ImplicitAdapter
from rerank.adapters.interactions import Interactions, interaction_matrix
from rerank.adapters.lightfm import LightFMAdapter
from rerank.adapters.spark_als import SparkALSAdapter

__all__ = [
    "CallableAdapter",
    "CandidateAdapter",
    "CornacAdapter",
    "ImplicitAdapter",
    "Interactions",
    "LightFMAdapter",
    "ScoreMatrixAdapter",
    "SparkALSAdapter",
    "interaction_matrix",
    "recommend_calibrated",
]
