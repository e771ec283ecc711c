"""Benchmarks (`make bench`): scripts and the bench policy's generator, reference and peers."""
