"""The voucher-service sandbox: the contract of docs/voucher-api.md served by aiohttp + SQLite."""

from services.voucher.sandbox.app import create_sandbox_app
from services.voucher.sandbox.config import SandboxConfig
from services.voucher.sandbox.server import RunningSandbox, running_sandbox, serve

__all__ = ["RunningSandbox", "SandboxConfig", "create_sandbox_app", "running_sandbox", "serve"]
