"""Re-implementations of other projects' models, for side-by-side benchmarks (not used by the toolkit)."""
