"""Solvers that decide where each layer runs and in what precision; they never edit the graph."""
