"""Trains the demo models on scikit-learn's bundled data sets and publishes them."""
