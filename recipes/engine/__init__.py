"""Run machinery shared by every recipe: configs, run directories and checkpoints, devices and processes, logs, shards."""
