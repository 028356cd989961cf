"""One module per resource; each adds its endpoints to the shared registry."""

from api.routing import Registry

registry = Registry()


def load_all() -> Registry:
    from . import agents, api_keys, calls, health, numbers, provider_keys, recordings, trunks, voices  # noqa: F401
    from . import knowledge_bases as _knowledge_bases  # noqa: F401
    from . import live as _live  # noqa: F401
    from . import webhooks as _webhooks  # noqa: F401

    return registry
