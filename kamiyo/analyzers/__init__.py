"""Analyzers: bytecode fingerprints and, later, transaction heuristics."""
