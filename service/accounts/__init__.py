"""People and how they sign in: users with roles, password logins, sessions, API tokens."""
