"""The experiment layer shared by both front ends: configs, tracking, checkpoints, progress."""
