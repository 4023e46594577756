"""Benchmarks for the FusionInfer operator."""
