"""Recipes: what a family's reranker is (tokens, method, prompt, template) and the presets."""
