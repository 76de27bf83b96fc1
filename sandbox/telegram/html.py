"""Telegram's HTML parse mode, ported from TDLib's parser so the errors read the same."""

from __future__ import annotations

from urllib.parse import urlsplit

from .model import JsonDict


class HtmlParseError(ValueError):
    """Telegram's HTML parser refused the text; the message is Telegram's own wording."""


# ---------------------------------------------------------------------------------------------
# Telegram's HTML parse mode, ported from TDLib's parser so the errors read the same
# ---------------------------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler",
        "tg-emoji", "span", "pre", "code", "blockquote",
    }
)  # fmt: skip
_SIMPLE_ENTITY_TYPES = {
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
}
# TDLib's is_space() counts NUL as a space; the parser below relies on a NUL sentinel.
_SPACE = frozenset(b" \t\r\n\v\0")
_NAMED_ENTITIES = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode_html_entity(data: bytes, pos: int) -> tuple[str, int] | None:
    """Decode ``&...`` at ``pos``; None when it is not an entity Telegram knows (then the ``&`` is
    kept literally, which Telegram allows). The ``;`` is optional, as in TDLib."""
    end = pos + 1
    if data[end] == ord("#"):
        end += 1
        code = 0
        if data[end] == ord("x"):
            end += 1
            while chr(data[end]) in "0123456789abcdefABCDEF":
                code = code * 16 + int(chr(data[end]), 16)
                end += 1
        else:
            while ord("0") <= data[end] <= ord("9"):
                code = code * 10 + data[end] - ord("0")
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return None
        if 0xD800 <= code <= 0xDFFF:
            raise HtmlParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        char = chr(code)
    else:
        while chr(data[end]).isascii() and chr(data[end]).isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(data[pos + 1 : end])
        if named is None:
            return None  # only these four named entities are supported; others stay literal
        char = named
    if data[end] == ord(";"):
        end += 1
    return char, end


def _normalise_link(url: str) -> str | None:
    if url.startswith("tg://"):
        return url
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ftp") or not parts.netloc or " " in url:
        return None  # Telegram silently drops a link it cannot parse, keeping the text
    if not parts.path:
        url = parts._replace(path="/").geturl()
    return url


def parse_html(text: str) -> tuple[str, list[JsonDict]]:
    """Telegram's ``parse_mode=HTML``: the plain text and its entities (UTF-16 offsets).

    Raises HtmlParseError with Telegram's wording ("Unsupported start tag "br" at byte offset 5").
    Note what trips bots in practice: ``<br>``, ``<p>``, ``<div>`` are unsupported, and a bare
    ``<`` in user-provided text starts a tag.
    """
    data = text.encode() + b"\0"  # NUL sentinel, like the C string TDLib walks
    size = len(data) - 1
    out: list[str] = []
    utf16 = 0
    stack: list[tuple[str, str, int, int]] = []  # (tag, argument, utf16 offset, index in out)
    entities: list[JsonDict] = []
    i = 0

    def plain_since(index: int) -> str:
        return "".join(out[index:])

    while i < size:
        c = data[i]
        if c == ord("&"):
            decoded = _decode_html_entity(data, i)
            if decoded is not None:
                char, i = decoded
                out.append(char)
                utf16 += _utf16_len(char)
                continue
        if c != ord("<"):
            start = i
            i += 1
            while i < size and data[i] not in (ord("<"), ord("&")):
                i += 1
            chunk = data[start:i].decode()
            out.append(chunk)
            utf16 += _utf16_len(chunk)
            continue

        begin = i
        i += 1
        if data[i] != ord("/"):
            while data[i] not in _SPACE and data[i] != ord(">"):
                i += 1
            if data[i] == 0:
                raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
            tag = data[begin + 1 : i].decode(errors="replace").lower()
            if tag not in _HTML_TAGS:
                raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            while data[i] != ord(">"):
                while data[i] != 0 and data[i] in _SPACE:
                    i += 1
                if data[i] == ord(">"):
                    break
                attribute_begin = i
                while data[i] not in _SPACE and data[i] != ord("="):
                    i += 1
                attribute = data[attribute_begin:i].decode(errors="replace")
                if not attribute:
                    raise HtmlParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while data[i] != 0 and data[i] in _SPACE:
                    i += 1
                if data[i] != ord("="):
                    if tag == "blockquote" and attribute == "expandable":
                        argument = "expandable"
                        continue
                    raise HtmlParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {begin}'
                    )
                i += 1
                while data[i] != 0 and data[i] in _SPACE:
                    i += 1
                if data[i] == 0:
                    raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if data[i] not in (ord("'"), ord('"')):
                    token_begin = i
                    while chr(data[i]).isascii() and (chr(data[i]).isalnum() or data[i] in b".-"):
                        i += 1
                    value = data[token_begin:i].decode().lower()
                    if data[i] not in _SPACE and data[i] != ord(">"):
                        raise HtmlParseError(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:
                    quote = data[i]
                    i += 1
                    chars: list[str] = []
                    raw_start = i
                    while data[i] != quote and data[i] != 0:
                        if data[i] == ord("&"):
                            decoded = _decode_html_entity(data, i)
                            if decoded is not None:
                                chars.append(data[raw_start:i].decode(errors="replace"))
                                chars.append(decoded[0])
                                i = raw_start = decoded[1]
                                continue
                        i += 1
                    chars.append(data[raw_start:i].decode(errors="replace"))
                    value = "".join(chars)
                    if data[i] == quote:
                        i += 1
                if data[i] == 0:
                    raise HtmlParseError(f"Unclosed start tag at byte offset {begin}")
                if tag == "a" and attribute == "href":
                    argument = value
                elif tag == "code" and attribute == "class" and value.startswith("language-"):
                    argument = value.removeprefix("language-")
                elif tag == "span" and attribute == "class" and value.startswith("tg-"):
                    argument = value.removeprefix("tg-")
                elif tag == "tg-emoji" and attribute == "emoji-id":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise HtmlParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            stack.append((tag, argument, utf16, len(out)))
            i += 1  # past ">"
            continue

        # an end tag
        if not stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {begin}")
        while data[i] not in _SPACE and data[i] != ord(">"):
            i += 1
        end_tag = data[begin + 2 : i].decode(errors="replace")
        while data[i] != 0 and data[i] in _SPACE:
            i += 1
        if data[i] != ord(">"):
            raise HtmlParseError(f"Unclosed end tag at byte offset {begin}")
        tag, argument, offset, out_index = stack.pop()
        if end_tag and end_tag != tag:  # "</>" closes whatever is open
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                f'found "</{end_tag}>"'
            )
        i += 1
        length = utf16 - offset
        if length <= 0:
            continue  # Telegram drops empty entities
        entity: JsonDict = {"offset": offset, "length": length}
        if tag in _SIMPLE_ENTITY_TYPES:
            entity["type"] = _SIMPLE_ENTITY_TYPES[tag]
        elif tag == "a":
            url = _normalise_link(argument or plain_since(out_index))
            if url is None:
                continue
            entity.update(type="text_link", url=url)
        elif tag == "tg-emoji":
            entity.update(type="custom_emoji", custom_emoji_id=argument)
        elif tag == "blockquote":
            entity["type"] = "expandable_blockquote" if argument else "blockquote"
        elif tag == "pre":
            last = entities[-1] if entities else None
            if (
                last
                and last["type"] == "code"
                and (last["offset"], last["length"]) == (offset, length)
                and "language" in last
            ):
                last["type"] = "pre"  # <pre><code class="language-x"> is one pre entity
                continue
            entity["type"] = "pre"
        else:  # code
            last = entities[-1] if entities else None
            if (
                argument
                and last
                and last["type"] == "pre"
                and last["offset"] == offset
                and last["length"] == length
            ):
                last["language"] = argument
                continue
            entity["type"] = "code"
            if argument:
                entity["language"] = argument  # only kept if an enclosing <pre> claims it
        entities.append(entity)

    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def strip_formatted(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Telegram trims leading and trailing whitespace of a message, moving entities along."""
    stripped_left = text.lstrip()
    shift = _utf16_len(text) - _utf16_len(stripped_left)
    stripped = stripped_left.rstrip()
    total = _utf16_len(stripped)
    result: list[JsonDict] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result
