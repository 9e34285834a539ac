"""Benchmarks: ``python bench/run.py [--quick]`` writes bench/results.md and bench/results.json."""
