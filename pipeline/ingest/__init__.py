"""The ingest driver: a dataset tree into the feature store, one Ray task per clip, and its manifest."""
