"""The providers' stand-ins (``servers.py``) as fixtures of these tests."""

from tests.notify.servers import provider, smtp

__all__ = ["provider", "smtp"]
