"""Evaluation metrics: Inception features, FID, KID, precision/recall, density/coverage."""
