"""Gotong: a chatbot that coordinates community aid."""

__version__ = "0.1.0"
