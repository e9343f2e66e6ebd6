"""Request plumbing both HTTP faces (``api/`` and ``web/``) share: the services, the database session,
the signed-in user and what they may see, uploads."""
