"""The dialog engine: forms declared as data, and the behaviour every form shares.

A `Form` is a list of `Field`s. The engine always asks the first field that applies
(`when`) and has no answer yet, so editing a field from the summary, going back, or
resuming after a restart is the same operation: remove answers, ask what is missing.
Every question gets the same handling: typed numbers and labels for options, a
specific hint and the same question on a wrong answer, back, skip for optional fields,
and paging of long option lists.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gotong.handlers.catalog import Catalog
from gotong.handlers.messages import Hint, Kind, Option, Reply
from gotong.handlers.turn import Turn
from gotong.handlers.validators import Invalid, small_number

SUMMARY = "summary"
HISTORY = "_history"  # answers key: the keys each accepted step set, newest last

# Control ids in button data; none of them can be a field option id.
PREV_PAGE = "<"
NEXT_PAGE = ">"
BACK = "back"
SKIP = "skip"
DONE = "done"
SUBMIT = "submit"
# The button offered after repeated wrong answers: talk to a person (handlers/support.py).
TALK = "person"
EDIT_PREFIX = "edit:"


class FieldKind(enum.StrEnum):
    TEXT = "text"
    CHOICE = "choice"
    MULTI = "multi"
    PHONE = "phone"


@dataclass(frozen=True)
class Choice:
    id: str
    label_key: str | None = None  # catalog key, or
    label: str | None = None  # a literal such as an area's name

    def render(self, turn: Turn) -> str:
        if self.label_key is not None:
            return turn.t(self.label_key)
        return self.label or self.id


@dataclass(frozen=True)
class Accept:
    """Answers to store; a value of None removes that answer. A note (catalog key) is
    said before the next question: what the answer changed, or what to do next."""

    values: Mapping[str, Any]
    note: str | None = None
    note_params: Mapping[str, object] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    """End the dialog without submitting, saying why."""

    message: str


Parsed = Accept | Invalid | Stop
Answers = Mapping[str, Any]
TextParser = Callable[[Turn, str, Answers], Parsed]
ChoiceHandler = Callable[[Turn, str, Answers], Parsed]
Choices = Callable[[Turn, Answers], Sequence[Choice]]


@dataclass(frozen=True)
class Field:
    name: str
    kind: FieldKind
    prompt: str
    label: str = ""  # catalog key of the field's name in the summary
    parse_text: TextParser | None = None
    choices: Choices | Sequence[Choice] = ()
    on_choice: ChoiceHandler | None = None
    optional: bool = False
    when: Callable[[Answers], bool] | None = None
    # How the answer reads in the summary; fields without it are not listed there.
    show: Callable[[Turn, Answers], str] | None = None
    # Answers that depend on this one and are asked again when it is edited.
    clears: tuple[str, ...] = ()
    # MULTI: options that cannot be combined with others ("none of these").
    exclusive: frozenset[str] = frozenset()
    min_selected: int = 0
    max_length: int | None = None
    prompt_params: Callable[[Turn, Answers], Mapping[str, object]] | None = None
    # CHOICE: a question with one possible answer is not asked. The answer is taken, and
    # the person is told it with the text this gives (the choice's id in, the text out).
    told_when_only: Callable[[Turn, Answers, str], str] | None = None

    def applies(self, answers: Answers) -> bool:
        return self.when is None or self.when(answers)

    def resolve_choices(self, turn: Turn, answers: Answers) -> Sequence[Choice]:
        return self.choices(turn, answers) if callable(self.choices) else self.choices


@dataclass(frozen=True)
class Form:
    name: str
    code: str  # short, for button data
    fields: tuple[Field, ...]
    summary_title: str
    submit: Callable[[Turn, Answers], Awaitable[list[Reply]]]
    # Runs before the form starts; replies instead of starting (e.g. an open request).
    precheck: Callable[[Turn], Awaitable[list[Reply] | None]] | None = None
    # Answers keys that are not fields: state between questions (e.g. candidates).
    state_keys: frozenset[str] = frozenset()
    # The main menu item that starts or resumes the form; left unfinished, the person is
    # reminded once with a button to it.
    menu_item: str | None = None
    # Answers known before the first question (what is on file of the person), read when
    # the form starts.
    start: Callable[[Turn], Awaitable[Mapping[str, Any]]] | None = None
    # Reads what the form's options need from the database into `turn.loaded`, before
    # the form handles or shows anything in an update (option lists are computed
    # synchronously).
    prepare: Callable[[Turn], Awaitable[None]] | None = None
    # A line the summary adds below the answers when there is something to know before
    # sending (e.g. that no organisation serves the area yet); None: nothing.
    summary_note: Callable[[Turn, Answers], str | None] | None = None

    def field(self, name: str | None) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def next_field(self, answers: Answers) -> Field | None:
        return next((f for f in self.fields if f.applies(answers) and f.name not in answers),
                    None)

    def context(self, step: str) -> str:
        return f"{self.code}.{step}"

    def valid_state(self, step: str | None, answers: Answers) -> bool:
        """A stored state the engine can continue from."""
        if step != SUMMARY and self.field(step) is None:
            return False
        known = {f.name for f in self.fields} | {HISTORY} | self.state_keys
        return all(key in known for key in answers)


# --- running a form -----------------------------------------------------------------


async def prepare(turn: Turn, form: Form) -> None:
    if form.prepare is not None:
        await form.prepare(turn)


async def begin(turn: Turn, form: Form) -> list[Reply]:
    await prepare(turn, form)
    if form.precheck is not None:
        replies = await form.precheck(turn)
        if replies is not None:
            return replies
    conversation = turn.conversation
    conversation.reset()
    conversation.dialog = form.name
    if form.start is not None:
        conversation.answers = dict(await form.start(turn))
    return ask_next(turn, form)


def ask_next(turn: Turn, form: Form, prefix: str | None = None) -> list[Reply]:
    """Move to the first unanswered field (or the summary) and ask it. Questions with a
    single possible answer are answered on the way, and the person is told so."""
    conversation = turn.conversation
    told = [prefix] if prefix else []
    field = form.next_field(conversation.answers)
    while field is not None and (only := _only_choice(turn, field)) is not None:
        assert field.told_when_only is not None
        answers = dict(conversation.answers)
        answers[field.name] = only
        # Taken with the answer that led here: going back asks that question again,
        # rather than this one, which would be answered again at once.
        history = [list(keys) for keys in answers.get(HISTORY, [])]
        if history:
            history[-1].append(field.name)
            answers[HISTORY] = history
        conversation.answers = answers
        told.append(field.told_when_only(turn, answers, only))
        field = form.next_field(conversation.answers)
    conversation.step = field.name if field else SUMMARY
    conversation.scratch = {}
    return [question(turn, form, prefix="\n\n".join(told) or None)]


def _only_choice(turn: Turn, field: Field) -> str | None:
    """The one answer a question told rather than asked can have, if it has only one."""
    if field.told_when_only is None:
        return None
    choices = field.resolve_choices(turn, turn.conversation.answers)
    return choices[0].id if len(choices) == 1 else None


def question(turn: Turn, form: Form, prefix: str | None = None, edit: bool = False) -> Reply:
    """The current question, as it would be asked now (after a page turn, say)."""
    step = turn.conversation.step or SUMMARY
    field = form.field(step)
    reply = _summary(turn, form) if field is None else _render_field(turn, form, field)
    if prefix:
        reply = _with_prefix(reply, prefix)
    if edit:
        reply = _replace(reply, edit=True)
    return reply


def _render_field(turn: Turn, form: Form, field: Field) -> Reply:
    answers = turn.conversation.answers
    params = dict(field.prompt_params(turn, answers)) if field.prompt_params else {}
    text = turn.t(field.prompt, **params)
    context = form.context(field.name)
    controls: list[Option] = []
    if field.optional:
        controls.append(Option(SKIP, turn.t("control.skip")))
    back = Option(BACK, turn.t("control.back")) if answers.get(HISTORY) else None
    if field.kind == FieldKind.PHONE:
        # A reply keyboard carries the "share my number" button; it cannot share a
        # message with inline buttons, so back and skip are typed here.
        return Reply(text=text, hint=Hint.CONTACT, context=context,
                     contact_label=turn.t("control.share_phone"))
    if field.kind == FieldKind.TEXT:
        return Reply(text=text, controls=(*controls, *filter(None, [back])), context=context)
    choices = field.resolve_choices(turn, answers)
    size = turn.settings.page_size
    pages = _page_count(turn, len(choices))
    page = min(int(turn.conversation.scratch.get("page", 0)), pages - 1)
    selected = set(turn.conversation.scratch.get("selected", ()))
    options = tuple(
        Option(c.id, c.render(turn), number=i + 1, selected=c.id in selected)
        for i, c in enumerate(choices)
    )[page * size : (page + 1) * size]
    paging: list[Option] = []
    if page > 0:
        # One "back" on a screen: past the first page it turns the page back, and only
        # on the first page does it go back to the previous question.
        back = Option(f"{PREV_PAGE}{page - 1}", turn.t("control.back"))
    if page < pages - 1:
        paging.append(Option(f"{NEXT_PAGE}{page + 1}", turn.t("control.next")))
    if back is not None:
        controls.append(back)
    if field.kind == FieldKind.MULTI:
        controls.insert(0, Option(DONE, turn.t("control.done")))
        hint = Hint.MULTI
    else:
        hint = Hint.SINGLE
    if pages > 1:
        text = f"{text}\n{turn.t('control.page', page=page + 1, pages=pages)}"
    return Reply(text=text, options=options, controls=tuple(paging + controls), hint=hint,
                 context=context, page=page, pages=pages)


def _page_count(turn: Turn, options: int) -> int:
    return max(1, -(-options // turn.settings.page_size))


def _summary_choices(turn: Turn, form: Form) -> list[Choice]:
    answers = turn.conversation.answers
    choices = [Choice(SUBMIT, "summary.submit")]
    for field in form.fields:
        if field.show is not None and field.applies(answers) and field.name in answers \
                and _only_choice(turn, field) is None:
            # An answer that had no alternative is not offered for a change.
            choices.append(Choice(EDIT_PREFIX + field.name,
                                  label=turn.t("summary.edit", field=turn.t(field.label))))
    return choices


def _summary(turn: Turn, form: Form) -> Reply:
    answers = turn.conversation.answers
    lines = [turn.t(form.summary_title)]
    for field in form.fields:
        if field.show is not None and field.applies(answers) and field.name in answers:
            lines.append(f"• {turn.t(field.label)}: {field.show(turn, answers)}")
    note = form.summary_note(turn, answers) if form.summary_note is not None else None
    if note:
        lines.extend(("", note))
    lines.append("")
    lines.append(turn.t("summary.prompt"))
    options = tuple(Option(c.id, c.render(turn), number=i + 1)
                    for i, c in enumerate(_summary_choices(turn, form)))
    return Reply(text="\n".join(lines), options=options, hint=Hint.SINGLE,
                 context=form.context(SUMMARY))


def _with_prefix(reply: Reply, prefix: str) -> Reply:
    return _replace(reply, text=f"{prefix}\n\n{reply.text}")


def _replace(reply: Reply, **changes: Any) -> Reply:
    return dataclasses.replace(reply, **changes)


# --- handling an answer -------------------------------------------------------------


async def step(turn: Turn, form: Form) -> list[Reply]:
    """Handle the incoming update as the answer to the current step."""
    conversation = turn.conversation
    if not form.valid_state(conversation.step, conversation.answers):
        # A state this version of the form cannot continue from: start the form over
        # rather than guess.
        conversation.answers = {}
        return ask_next(turn, form, prefix=turn.t("dialog.restarted"))
    incoming = turn.incoming
    step_name = conversation.step or SUMMARY
    if incoming.kind == Kind.CHOICE:
        if incoming.context != form.context(step_name):
            return [question(turn, form, prefix=turn.t("button.stale"))]
        return await _on_button(turn, form, incoming.option or "")
    if incoming.kind == Kind.TEXT:
        return await _on_text(turn, form, incoming.text.strip())
    field = form.field(step_name)
    if incoming.kind == Kind.CONTACT and field is not None and field.kind == FieldKind.PHONE:
        return await _apply(turn, form, field, _shared_phone(turn, field))
    return [question(turn, form, prefix=turn.t(f"reask.{incoming.kind.value}"))]


def _shared_phone(turn: Turn, field: Field) -> Parsed:
    assert field.parse_text is not None
    phone = turn.incoming.phone or ""
    parsed = field.parse_text(turn, phone, turn.conversation.answers)
    if isinstance(parsed, Accept) and turn.incoming.phone_is_own:
        turn.contact.verified_phone = parsed.values.get(field.name)
    return parsed


async def _on_button(turn: Turn, form: Form, option: str) -> list[Reply]:
    conversation = turn.conversation
    step_name = conversation.step or SUMMARY
    field = form.field(step_name)
    if option == BACK:
        return go_back(turn, form)
    if field is None:
        return await _on_summary(turn, form, option)
    choice_ids = [c.id for c in field.resolve_choices(turn, conversation.answers)]
    pages = _page_count(turn, len(choice_ids))
    page = small_number(option[1:]) if option.startswith((PREV_PAGE, NEXT_PAGE)) else None
    if page is not None and page < pages:
        conversation.scratch = {**conversation.scratch, "page": page}
        return [question(turn, form, edit=True)]
    if option == SKIP and field.optional:
        return await _apply(turn, form, field, Accept({field.name: ""}))
    if field.kind == FieldKind.MULTI:
        if option == DONE:
            selected = list(conversation.scratch.get("selected", ()))
            return await _apply(turn, form, field, _multi_answer(field, selected, choice_ids))
        if option in field.exclusive and option in choice_ids:
            # "None of these" is the whole answer: nothing to add, nothing to confirm.
            return await _apply(turn, form, field, _multi_answer(field, [option], choice_ids))
        if option in choice_ids:
            selected = _toggle(field, list(conversation.scratch.get("selected", ())), option)
            conversation.scratch = {**conversation.scratch, "selected": selected}
            return [question(turn, form, edit=True)]
    elif option in choice_ids:
        return await _apply(turn, form, field, _choose(turn, field, option))
    # Button data that names no option of this question was not made by us.
    return [question(turn, form, prefix=turn.t("button.invalid"))]


async def _on_text(turn: Turn, form: Form, text: str) -> list[Reply]:
    conversation = turn.conversation
    field = form.field(conversation.step)
    if not text:
        return [question(turn, form, prefix=turn.t("reask.empty"))]
    word = _control_word(turn, text)
    if word in (BACK, PREV_PAGE) and field is not None and field.kind in (
            FieldKind.CHOICE, FieldKind.MULTI):
        # "Back" and "previous" are one thing, as on the screen's one back button: the
        # page before, or on the first page the question before.
        page = int(conversation.scratch.get("page", 0))
        word = PREV_PAGE if page > 0 else BACK
    if word == BACK:
        return go_back(turn, form)
    if field is None:
        summary_choices = _summary_choices(turn, form)
        match = match_choice(turn, text, summary_choices)
        if match is None:
            return await _apply(turn, form, None,
                                Invalid("invalid.choice", {"max": len(summary_choices)}))
        return await _on_summary(turn, form, match)
    if field.max_length is not None and len(text) > field.max_length:
        return await _apply(turn, form, field,
                            Invalid("invalid.text.too_long", {"max": field.max_length}))
    if word == SKIP and field.optional:
        return await _apply(turn, form, field, Accept({field.name: ""}))
    answers = conversation.answers
    if field.kind in (FieldKind.TEXT, FieldKind.PHONE):
        assert field.parse_text is not None
        return await _apply(turn, form, field, field.parse_text(turn, text, answers))
    choices = field.resolve_choices(turn, answers)
    if word in (NEXT_PAGE, PREV_PAGE):
        page = int(conversation.scratch.get("page", 0)) + (1 if word == NEXT_PAGE else -1)
        pages = _page_count(turn, len(choices))
        conversation.scratch = {**conversation.scratch, "page": max(0, min(page, pages - 1))}
        return [question(turn, form)]
    if field.kind == FieldKind.MULTI:
        if word == DONE:
            selected = list(conversation.scratch.get("selected", ()))
            return await _apply(turn, form, field,
                                _multi_answer(field, selected, [c.id for c in choices]))
        return await _apply(turn, form, field, _parse_multi(turn, field, text, choices))
    match = match_choice(turn, text, choices)
    if match is not None:
        return await _apply(turn, form, field, _choose(turn, field, match))
    if field.parse_text is not None:
        return await _apply(turn, form, field, field.parse_text(turn, text, answers))
    return await _apply(turn, form, field, Invalid("invalid.choice", {"max": len(choices)}))


async def _on_summary(turn: Turn, form: Form, option: str) -> list[Reply]:
    conversation = turn.conversation
    if option == SUBMIT:
        answers = {k: v for k, v in conversation.answers.items() if k != HISTORY}
        applicable = {f.name for f in form.fields if f.applies(answers)}
        # Answers to fields that no longer apply are left out; the form's own state
        # (e.g. the invite a volunteer signs up with) is kept.
        replies = await form.submit(turn, {k: v for k, v in answers.items()
                                           if k in applicable or k in form.state_keys})
        conversation.reset()
        turn.completed = True
        return replies
    field = form.field(option.removeprefix(EDIT_PREFIX)) if option.startswith(EDIT_PREFIX) else None
    if field is None or field.show is None:
        return [question(turn, form, prefix=turn.t("button.invalid"))]
    answers = dict(conversation.answers)
    for name in (field.name, *field.clears):
        answers.pop(name, None)
    conversation.answers = answers
    return ask_next(turn, form)


def go_back(turn: Turn, form: Form) -> list[Reply]:
    conversation = turn.conversation
    answers = dict(conversation.answers)
    history: list[list[str]] = list(answers.get(HISTORY, []))
    if not history:
        return [question(turn, form, prefix=turn.t("control.back_none"))]
    for key in history.pop():
        answers.pop(key, None)
    answers[HISTORY] = history
    conversation.answers = answers
    return ask_next(turn, form)


async def _apply(turn: Turn, form: Form, field: Field | None, parsed: Parsed) -> list[Reply]:
    conversation = turn.conversation
    if isinstance(parsed, Stop):
        conversation.reset()
        return [Reply(text=turn.t(parsed.message), remove_keyboard=True)]
    if isinstance(parsed, Invalid):
        conversation.invalid_attempts += 1
        hint = turn.t(parsed.reason, **parsed.params)
        if conversation.invalid_attempts >= turn.settings.max_invalid_attempts:
            conversation.invalid_attempts = 0
            hint = f"{hint}\n\n{turn.t('dialog.stuck')} {turn.t('support.stuck')}"
            asked = question(turn, form, prefix=hint)
            if asked.hint == Hint.CONTACT:
                # The "share my number" keyboard takes no other button: the hint says
                # what to type.
                return [asked]
            # A way out to someone who can help, beside the question's own buttons.
            return [_replace(asked, controls=(*asked.controls,
                                              Option(TALK, turn.t("support.talk"))))]
        return [question(turn, form, prefix=hint)]
    answers = dict(conversation.answers)
    set_keys = []
    for key, value in parsed.values.items():
        if value is None:
            answers.pop(key, None)
        else:
            answers[key] = value
            set_keys.append(key)
    if set_keys:
        answers[HISTORY] = [*answers.get(HISTORY, []), set_keys]
    conversation.answers = answers
    conversation.invalid_attempts = 0
    replies: list[Reply] = []
    if field is not None and field.kind == FieldKind.PHONE:
        # The "share my number" keyboard has served its purpose.
        replies.append(Reply(text=turn.t("phone.saved"), remove_keyboard=True))
    note = turn.t(parsed.note, **parsed.note_params) if parsed.note else None
    replies.extend(ask_next(turn, form, prefix=note))
    return replies


def _choose(turn: Turn, field: Field, option: str) -> Parsed:
    if field.on_choice is not None:
        return field.on_choice(turn, option, turn.conversation.answers)
    return Accept({field.name: option})


def _toggle(field: Field, selected: list[str], option: str) -> list[str]:
    if option in selected:
        return [s for s in selected if s != option]
    # An exclusive option ends the question when tapped (_on_button), so it is never
    # toggled on; one chosen before this version of the form is let go here.
    return [*(s for s in selected if s not in field.exclusive), option]


def _multi_answer(field: Field, selected: list[str], choice_ids: Sequence[str]) -> Parsed:
    ordered = [c for c in choice_ids if c in selected]
    if len(ordered) < field.min_selected:
        return Invalid("invalid.multi.empty", {"min": field.min_selected})
    if len(ordered) > 1 and any(c in field.exclusive for c in ordered):
        return Invalid("invalid.multi.exclusive")
    return Accept({field.name: ordered})


def _parse_multi(turn: Turn, field: Field, text: str, choices: Sequence[Choice]) -> Parsed:
    parts: Sequence[str] = re.split(r"[,;/\n]+", text)
    if len(parts) == 1 and re.fullmatch(r"[\d\s.]+", text):
        parts = re.split(r"[\s.]+", text)
    selected: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        match = match_choice(turn, part, choices)
        if match is None:
            return Invalid("invalid.multi.unknown", {"item": part[:40], "max": len(choices)})
        if match not in selected:
            selected.append(match)
    return _multi_answer(field, selected, [c.id for c in choices])


# --- matching what people type ------------------------------------------------------


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def match_choice(turn: Turn, text: str, choices: Sequence[Choice]) -> str | None:
    """The option a typed answer names: its number, its label, or a unique part of it."""
    wanted = _fold(text)
    if not wanted:
        return None
    number = small_number(wanted)
    if number is not None:
        index = number - 1
        return choices[index].id if 0 <= index < len(choices) else None
    labels = [(c.id, _fold(c.render(turn))) for c in choices]
    exact = [cid for cid, label in labels if label == wanted or _fold(cid) == wanted]
    if len(exact) == 1:
        return exact[0]
    if len(wanted) >= 3:
        partial = [cid for cid, label in labels if f" {wanted} " in f" {label} "]
        if len(partial) == 1:
            return partial[0]
    return None


_CONTROL_KEYS = ((BACK, "words.back"), (SKIP, "words.skip"), (DONE, "words.done"),
                 (NEXT_PAGE, "words.next"), (PREV_PAGE, "words.prev"))
_CONTROL_SYMBOLS = {"-": SKIP, ">": NEXT_PAGE, ">>": NEXT_PAGE, "<": PREV_PAGE,
                    "<<": PREV_PAGE}


@functools.lru_cache(maxsize=8)
def _control_words(catalog: Catalog) -> dict[str, str]:
    """Typed word -> control, in every language of the catalog (read once)."""
    words: dict[str, str] = {}
    for control, key in _CONTROL_KEYS:
        for language in catalog.languages:
            for word in catalog.text(language, key).split("|"):
                words.setdefault(_fold(word), control)
    return words


def _control_word(turn: Turn, text: str) -> str | None:
    """A typed control (back, skip, done, next, previous) in either language."""
    stripped = text.strip()
    if stripped in _CONTROL_SYMBOLS:
        return _CONTROL_SYMBOLS[stripped]
    folded = _fold(text)
    return _control_words(turn.catalog).get(folded) if folded else None
