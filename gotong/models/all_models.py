"""Imports every model module, so that the metadata knows every table."""

from gotong.models.aggregator import Aggregator, AggregatorArea, Invite, StaffMember
from gotong.models.area import Area
from gotong.models.audit import AuditEntry
from gotong.models.broadcast import Broadcast
from gotong.models.contact import Contact, ContactRole
from gotong.models.conversation import Conversation
from gotong.models.dashboard import DashboardSession, SignInLink
from gotong.models.delivery import Delivery, DeliverySource
from gotong.models.digest import Digest
from gotong.models.figures import FigureClock, VillageDayFigures, VillageFigures
from gotong.models.help_request import HelpRequest, RequestEvent
from gotong.models.inbound import InboundUpdate
from gotong.models.number_asks import NumberAsked
from gotong.models.outbox import OutboxMessage
from gotong.models.phone_confirmation import PhoneConfirmation
from gotong.models.pledge import Pledge
from gotong.models.presence import SenderPresence
from gotong.models.proxy import Proxy
from gotong.models.stock import StockItem
from gotong.models.support import SupportConversation, SupportMessage
from gotong.models.volunteer import Volunteer, VolunteerArea

__all__ = [
    "Aggregator",
    "AggregatorArea",
    "Area",
    "AuditEntry",
    "Broadcast",
    "Contact",
    "ContactRole",
    "Conversation",
    "DashboardSession",
    "Delivery",
    "DeliverySource",
    "Digest",
    "FigureClock",
    "HelpRequest",
    "InboundUpdate",
    "Invite",
    "NumberAsked",
    "OutboxMessage",
    "PhoneConfirmation",
    "Pledge",
    "Proxy",
    "RequestEvent",
    "SenderPresence",
    "SignInLink",
    "StaffMember",
    "StockItem",
    "SupportConversation",
    "SupportMessage",
    "VillageDayFigures",
    "VillageFigures",
    "Volunteer",
    "VolunteerArea",
]
