"""Evaluation: inference on a split, clip and frame metrics, localisation, plots."""
