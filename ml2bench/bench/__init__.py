"""Benchmark scripts (not tests): ``python -m ml2bench.bench NAME [options]``."""
