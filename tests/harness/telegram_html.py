"""Telegram's HTML parse mode, re-implemented closely enough to fail where Telegram fails.

The algorithm follows tdlib's `parse_html` (td/telegram/MessageEntity.cpp), which is what
the Bot API runs for `parse_mode=HTML`: the same accepted tags, the same error texts
("Unsupported start tag ...", "Can't find end tag corresponding to start tag ...") and
byte offsets, so a bot that passes here should pass on Telegram and vice versa.

One deliberate difference, on by default (`strict_ampersand`): Telegram keeps a bare `&`
that does not start `&lt;`, `&gt;`, `&amp;`, `&quot;` or `&#NNN;` as text. The fake rejects
it, because in a bot that builds HTML an unescaped `&` nearly always means user text was
not passed through `html.escape` - and the same text with `&lt;` in it would render wrong.
"""

from __future__ import annotations

import re
from typing import Any

JsonDict = dict[str, Any]

# tdlib's whitelist; anything else is "Unsupported start tag".
_SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_ENTITY_TYPE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# Telegram trims these from both ends of a message text (tdlib fix_formatted_text).
_TRIMMED = " \t\n\r\u00a0\u2028\u2029"


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; str(exc) is tdlib's wording."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def utf16_slice(text: str, offset: int, length: int) -> str:
    """The part of `text` an entity covers (offset and length in UTF-16 code units)."""
    encoded = text.encode("utf-16-le")
    return encoded[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="replace")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode `&...;` at text[i]; return (character, index after ';') or None."""
    end = text.find(";", i + 1, i + 12)
    if end == -1:
        return None
    body = text[i + 1 : end]
    if body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], end + 1
    if body.startswith("#"):
        digits = body[1:]
        try:
            code = int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits, 10)
        except ValueError:
            return None
        if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code), end + 1
    return None


def _is_space(ch: str) -> bool:
    return ch in " \t\r\n\f\v"


def parse_html(text: str, *, strict_ampersand: bool = True) -> tuple[str, list[JsonDict]]:
    """Return (plain text, entities) for an HTML-formatted message, as Telegram would.

    Raises EntityParseError with tdlib's message when Telegram would answer
    "Bad Request: can't parse entities: ...".
    """
    out: list[str] = []
    out_utf16 = 0
    entities: list[JsonDict] = []
    # open tags: (tag, argument, utf16 offset where its content starts)
    stack: list[tuple[str, str, int]] = []
    n = len(text)
    i = 0

    def at(k: int) -> str:
        return text[k] if k < n else "\0"

    while i < n:
        ch = text[i]
        if ch == "&":
            decoded = _decode_entity(text, i)
            if decoded is not None:
                out.append(decoded[0])
                out_utf16 += utf16_len(decoded[0])
                i = decoded[1]
                continue
            if strict_ampersand:
                raise EntityParseError(
                    f'Unescaped "&" at byte offset {_byte_offset(text, i)} (stricter than '
                    "Telegram, which keeps it as text: escape user text with html.escape, or "
                    "use FakeTelegram(strict_html=False))"
                )
        if ch != "<":
            out.append(ch)
            out_utf16 += utf16_len(ch)
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != "/":
            # start tag
            while i < n and not _is_space(text[i]) and text[i] != ">":
                i += 1
            if i >= n:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                )
            tag = text[begin + 1 : i].lower()
            if tag not in _SUPPORTED_TAGS:
                raise EntityParseError(
                    f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
                )
            argument = ""
            while at(i) != ">":
                while i < n and _is_space(text[i]):
                    i += 1
                if at(i) == ">":
                    break
                attr_begin = i
                while i < n and not _is_space(text[i]) and text[i] != "=":
                    i += 1
                attr_name = text[attr_begin:i]
                if not attr_name:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset '
                        f"{_byte_offset(text, begin)}"
                    )
                while i < n and _is_space(text[i]):
                    i += 1
                if at(i) != "=":
                    raise EntityParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {_byte_offset(text, begin)}'
                    )
                i += 1
                while i < n and _is_space(text[i]):
                    i += 1
                if i >= n:
                    raise EntityParseError(
                        f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
                    )
                value_chars: list[str] = []
                if text[i] not in "'\"":
                    token_begin = i
                    while i < n and (text[i].isalnum() or text[i] in ".-"):
                        i += 1
                    value = text[token_begin:i].lower()
                    if i < n and not _is_space(text[i]) and text[i] != ">":
                        raise EntityParseError(
                            "Unexpected end of name token at byte offset "
                            f"{_byte_offset(text, token_begin)}"
                        )
                else:
                    quote = text[i]
                    i += 1
                    while i < n and text[i] != quote:
                        if text[i] == "&":
                            decoded = _decode_entity(text, i)
                            if decoded is not None:
                                value_chars.append(decoded[0])
                                i = decoded[1]
                                continue
                        value_chars.append(text[i])
                        i += 1
                    if i < n:
                        i += 1
                    value = "".join(value_chars)
                if i >= n:
                    raise EntityParseError(
                        f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                    )
                if tag == "a" and attr_name == "href":
                    argument = value
                elif tag == "code" and attr_name == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and attr_name == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and attr_name == "emoji-id":
                    argument = value
                elif tag == "blockquote" and attr_name == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    'Tag "span" must have class "tg-spoiler" at byte offset '
                    f"{_byte_offset(text, begin)}"
                )
            i += 1  # past '>'
            stack.append((tag, argument, out_utf16))
            continue

        # end tag
        if not stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
        i += 1  # past '/'
        name_begin = i
        while i < n and not _is_space(text[i]) and text[i] != ">":
            i += 1
        end_name = text[name_begin:i].lower()
        while i < n and _is_space(text[i]):
            i += 1
        if at(i) != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
        i += 1
        tag, argument, start = stack.pop()
        if end_name and end_name != tag:
            raise EntityParseError(
                f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                f'expected "</{tag}>", found "</{end_name}>"'
            )
        if out_utf16 > start:
            entities.append(_entity(tag, argument, start, out_utf16 - start))

    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    _merge_pre_code(entities)
    return _trim("".join(out), entities)


def _entity(tag: str, argument: str, offset: int, length: int) -> JsonDict:
    kind = _ENTITY_TYPE[tag]
    entity: JsonDict = {"type": kind, "offset": offset, "length": length}
    if tag == "a":
        if argument.startswith("tg://user?id="):
            entity = {
                "type": "text_mention",
                "offset": offset,
                "length": length,
                "user": {
                    "id": int(argument.split("=", 1)[1] or 0),
                    "is_bot": False,
                    "first_name": "",
                },
            }
        else:
            entity["url"] = argument
    elif tag == "code" and argument:
        entity["language"] = argument  # merged into an enclosing <pre> below
    elif tag == "blockquote" and argument:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = argument
    return entity


def _merge_pre_code(entities: list[JsonDict]) -> None:
    """`<pre><code class="language-x">` is one `pre` entity with a language, as in tdlib."""
    for code in [e for e in entities if e["type"] == "code" and "language" in e]:
        pre = next(
            (
                e
                for e in entities
                if e["type"] == "pre"
                and e["offset"] == code["offset"]
                and e["length"] == code["length"]
            ),
            None,
        )
        if pre is not None:
            pre["language"] = code["language"]
            entities.remove(code)
        else:
            del code["language"]


def _trim(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Strip surrounding whitespace like Telegram does and clip entities to what is left."""
    stripped = text.strip(_TRIMMED)
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip(_TRIMMED))])
    total = utf16_len(stripped)
    result: list[JsonDict] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    result.sort(key=lambda e: (e["offset"], -e["length"]))
    return stripped, result


def trim_plain(text: str, entities: list[JsonDict] | None) -> tuple[str, list[JsonDict]]:
    """Text without parse mode: Telegram still trims it (and shifts given entities)."""
    return _trim(text, list(entities or []))


_BOT_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")


def command_entities(text: str, key: str = "text") -> JsonDict:
    """Entities a Telegram app adds to typed text: bot commands (/start, /bind@bot)."""
    entities = [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])}
        for m in _BOT_COMMAND_RE.finditer(text)
    ]
    if not entities:
        return {}
    return {"entities" if key == "text" else "caption_entities": entities}
