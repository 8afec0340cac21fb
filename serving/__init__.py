"""Production model serving for scikit-learn models."""
