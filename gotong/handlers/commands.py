"""Global commands, their aliases in each language, and the main menu."""

from __future__ import annotations

from dataclasses import dataclass

from gotong.handlers.messages import Hint, Option, Reply
from gotong.handlers.roles import Held, roles
from gotong.handlers.turn import Turn


@dataclass(frozen=True)
class Command:
    name: str
    # Aliases per language; the first is the one shown in that language's menu.
    aliases: dict[str, tuple[str, ...]]
    description: str  # catalog key
    in_menu: bool = True


COMMANDS: tuple[Command, ...] = (
    Command("start", {"id": ("start", "mulai"), "en": ("start",)}, "command.start", False),
    Command("menu", {"id": ("menu",), "en": ("menu",)}, "command.menu"),
    Command("request", {"id": ("minta", "minta_bantuan"), "en": ("request",)},
            "command.request"),
    Command("donate", {"id": ("donasi",), "en": ("donate",)}, "command.donate"),
    Command("status", {"id": ("status",), "en": ("status",)}, "command.status"),
    Command("cancel_request", {"id": ("batalkan_permintaan",), "en": ("cancel_request",)},
            "command.cancel_request"),
    Command("language", {"id": ("bahasa",), "en": ("language",)}, "command.language"),
    Command("stop", {"id": ("berhenti",), "en": ("stop",)}, "command.stop"),
    Command("resume", {"id": ("terima_kabar",), "en": ("resume",)}, "command.resume"),
    Command("my_data", {"id": ("data_saya",), "en": ("my_data",)}, "command.my_data"),
    Command("delete_my_data", {"id": ("hapus_data",), "en": ("delete_my_data",)},
            "command.delete_my_data"),
    Command("cancel", {"id": ("batal",), "en": ("cancel",)}, "command.cancel"),
    Command("back", {"id": ("kembali",), "en": ("back",)}, "command.back"),
    Command("help", {"id": ("bantuan",), "en": ("help",)}, "command.help"),
    Command("person", {"id": ("petugas",), "en": ("human",)}, "command.person"),
    Command("continue", {"id": ("lanjut",), "en": ("continue",)}, "command.continue", False),
    Command("inbox", {"id": ("pesan",), "en": ("inbox",)}, "command.inbox", False),
    Command("join", {"id": ("gabung",), "en": ("join",)}, "command.join", False),
    Command("queue", {"id": ("antrian",), "en": ("queue",)}, "command.queue", False),
    Command("incoming", {"id": ("donasi_masuk",), "en": ("incoming",)}, "command.incoming",
            False),
    Command("stock", {"id": ("stok",), "en": ("stock",)}, "command.stock", False),
    Command("allocate", {"id": ("alokasi",), "en": ("allocate",)}, "command.allocate", False),
    Command("assign", {"id": ("tugaskan",), "en": ("assign",)}, "command.assign", False),
    Command("review", {"id": ("tinjau",), "en": ("review",)}, "command.review", False),
    Command("ratings", {"id": ("penilaian",), "en": ("ratings",)}, "command.ratings", False),
    Command("dashboard", {"id": ("dasbor",), "en": ("dashboard",)}, "command.dashboard",
            False),
    Command("volunteers", {"id": ("relawan_baru",), "en": ("volunteers",)},
            "command.volunteers", False),
    Command("invite_volunteer", {"id": ("undang_relawan",), "en": ("invite_volunteer",)},
            "command.invite_volunteer", False),
    Command("volunteer", {"id": ("relawan",), "en": ("volunteer",)}, "command.volunteer",
            False),
    Command("tasks", {"id": ("tugas",), "en": ("tasks",)}, "command.tasks", False),
    Command("invite_proxy", {"id": ("undang_pendamping",), "en": ("invite_proxy",)},
            "command.invite_proxy", False),
    Command("proxy", {"id": ("pendamping",), "en": ("proxy",)}, "command.proxy", False),
    Command("register_household", {"id": ("daftarkan",), "en": ("register_household",)},
            "command.register_household", False),
    Command("leave", {"id": ("berhenti_relawan",), "en": ("leave",)}, "command.leave", False),
)

_BY_ALIAS = {alias: c.name for c in COMMANDS for names in c.aliases.values() for alias in names}


def resolve_command(word: str) -> str | None:
    """The command a typed /word names, in any language (or None)."""
    return _BY_ALIAS.get(word.lower())


def command_menu(turn_language: str) -> list[tuple[str, str]]:
    """(command, description key) pairs for a language's command menu."""
    return [(c.aliases[turn_language][0], c.description) for c in COMMANDS if c.in_menu]


MENU_CONTEXT = "menu"
# Every item the main menu can show; each person sees those of their roles.
MENU_ITEMS = ("request", "donate", "volunteer", "tasks", "queue", "incoming", "allocate",
              "assign", "status", "language", "help", "person")
# Items of one role: shown to those who have it.
ROLE_ITEMS = {"tasks": Held.VOLUNTEER, "queue": Held.STAFF, "incoming": Held.STAFF,
              "allocate": Held.STAFF, "assign": Held.STAFF}
# Sections of /help, each for the roles it names (None: for everyone), in order.
HELP_SECTIONS: tuple[tuple[str, Held | None], ...] = (
    ("help.everyone", None), ("help.household", Held.HOUSEHOLD), ("help.donor", Held.DONOR),
    ("help.volunteer", Held.VOLUNTEER), ("help.staff", Held.STAFF))


def menu_items(turn: Turn) -> tuple[str, ...]:
    """The main menu's items for this person: their roles' items, and "become a
    volunteer" only for someone who is neither a volunteer nor staff."""
    held = roles(turn)
    return tuple(item for item in MENU_ITEMS
                 if (item not in ROLE_ITEMS or ROLE_ITEMS[item] in held)
                 and not (item == "volunteer" and held & {Held.VOLUNTEER, Held.STAFF}))


def help_reply(turn: Turn) -> Reply:
    """/help: what Gotong does, and the commands of the person's roles."""
    held = roles(turn)
    parts = [turn.t("help.intro")]
    parts += [turn.t(key) for key, role in HELP_SECTIONS if role is None or role in held]
    if not held & {Held.VOLUNTEER, Held.STAFF}:
        parts.append(turn.t("help.join"))
    parts.append(turn.t("help.buttons"))
    return Reply(text="\n\n".join(parts))
LANGUAGE_CONTEXT = "lang"
LANGUAGE_NAMES = {"id": "Bahasa Indonesia", "en": "English"}


def menu_reply(turn: Turn, prefix: str | None = None) -> Reply:
    text = turn.t("menu.title")
    if prefix:
        text = f"{prefix}\n\n{text}"
    options = tuple(Option(item, turn.t(f"menu.{item}"), number=i + 1)
                    for i, item in enumerate(menu_items(turn)))
    return Reply(text=text, options=options, hint=Hint.SINGLE, context=MENU_CONTEXT)


def language_reply(turn: Turn) -> Reply:
    options = tuple(Option(code, name, number=i + 1)
                    for i, (code, name) in enumerate(LANGUAGE_NAMES.items()))
    return Reply(text=turn.t("language.choose"), options=options, hint=Hint.SINGLE,
                 context=LANGUAGE_CONTEXT)
