"""Transaction heuristics: analyzers that flag attacks while they happen (see base.py for what one is)."""
