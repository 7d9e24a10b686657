"""Test and demo fixtures: tiny random rerankers. Not part of the installed package."""
