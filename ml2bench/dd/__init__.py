"""Domain decomposition for training: decompositions, local solvers, Schwarz corrections, parallel
execution with ``torch.distributed``. The method using them is :mod:`ml2bench.methods.schwarz`."""
