"""Feedback-loop simulator (installed as rerank.simulations)."""
