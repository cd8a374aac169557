"""Benchmarks: each writes JSON to bench/results/ and prints a table (`make bench`)."""
