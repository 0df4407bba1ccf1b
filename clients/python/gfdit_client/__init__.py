"""Python client for gfdit's OpenAI-compatible images API (stdlib only)."""

from . import png
from .client import DEFAULT_BASE_URL, Client, GfditError, generate

__all__ = ["Client", "GfditError", "generate", "png", "DEFAULT_BASE_URL"]
__version__ = "0.1.0"
