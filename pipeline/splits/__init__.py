"""Train/val/test splits of a store: making, importing, checking and reporting them."""
