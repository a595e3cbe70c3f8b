"""Benchmarks: model steps on CPU or GPU, the packed data pipeline, predict latency."""
