"""gRPC errors as google.rpc.Status: an ErrorInfo reason plus, for bad input, one BadRequest."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "hookline"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class ApiError(Exception):
    """Raised anywhere below a servicer; the servicer wrapper turns it into the call's status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str,
        violations: Sequence[FieldViolation] = (),
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = tuple(violations)
        self.metadata = metadata or {}

    def to_status(self) -> grpc.Status:
        details: list[any_pb2.Any] = []
        info = any_pb2.Any()
        info.Pack(
            error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        )
        details.append(info)
        if self.violations:
            bad_request = any_pb2.Any()
            bad_request.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in self.violations
                    ]
                )
            )
            details.append(bad_request)
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=details)
        return rpc_status.to_status(status)


def invalid(violations: Iterable[FieldViolation]) -> ApiError:
    items = list(violations)
    summary = "; ".join(f"{v.field}: {v.description}" for v in items[:5])
    if len(items) > 5:
        summary += f"; and {len(items) - 5} more"
    return ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid request: {summary}",
        reason="VALIDATION_ERROR",
        violations=items,
    )


def invalid_field(field: str, description: str) -> ApiError:
    return invalid([FieldViolation(field, description)])


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(
        grpc.StatusCode.NOT_FOUND,
        f"{kind} {ident!r} not found",
        reason=f"{kind.upper()}_NOT_FOUND",
        metadata={"id": ident[:64]},
    )


def unauthenticated(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message, reason="UNAUTHENTICATED")


def failed_precondition(message: str, reason: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message, reason=reason)


def resource_exhausted(message: str, reason: str) -> ApiError:
    return ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, reason=reason)


class Violations:
    """Collects every field violation of a request so the caller sees all of them at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise invalid(self.items)
