"""Turns ApiError into the call's status and unexpected failures into a bare INTERNAL."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from service.errors import ApiError

log = logging.getLogger("hookline.api")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Servicer = TypeVar("Servicer")
Handler = Callable[[Servicer, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]


def rpc(method: Handler[Servicer, Req, Resp]) -> Handler[Servicer, Req, Resp]:
    @functools.wraps(method)
    async def wrapper(
        self: Servicer, request: Req, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Resp:
        try:
            return await method(self, request, context)
        except ApiError as error:
            # grpc-stubs lacks abort_with_status on the aio context; grpc.aio has it.
            await context.abort_with_status(error.to_status())  # type: ignore[attr-defined]
            raise  # unreachable: abort_with_status raises
        except grpc.aio.AbortError:
            raise
        except Exception:
            # No request fields in the log: they may carry payloads or secrets.
            log.exception("unhandled error in %s", method.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            raise

    return wrapper
