"""Deliveries: aid allocated to one household, and the pledges it came from."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gotong.models.base import Base, utcnow


class DeliveryStatus(enum.StrEnum):
    ALLOCATED = "allocated"
    ASSIGNED = "assigned"
    PICKED_UP = "picked_up"
    ON_THE_WAY = "on_the_way"
    # Delivered without the household's code: a photo and location wait for staff.
    AWAITING_REVIEW = "awaiting_review"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


# With a volunteer, on its way to the household.
UNDER_WAY = (DeliveryStatus.ASSIGNED, DeliveryStatus.PICKED_UP, DeliveryStatus.ON_THE_WAY)
# Deliveries that count as serving a household (for the cool-down rule).
SERVING_STATUSES = (DeliveryStatus.ALLOCATED, *UNDER_WAY, DeliveryStatus.AWAITING_REVIEW,
                    DeliveryStatus.DELIVERED)
FAILURE_REASONS = ("nobody_home", "wrong_address", "refused")
_RATED = "rating IS NOT NULL"


class Delivery(Base):
    __tablename__ = "delivery"
    __table_args__ = (Index("ix_delivery_aggregator_created", "aggregator_id", "created_at"),
                      # The aggregator's deliveries in id order, read in batches by
                      # exports (models/export.py).
                      Index("ix_delivery_aggregator_order", "aggregator_id", "id"),
                      # Deliveries per day (the charts) read only recent ones.
                      Index("ix_delivery_delivered", "delivered_at"),
                      # The board: an aggregator's deliveries of one status, last changed
                      # first, read 50 at a time without sorting the aggregator's rows.
                      Index("ix_delivery_aggregator_board", "aggregator_id", "status",
                            "updated_at", "id"),
                      # Ratings: the latest, and their count and average, read from the
                      # rated deliveries alone.
                      Index("ix_delivery_aggregator_rated", "aggregator_id", "updated_at",
                            "id", "rating", postgresql_where=text(_RATED),
                            sqlite_where=text(_RATED)),
                      # An aggregator's deliveries per day (the dashboard's chart).
                      Index("ix_delivery_aggregator_delivered", "aggregator_id",
                            "delivered_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("help_request.id"), index=True)
    aggregator_id: Mapped[int] = mapped_column(ForeignKey("aggregator.id"))
    category: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), index=True)
    # Why staff chose this household out of the proposed order (None: in order).
    override_reason: Mapped[str | None] = mapped_column(String(200))
    allocated_by: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"))
    volunteer_id: Mapped[int | None] = mapped_column(
        ForeignKey("volunteer.id", ondelete="SET NULL"), index=True)
    # The household's one-time code, given to the volunteer on receipt. It proves a
    # delivery, not a person, and the household can look it up again in /status.
    code: Mapped[str | None] = mapped_column(String(6))
    wrong_codes: Mapped[int] = mapped_column(default=0, server_default="0")
    # Too many wrong codes: the volunteer can no longer confirm it; staff decide.
    locked: Mapped[bool] = mapped_column(default=False, server_default=false())
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    # The household said it did not receive what the volunteer marked delivered.
    disputed: Mapped[bool] = mapped_column(default=False, server_default=false())
    proof_media_id: Mapped[str | None] = mapped_column(String(200))
    proof_latitude: Mapped[float | None]
    proof_longitude: Mapped[float | None]
    delivered_at: Mapped[datetime | None]
    rating: Mapped[int | None]
    rating_comment: Mapped[str | None] = mapped_column(String(300))
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
