"""The HTTP service: :func:`create_app` builds the ASGI application.

Needs the ``server`` extra: ``pip install cronica[server]``.
"""

from cronica.server.app import create_app
from cronica.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
