"""Supervised fine-tuning on trajectories: tokenisation and masks, the training loop, checkpoints, plots."""
