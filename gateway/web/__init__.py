"""The web gateway (issue #7): HTTP + WebSocket API, auth and roles, and the agent / wallboard / QA pages.

:class:`~.server.WebGateway` runs it; :mod:`.app` has the routes (contract: docs/gateway.md); :mod:`.board`
keeps the live board from the Redis streams; :mod:`.auth` the tokens and roles.
"""

from .auth import ROLES, AuthError, Principal, TokenAuthority
from .server import GatewayError, WebGateway

__all__ = ["ROLES", "AuthError", "Principal", "TokenAuthority", "GatewayError", "WebGateway"]
