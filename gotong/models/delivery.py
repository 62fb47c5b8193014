"""Deliveries: aid allocated to one household, and the pledges it came from."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gotong.models.base import Base, utcnow


class DeliveryStatus(enum.StrEnum):
    ALLOCATED = "allocated"
    ASSIGNED = "assigned"
    PICKED_UP = "picked_up"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Deliveries that count as serving a household (for the cool-down rule).
SERVING_STATUSES = (DeliveryStatus.ALLOCATED, DeliveryStatus.ASSIGNED,
                    DeliveryStatus.PICKED_UP, DeliveryStatus.DELIVERED)


class Delivery(Base):
    __tablename__ = "delivery"
    __table_args__ = (Index("ix_delivery_aggregator_created", "aggregator_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("help_request.id"), index=True)
    aggregator_id: Mapped[int] = mapped_column(ForeignKey("aggregator.id"))
    category: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), index=True)
    # Why staff chose this household out of the proposed order (None: in order).
    override_reason: Mapped[str | None] = mapped_column(String(200))
    allocated_by: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    sources: Mapped[list[DeliverySource]] = relationship(
        cascade="all, delete-orphan", order_by="DeliverySource.id")


class DeliverySource(Base):
    """How much of a delivery came from one pledge."""

    __tablename__ = "delivery_source"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id", ondelete="CASCADE"),
                                             index=True)
    pledge_id: Mapped[int] = mapped_column(ForeignKey("pledge.id"), index=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
