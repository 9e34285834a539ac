"""Benchmarks: ``python bench/run.py [--quick | --smoke]`` writes bench/results.md and
bench/results.json."""
