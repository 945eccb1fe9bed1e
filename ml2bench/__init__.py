"""ml2bench: reproducible benchmarks of multilevel and domain-decomposition training."""

from ml2bench.core.params import ConfigError

__all__ = ["ConfigError"]
__version__ = "0.1.0"
