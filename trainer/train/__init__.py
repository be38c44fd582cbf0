"""The training run: recipe, steps, optimiser, checkpoints, distributed set-up, run directory."""
