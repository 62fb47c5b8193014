"""The statuses of a household's request, in a module of their own: the rules of who hears
what (models/notifications) say in which of them a notice is still worth sending, and the
request's own module imports those rules."""

from __future__ import annotations

import enum


class RequestStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    VERIFIED = "verified"
    REJECTED = "rejected"
    ALLOCATED = "allocated"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    FAILED = "failed"
    CLOSED = "closed"
    CANCELLED = "cancelled"
