from tests.integration.delivery.support import receiver, sandbox, world

__all__ = ["receiver", "sandbox", "world"]
