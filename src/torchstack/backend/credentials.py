"""A registry login: TORCHSTACK_REGISTRY_USER/_PASSWORD, read by Settings and handed to the
registry clients (registry.py, artifacts.py) and to skopeo's auth file (recompress.py).

The password never shows in a repr (nor in str, which is the repr for a dataclass).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

USER_ENV = "TORCHSTACK_REGISTRY_USER"
PASSWORD_ENV = "TORCHSTACK_REGISTRY_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    user: str | None = None  # None or "": anonymous
    password: str = field(default="", repr=False)

    def basic_token(self) -> str | None:
        """base64(user:password), as Basic auth and Docker's auth files write it."""
        if not self.user:
            return None
        return base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def headers(self) -> dict[str, str]:
        token = self.basic_token()
        return {"Authorization": f"Basic {token}"} if token else {}


ANONYMOUS = Credentials()
