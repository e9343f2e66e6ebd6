"""Content-addressed, write-once storage of signed documents."""
