"""The kinds of split `SplitSpec` accepts, in a module of their own so that the command line can
name them in its help without importing polars and numpy."""

SPLIT_KINDS = ("random", "user_temporal", "global_temporal", "leave_one_out", "inductive", "given")
"""random: per-user random ratio. user_temporal: per-user ratio, oldest to train, newest to test.
global_temporal: one cut in time over all rows. leave_one_out: each user's newest row is test and
the one before it val (random order without timestamps). inductive: held-out users, see SplitSpec.
given: the split shipped with the source (LightGCN train.txt / test.txt, IR-Benchmark train.tsv /
test.tsv), kept as is, with a validation part carved from each user's training rows (`val_ratio`)."""
