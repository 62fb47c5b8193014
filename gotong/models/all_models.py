"""Imports every model module, so that the metadata knows every table."""

from gotong.models.area import Area
from gotong.models.contact import Contact
from gotong.models.conversation import Conversation
from gotong.models.help_request import HelpRequest, RequestEvent
from gotong.models.inbound import InboundUpdate

__all__ = ["Area", "Contact", "Conversation", "HelpRequest", "InboundUpdate", "RequestEvent"]
