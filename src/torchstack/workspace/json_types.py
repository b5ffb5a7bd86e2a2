"""The one type of JSON documents torchstack reads and writes: reports, records, journals, image
inspections, manifests and bake files. Readers narrow it with isinstance where they look inside.
"""

from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = "str | int | float | bool | list[JSON] | dict[str, JSON] | None"
JSONObject: TypeAlias = "dict[str, JSON]"
