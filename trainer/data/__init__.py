"""Training and evaluation data: reading stored clips and making the model's windows."""
