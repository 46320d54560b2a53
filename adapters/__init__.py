"""Adapters: turn a recommender's output into candidate frames (installed as rerank.adapters)."""
