"""The deny list: protected terms (brands, characters, franchises, leagues, teams, celebrities,
slogans) and a matcher that finds them in a design's text however they are disguised.

The list is the shipped ``deny_terms.json`` plus the seller's own file
(``SCREENING_DENY_TERMS_FILE``, the same format), which may add entries, replace a shipped entry
of the same term and remove shipped ones (``"remove": ["Coach"]``: a brand the seller licenses).

Matching works on a *skeleton* of the text, the same for the text and for the terms:

- zero-width characters are dropped; NFKD folds fullwidth and styled letters to plain ones and
  strips accents; Cyrillic and Greek look-alikes become the Latin letter they imitate; case is
  folded;
- leetspeak digits and symbols become the letter they stand for (0 o, 1 i, 3 e, 4 a, 5 s, 7 t,
  and @ $ ! | inside a word), and ``l`` and ``i`` are one letter (``1`` reads as either); forms
  of at most :data:`STRICT_UP_TO` letters (NFL, MLB) are checked as written, where only a 1 may
  stand for an i or l ("MiB" is not MLB, "miss" not MLS);
- an apostrophe inside a word is dropped (``Disney's`` reads ``disneys``), and a term may end in a
  plural or possessive ``s``/``es``.

A term matches whole words only: ``snike``, ``manikin`` and ``marvelous`` contain a term but are
other words. The words of a multi-word term may be written apart or together (``Spider-Man``,
``spider man``, ``spiderman``), but a word of a term is never assembled from whole words of the
text (``tar get`` is not Target, ``an ike`` is not Nike). The one exception is the spacing
evasion: a word spelled out in *fragments* of one size (``n i k e``, ``n.i.k.e``, ``ni ke``),
where a fragment is a single character, or two characters that are not a common two-letter word
(``so NY`` stays "so New York", never Sony; ``NB. a`` is no NBA).

Some marks are ordinary words too (Apple, Target, Coach, Jordan, Gap, Dove, Heat, Magic...).
Their entries are ``ambiguous``: the bare word matches only with a brand context within
:data:`CONTEXT_WINDOW` words of it in the same field: one of the entry's own ``context`` words
(``apple`` + ``iphone``, ``jordan`` + ``sneakers``) or a generic one (``logo``, ``brand``,
``official``...). Their qualified names (``Air Jordan``, ``Miami Heat``) are plain aliases and
always match. An entry's ``allow`` phrases are innocent uses containing it (``winged Nike`` of
Samothrace): a hit inside one of them is not reported.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.contract.events import ScreenedField
from shared.domain.screening.checks import TermHit
from shared.domain.screening.settings import ScreeningSettings
from shared.platform.errors import ConfigError

logger = logging.getLogger(__name__)

SHIPPED = "deny_terms.json"
# Words on either side of an ambiguous term in which a brand context counts.
CONTEXT_WINDOW = 4
# Words that make any ambiguous term a brand, whatever the entry (compared as skeletons).
GENERIC_CONTEXT = frozenset(
    {"logo", "logos", "brand", "branded", "official", "licensed", "trademark", "tm", "merch"}
)
# Two-letter pieces that are words (or the usual abbreviations), never fragments of a spelled-out
# term: "so NY" is not Sony, "di or" is not Dior.
_TWO_LETTER_WORDS = (
    "am an as at be by do go he hi if in is it me my no of oh ok on or ox so to up us we ya yo "
    "ny la uk tv dj mr ms dr st vs pm ad ai id ex eh ah uh"
)
COMMON_TWO_LETTER = frozenset(_TWO_LETTER_WORDS.split())

# Removed before anything else: they would split a word without showing a gap.
_INVISIBLE = dict.fromkeys(
    map(
        ord,
        "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e"
        "\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\ufeff",
    ),
    None,
)
# Look-alikes, written as escapes (the characters themselves cannot be told apart on screen).
# Capitals that look like a Latin capital while their lower case does not look like its lower
# case (Greek Nu is N, its lower case looks like v): read before case folding.
_UPPER_LOOKALIKE = {
    k: v
    for ks, vs in (
        ("\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f", "abezhikmno"),
        ("\u03a1\u03a4\u03a5\u03a7\u0410\u0412\u0415\u041a\u041c\u041d", "ptyxabekmh"),
        ("\u041e\u0420\u0421\u0422\u0423\u0425\u0405\u0406\u0408", "opctyxsij"),
    )
    for k, v in zip(ks, vs, strict=True)
}
# Letters NFKD leaves alone (Latin), and the Cyrillic and Greek lower case that look like a Latin
# letter.
_LOOKALIKE = {
    **{"\u00fe": "th", "\u00e6": "ae", "\u0153": "oe"},
    **{
        k: v
        for ks, vs in (
            ("\u00f8\u0142\u0111\u00f0\u0131\u0237\u0192\u0167\u0127\u0261", "olddijfthg"),
            ("\u0430\u0432\u0435\u0451\u0437\u043a\u043c\u043d\u043e\u043f", "abee3kmhon"),
            ("\u0440\u0441\u0442\u0443\u0445\u0455\u0456\u0457\u0458\u0501", "pctyxsiijd"),
            ("\u04bb\u051b\u051d\u044c\u04cf", "hqwbl"),
            ("\u03b1\u03b2\u03b3\u03b5\u03b9\u03ba\u03bc\u03bd\u03bf\u03c1", "abyeikuvop"),
            ("\u03c3\u03c2\u03c4\u03c5\u03c7\u03c9\u03b7\u03f2", "ostuxwnc"),
        )
        for k, v in zip(ks, vs, strict=True)
    },
}
# Leetspeak, read when matching (_MERGE): 0 o, 3 e, 4 a, 5 s, 7 t, and i, l and 1 as one letter
# ("1", "!" and "|" stand for either, and l looks like a capital I). The shortest forms are
# checked as written instead: "MiB" is not MLB, "miss" not MLS, "M15" not MLS; only a 1 may stand
# for their i or l there.
_MERGE = str.maketrans("l103457", "iioeast")
STRICT_UP_TO = 3
# The trademark, service mark and registered signs (NFKD would glue "TM" to the word).
_MARK_SIGNS = frozenset("\u2122\u2120\u00ae")
_APOSTROPHES = frozenset("'\u2019\u02bc\u2018`\u00b4")


def _fold(char: str) -> str:
    """One character's skeleton: what it imitates, folded (possibly several letters or none)."""
    char = _UPPER_LOOKALIKE.get(char, char)
    out = []
    for c in unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", char).casefold()):
        if unicodedata.combining(c):
            continue
        out.append(_LOOKALIKE.get(c, c))
    return "".join(out)


# ASCII folded one to one (case and leetspeak; everything else as it is), and the runs of word
# characters and the symbols that may stand for a letter or sit inside a word.
_ASCII_SKELETON = str.maketrans({chr(c): _fold(chr(c)) or chr(c) for c in range(128)})
_ASCII_RUN = re.compile(r"[a-z0-9@$!|'`]+")

# Characters already folded (the first sight of each computes it; text repeats its characters).
_FOLDED: dict[str, str] = {}


def _fold_new(char: str) -> str:
    folded = _fold(char)
    if len(_FOLDED) < 65_536:  # bounded: hostile text could bring every code point
        _FOLDED[char] = folded
    return folded


def _symbol(char: str, prev_word: bool, next_word: bool) -> str:
    """A symbol standing for a letter, by where it is: "st@r" and "pum@" but not "@nike",
    "$tar" and "adida$", "n!ke" and "n|ke" but not "nike!"."""
    if char == "@" and prev_word:
        return "a"
    if char == "$" and (prev_word or next_word):
        return "s"
    if char in "!|" and prev_word and next_word:
        return "1"
    if char in "€£" and prev_word and next_word:
        return "e"
    return ""


@dataclass(frozen=True, slots=True)
class _Token:
    """A word of the text in skeleton form, and where it is in the original text."""

    # What matching reads (i, l and 1 as one letter).
    text: str
    start: int
    end: int
    # A piece of a spelled-out word: one character, or two that are not a word themselves.
    fragment: bool
    # As written (l and 1 kept apart), for the shortest forms.
    strict: str


def _token(strict: str, start: int, end: int) -> _Token:
    text = strict.translate(_MERGE)
    # Two characters are a fragment only as two letters: "F1-F4" are keys, not "fifa".
    fragment = len(text) == 1 or (
        len(text) == 2 and strict.isalpha() and text not in COMMON_TWO_LETTER
    )
    return _Token(text, start, end, fragment, strict)


def _same_letters(written: str, form: str) -> bool:
    """Whether text written so reads the form letter for letter ("1" is either i or l)."""
    return all(w == f or (w == "1" and f in "il") for w, f in zip(written, form, strict=False))


def tokenize(text: str) -> list[_Token]:
    """The words of a text as skeletons with their spans in the original."""
    if not text.isascii():
        # Invisible characters are skipped, not separators: "N\u200bike" is one word.
        return _tokenize([(i, ch) for i, ch in enumerate(text) if ord(ch) not in _INVISIBLE])
    # Most text is plain ASCII: fold it in one pass and read each run of word characters and
    # letter-like symbols; only a run holding a symbol needs reading character by character.
    tokens: list[_Token] = []
    folded = text.translate(_ASCII_SKELETON)
    for run in _ASCII_RUN.finditer(folded):
        start, end = run.span()
        if run[0].isalnum():
            tokens.append(_token(run[0], start, end))
        else:
            tokens += _tokenize([(i, text[i]) for i in range(start, end)])
    return tokens


def _tokenize(kept: list[tuple[int, str]]) -> list[_Token]:
    """The words of the characters kept (with their places in the text)."""
    folded = [_FOLDED.get(ch) or _fold_new(ch) for _, ch in kept]
    word = [f.isalnum() for f in folded]
    tokens: list[_Token] = []
    chars: list[str] = []
    start = end = -1
    for k, (i, ch) in enumerate(kept):
        if ch in _MARK_SIGNS:
            # A word of its own, whatever it is glued to: "Nike\u2122" is Nike, and the sign is
            # a brand context for an ambiguous mark ("Apple\u2122").
            if chars:
                tokens.append(_token("".join(chars), start, end))
                chars, start = [], -1
            tokens.append(_token("tm", i, i + 1))
            continue
        piece = folded[k]
        if not word[k]:
            prev_word = k > 0 and word[k - 1]
            next_word = k + 1 < len(kept) and word[k + 1]
            if ch in _APOSTROPHES and prev_word and next_word:
                continue  # inside a word: "Disney's"
            piece = _symbol(ch, prev_word, next_word)
        if piece:
            if start < 0:
                start = i
            end = i + 1
            chars.append(piece)
        elif chars:
            tokens.append(_token("".join(chars), start, end))
            chars, start = [], -1
    if chars:
        tokens.append(_token("".join(chars), start, end))
    return tokens


def skeleton_words(text: str) -> tuple[str, ...]:
    """A phrase's words as skeletons (how entries, context and allow phrases are compared)."""
    return tuple(t.text for t in tokenize(text))


def _strict_key(text: str) -> str:
    return "".join(t.strict for t in tokenize(text))


def _contained(spans: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The spans lying inside another one (in one pass over them by start, longest first)."""
    inner: set[tuple[int, int]] = set()
    furthest = -1
    for start, end in sorted(spans, key=lambda span: (span[0], -span[1])):
        if end <= furthest:
            inner.add((start, end))
        furthest = max(furthest, end)
    return inner


class DenyEntry(BaseModel):
    """One protected mark of a deny-list file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    term: str = Field(min_length=2, max_length=100, description="The canonical name")
    category: str = Field(
        pattern=r"^[a-z_]{2,30}$",
        description="brand, character, franchise, celebrity, team, league, slogan...",
    )
    aliases: tuple[str, ...] = Field(default=(), max_length=50)
    allow: tuple[str, ...] = Field(
        default=(), max_length=50, description="Innocent phrases that contain the term"
    )
    ambiguous: bool = Field(
        default=False, description="An ordinary word too: only with a brand context"
    )
    context: tuple[str, ...] = Field(
        default=(), max_length=50, description="Words that make the ambiguous word the brand"
    )

    @field_validator("aliases", "allow", "context")
    @classmethod
    def _words(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not skeleton_words(value):
                raise ValueError(f"{value!r} has no letters or digits")
        return values

    @field_validator("term")
    @classmethod
    def _term_words(cls, value: str) -> str:
        if not skeleton_words(value):
            raise ValueError(f"{value!r} has no letters or digits")
        return value


class DenyFile(BaseModel):
    """A deny-list file: entries to add (or replace, by term) and shipped terms to remove."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    about: str = Field(default="", max_length=1000, description="What the file is, for its reader")
    entries: tuple[DenyEntry, ...] = ()
    remove: tuple[str, ...] = Field(
        default=(), description="Canonical terms of the shipped list this seller may use"
    )


def _parse(raw: str, source: str) -> DenyFile:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"deny terms {source}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"deny terms {source}: must hold a JSON object (entries, remove)")
    try:
        return DenyFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        entry = ""
        loc = first["loc"]
        if len(loc) >= 2 and loc[0] == "entries" and isinstance(loc[1], int):
            entries = data.get("entries")
            if isinstance(entries, list) and isinstance(entries[loc[1]], dict):
                entry = f" (term {entries[loc[1]].get('term')!r})"
        raise ConfigError(f"deny terms {source}: {where}{entry}: {first['msg']}") from exc


def shipped_file() -> DenyFile:
    """The deny list shipped with POD Engine."""
    raw = resources.files("shared.domain.screening").joinpath(SHIPPED).read_text("utf-8")
    return _parse(raw, f"(shipped) {SHIPPED}")


def seller_file(path: Path) -> DenyFile:
    """The seller's own deny-list file (SCREENING_DENY_TERMS_FILE)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"deny terms {path}: cannot be read ({exc.strerror})") from exc
    return _parse(raw, str(path))


@dataclass(frozen=True)
class _Form:
    """A written form of an entry (its term or an alias): the skeleton of its words joined, and
    where its words meet (the only places the text may break it apart, fragments aside)."""

    entry: DenyEntry
    joins: frozenset[int]
    conditional: bool
    # The form as written (l apart from i) when it is short enough to be checked so.
    strict: str | None = None


@dataclass
class DenyList:
    """The compiled deny list: every entry's forms by skeleton, ready for :meth:`find`."""

    entries: tuple[DenyEntry, ...]
    _forms: dict[str, list[_Form]] = field(default_factory=dict, repr=False)
    _prefixes: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        forms: dict[str, list[_Form]] = {}
        for entry in self.entries:
            written = [(entry.term, entry.ambiguous)] + [(a, False) for a in entry.aliases]
            for name, conditional in written:
                words = skeleton_words(name)
                joins, pos = set(), 0
                for word in words[:-1]:
                    pos += len(word)
                    joins.add(pos)
                key = "".join(words)
                for other in forms.get(key, ()):
                    if other.entry.term != entry.term:
                        raise ConfigError(
                            f"deny terms: {name!r} of {entry.term!r} reads the same as a form of "
                            f"{other.entry.term!r} (both {key!r}); keep it in one entry"
                        )
                strict = _strict_key(name) if len(key) <= STRICT_UP_TO else None
                forms.setdefault(key, []).append(
                    _Form(entry, frozenset(joins), conditional, strict)
                )
        self._forms = forms
        # Each form as written, and its plurals and possessives ("nikes", "disneys").
        lookup: dict[str, list[_Form]] = {}
        for key, key_forms in forms.items():
            lookup.setdefault(key, []).extend(key_forms)
            for f in key_forms:
                # Not after a last word of one or two letters: "Formula 1" + s reads "formula is".
                if len(key) - max(f.joins, default=0) > 2:
                    lookup.setdefault(key + "s", []).append(f)
                    lookup.setdefault(key + "es", []).append(f)
        self._lookup = lookup
        self._prefixes = frozenset(k[:i] for k in lookup for i in range(1, len(k) + 1))
        # What a form's first words spell up to a place its words meet: the only places the text
        # may break between words (or a single fragment and the next) and still spell the form.
        self._joinable = frozenset(
            k[:j] for k, key_forms in forms.items() for f in key_forms for j in f.joins
        )
        generic = frozenset(w for c in GENERIC_CONTEXT for w in skeleton_words(c))
        self._context = {
            e.term: frozenset(w for c in e.context for w in skeleton_words(c)) | generic
            for e in self.entries
            if e.ambiguous
        }
        self._allow = {
            e.term: [skeleton_words(a) for a in e.allow] for e in self.entries if e.allow
        }

    @classmethod
    def from_settings(cls, settings: ScreeningSettings) -> DenyList:
        """The deployment's deny list (SCREENING_DENY_TERMS_FILE over the shipped one)."""
        return cls.load(settings.screening_deny_terms_file)

    @classmethod
    def load(cls, seller: Path | None = None) -> DenyList:
        """The shipped list, with the seller's file applied when there is one."""
        return cls.from_files(shipped_file(), seller_file(seller) if seller else None, seller)

    @classmethod
    def from_files(
        cls, shipped: DenyFile, seller: DenyFile | None = None, source: Path | None = None
    ) -> DenyList:
        entries: dict[str, DenyEntry] = {}
        for entry in shipped.entries:
            entries[entry.term.casefold()] = entry
        if seller is not None:
            for term in seller.remove:
                if entries.pop(term.casefold(), None) is None:
                    raise ConfigError(
                        f"deny terms {source}: remove {term!r}: not a term of the shipped list"
                    )
            for entry in seller.entries:
                entries[entry.term.casefold()] = entry
            logger.info(
                "deny list seller_file=%s added_or_replaced=%d removed=%d",
                source,
                len(seller.entries),
                len(seller.remove),
            )
        try:
            return cls(tuple(entries.values()))
        except ConfigError as exc:
            if source is None:
                raise
            raise ConfigError(f"{exc.message} (in {source})") from exc

    def find(self, text: str, field: ScreenedField) -> list[TermHit]:
        """Every protected term in ``text``, once per term; a match inside a longer one is the
        longer one's ("Air Jordan" is not also "Jordan", "Michael Jordan" not also "Jordan")."""
        tokens = tokenize(text)
        spans: list[tuple[int, int, DenyEntry]] = []
        prefixes = self._prefixes
        for i, token in enumerate(tokens):
            if not token.fragment and token.text not in prefixes:
                continue  # most words: no form starts with them
            for end, form in self._match_at(tokens, i):
                if form.conditional and not self._in_context(form.entry, tokens, i, end):
                    continue
                if self._allowed(form.entry, tokens, i, end):
                    continue
                spans.append((i, end, form.entry))
        hits: dict[str, TermHit] = {}
        inner = _contained({(i, end) for i, end, _ in spans})
        for i, end, entry in spans:
            if entry.term in hits or (i, end) in inner:
                continue
            found = text[tokens[i].start : tokens[end - 1].end]
            hits[entry.term] = TermHit(entry.term, entry.category, found, field)
        return list(hits.values())

    def _match_at(self, tokens: Sequence[_Token], start: int) -> Iterable[tuple[int, _Form]]:
        """Every form spelled by the words from ``start``: (index after its last word, form)."""
        # Depth-first over the ways of reading the words from start: each step takes one word
        # whole, or a run of two or more fragments joined; a form's words may only meet where the
        # text's words meet, except inside a run of fragments.
        stack: list[tuple[int, str, frozenset[int]]] = [(start, "", frozenset())]
        while stack:
            at, spelled, breaks = stack.pop()
            if at > start:
                for form in self._lookup.get(spelled, ()):
                    # A plural's "s" is no join of the form's words, so a break before it fails.
                    if not breaks <= form.joins:
                        continue
                    if form.strict is not None and not _same_letters(
                        "".join(t.strict for t in tokens[start:at]), form.strict
                    ):
                        continue
                    yield at, form
            if at >= len(tokens) or (spelled and spelled not in self._joinable):
                continue
            new_breaks = breaks | {len(spelled)} if spelled else breaks
            candidate = spelled + tokens[at].text
            if candidate in self._prefixes:
                stack.append((at + 1, candidate, new_breaks))
            if not tokens[at].fragment:
                continue
            for j in range(at + 1, len(tokens)):
                # Pieces of one size: "n i k e", "ni ke", but not "NB. a" (nota bene, then a).
                if not tokens[j].fragment or len(tokens[j].text) != len(tokens[at].text):
                    break
                candidate += tokens[j].text
                if candidate not in self._prefixes:
                    break  # nor will any longer run be
                stack.append((j + 1, candidate, new_breaks))

    def _in_context(self, entry: DenyEntry, tokens: Sequence[_Token], i: int, end: int) -> bool:
        words = self._context[entry.term]
        near = [*tokens[max(0, i - CONTEXT_WINDOW) : i], *tokens[end : end + CONTEXT_WINDOW]]
        return any(t.text in words for t in near)

    def _allowed(self, entry: DenyEntry, tokens: Sequence[_Token], i: int, end: int) -> bool:
        """Whether the match overlaps one of the entry's innocent phrases ("the north face of
        the Eiger" holds "north face of")."""
        words = [t.text for t in tokens]
        for phrase in self._allow.get(entry.term, ()):
            n = len(phrase)
            for s in range(max(0, i - n + 1), min(end, len(words) - n + 1)):
                if tuple(words[s : s + n]) == phrase:
                    return True
        return False
