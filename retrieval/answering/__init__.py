"""Answering a question: explicit stages over one state, from candidates to an ``Answer``."""
