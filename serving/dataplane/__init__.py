"""Scoring requests: input parsing, the predictor, batching."""
