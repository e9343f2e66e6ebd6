"""The document pipeline: render -> convert -> stamp -> sign -> verify.

These modules work on bytes and typed settings; they never import the database, FastAPI or
the web layer. ``pipeline.py`` is the one place that strings them together.
"""
