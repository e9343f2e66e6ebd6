"""Server-rendered pages (Jinja2) and the static files they use; nothing is loaded from other hosts."""
