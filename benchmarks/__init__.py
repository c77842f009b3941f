"""organsim benchmarks: ``python -m benchmarks [ID ...] [--quick]``."""
