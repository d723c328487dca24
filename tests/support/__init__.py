"""Test oracles shared by tests and load scripts (not shipped in the wheel): WER scoring, Flux event-order rules."""
