"""The web console at ``/ui``: the global log (live), streams, an aggregate's state through its
history, projections with rebuilds, transfers (sagas), bus and relay lag.

Server-rendered (Jinja2), with a small script of its own for the live log and the history
slider: no build step, no asset from the network. Authentication is the API's: when API keys
are configured, the console asks for one (``/ui/login``) and keeps it in a same-site, HTTP-only
cookie; reads need the ``read`` scope, a rebuild ``admin``.
"""

from cronica.server.console.routes import router

__all__ = ["router"]
