"""Credentials kept in Prefect Secret blocks, read once at start into the settings.

``MODELRELEASE_MLFLOW__PASSWORD_BLOCK``, ``MODELRELEASE_REGISTRY__PASSWORD_BLOCK``,
``MODELRELEASE_WEBHOOK__SECRET_BLOCK`` and ``MODELRELEASE_PROMETHEUS__TOKEN_BLOCK`` name a
Prefect ``Secret`` block; when the value itself is unset, the block's value becomes it, as
a ``SecretStr``. Errors name the block, never its value.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import SecretStr

from modelrelease.errors import PrefectError
from modelrelease.settings import PipelineSettings

_BLOCKS = (("mlflow", "password", "password_block"), ("registry", "password", "password_block"),
           ("webhook", "secret", "secret_block"), ("prometheus", "token", "token_block"))


def read_secret_block(name: str) -> SecretStr:
    """The value of the Prefect Secret block ``name``.

    Raises:
        PrefectError: The block does not exist or the Prefect server cannot be reached.
    """
    from prefect.blocks.system import Secret

    try:
        block = cast("Secret[Any]", Secret.load(name, _sync=True))  # type: ignore[call-arg]
        value = block.get()
    except ValueError as exc:
        raise PrefectError(f"read Prefect Secret block {name!r}: not found; create it "
                           f"(Secret(value=...).save({name!r})) or fix the *_BLOCK setting"
                           ) from exc
    except Exception as exc:  # any client failure; the message carries no value
        raise PrefectError(f"read Prefect Secret block {name!r}: {type(exc).__name__}; is "
                           "PREFECT_API_URL set and the server up?", retriable=True) from exc
    return SecretStr(str(value))


def with_secret_blocks(settings: PipelineSettings) -> PipelineSettings:
    """``settings`` with each credential named by a ``*_block`` setting read from Prefect."""
    updates: dict[str, Any] = {}
    for section, field, block_field in _BLOCKS:
        config = getattr(settings, section)
        block = getattr(config, block_field)
        if block and getattr(config, field) is None:
            updates[section] = config.model_copy(update={field: read_secret_block(block)})
    return settings.model_copy(update=updates) if updates else settings
