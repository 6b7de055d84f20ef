"""The digital twin network (batched torch). Imports nothing else of the project."""
