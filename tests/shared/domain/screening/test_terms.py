"""The deny list: each matching rule on its own, the seller's file, the shipped list, the labelled
corpus with its precision and recall floors, and the matcher's speed."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest

from shared.domain.screening.checks import DesignText, TermMatcher
from shared.domain.screening.corpus import load_text_cases, score, score_text_corpus
from shared.domain.screening.settings import ScreeningSettings
from shared.domain.screening.terms import DenyList, shipped_file
from shared.platform.errors import ConfigError
from shared.platform.settings import REPO_ROOT

pytestmark = pytest.mark.unit

CORPUS = REPO_ROOT / "tests" / "corpus" / "screening" / "text_cases.jsonl"
# Floors set from what the matcher measures on the corpus (precision 0.992, recall 0.978 when
# written: three labelled known misses and one known false alarm), with room for one more miss
# each way, no more.
PRECISION_FLOOR = 0.98
RECALL_FLOOR = 0.97


@pytest.fixture(scope="module")
def deny() -> DenyList:
    return DenyList.load()


def terms(deny: DenyList, text: str) -> list[str]:
    return sorted(hit.term for hit in deny.find(text, "title"))


def test_it_is_a_term_matcher(deny: DenyList) -> None:
    matcher: TermMatcher = deny
    (hit,) = matcher.find("Retro N1KE running tee", "tags")
    assert (hit.term, hit.category, hit.found, hit.field) == ("Nike", "brand", "N1KE", "tags")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # case
        ("NIKE", ["Nike"]),
        ("nike", ["Nike"]),
        ("nIkE", ["Nike"]),
        # separators between single letters, and two-letter fragments that are not words
        ("n i k e", ["Nike"]),
        ("n.i.k.e", ["Nike"]),
        ("n-i-k-e", ["Nike"]),
        ("n_i_k_e", ["Nike"]),
        ("n/i/k/e", ["Nike"]),
        ("ni ke", ["Nike"]),
        ("I love n i k e shoes", ["Nike"]),
        # plurals and possessives
        ("Nikes", ["Nike"]),
        ("Disney's", ["Disney"]),
        ("Disney\u2019s", ["Disney"]),
        ("Legos", ["Lego"]),
        # look-alikes: Cyrillic, Greek capitals, fullwidth, styled, accents
        ("N\u0456ke", ["Nike"]),
        ("\u0430did\u0430s", ["Adidas"]),
        ("\u039d\u0399\u039a\u0395", ["Nike"]),
        ("\uff4e\uff49\uff4b\uff45", ["Nike"]),
        ("\U0001d40d\U0001d408\U0001d40a\U0001d404", ["Nike"]),
        ("N\u00efk\u00e9", ["Nike"]),
        ("Pok\u00e9mon", ["Pokemon"]),
        # leetspeak
        ("N1KE", ["Nike"]),
        ("NlKE", ["Nike"]),
        ("4d1d4s", ["Adidas"]),
        ("p0k3m0n", ["Pokemon"]),
        ("5t4r w4r5", ["Star Wars"]),
        ("st@r w@rs", ["Star Wars"]),
        ("$tar War$", ["Star Wars"]),
        ("n!ke", ["Nike"]),
        ("n|ke", ["Nike"]),
        ("M1B", ["MLB"]),
        ("NF1", ["NFL"]),
        ("N.B.A.", ["NBA"]),
        # zero-width and soft hyphen inside a word
        ("Ni\u200bke", ["Nike"]),
        ("G\u200du\u200dc\u200dc\u200di", ["Gucci"]),
        ("Dis\u00adney", ["Disney"]),
        # a multi-word mark apart, together or hyphenated
        ("Spider-Man", ["Spider-Man"]),
        ("spider man", ["Spider-Man"]),
        ("spiderman", ["Spider-Man"]),
        ("starwars", ["Star Wars"]),
        # trademark signs glued to the word
        ("Nike\u2122", ["Nike"]),
    ],
)
def test_evasions_still_match(deny: DenyList, text: str, expected: list[str]) -> None:
    assert terms(deny, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # words that contain a term
        "snike",
        "manikin",
        "marvelous",
        "adidasy",
        "nikel",
        "legora",
        "Sunflower",
        # the shortest forms are read as written: i is not l there
        "MiB",
        "miss",
        "mis amigos",
        "M15",
        # fragments of one size only
        "NB. a",
        "n i ke",
        "F1-F4",
        # no plural after a one- or two-letter last word: "Formula 1" + s
        "the reflection formula) is",
        # letters across real words never join
        "an ike",
        "tar get",
        "so NY",
        "di or",
        "le go",
        "n ike",
        "Dis Ney",
        # symbols that are no letter where they are
        "@home",
        "$5 off",
        "Wow!",
        # a multi-word mark's words apart from each other
        "star of wonder wars",
        "Taylor Made",
    ],
)
def test_near_misses_do_not_match(deny: DenyList, text: str) -> None:
    assert terms(deny, text) == []


def test_an_at_sign_starting_a_word_is_a_handle_not_a_letter(deny: DenyList) -> None:
    # "@nike" is the word nike after a handle's sign, not "anike".
    assert terms(deny, "@nike") == ["Nike"]
    assert terms(deny, "@home") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Apple Orchard", []),
        ("apple pie", []),
        ("Apple iPhone case", ["Apple", "iPhone"]),
        ("apple logo", ["Apple"]),
        ("Apple\u2122 fan", ["Apple"]),
        ("Jordan River", []),
        ("Jordan sneakers", ["Jordan"]),
        ("Air Jordan", ["Air Jordan"]),
        ("Michael Jordan", ["Michael Jordan"]),
        ("target practice", []),
        ("target logo", ["Target"]),
        ("soccer coach", []),
        ("coach handbag", ["Coach"]),
        ("heat wave", []),
        ("Miami Heat", ["Miami Heat"]),
        ("smooth jazz", []),
        ("Utah Jazz", ["Utah Jazz"]),
        ("magic wand", []),
        ("thunder storm", []),
        ("Oklahoma City Thunder", ["Oklahoma City Thunder"]),
        ("mind the gap", []),
        ("peace dove", []),
        ("camper vans", []),
        # the context must be near: more than four words away it is another sentence's
        ("apple cider and warm donuts at the farm logo", []),
    ],
)
def test_ordinary_words_match_only_as_the_brand(
    deny: DenyList, text: str, expected: list[str]
) -> None:
    assert terms(deny, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("marvel at the stars", []),
        ("the marvels of nature", []),
        ("Marvel heroes", ["Marvel"]),
        ("winged Nike of Samothrace", []),
        ("the north face of the Eiger", []),
        ("The North Face jacket", ["The North Face"]),
        ("breaking bad habits", []),
    ],
)
def test_allowed_phrases_are_not_hits(deny: DenyList, text: str, expected: list[str]) -> None:
    assert terms(deny, text) == expected


def test_a_match_inside_a_longer_one_is_the_longer_one(deny: DenyList) -> None:
    assert terms(deny, "Air Jordan sneakers") == ["Air Jordan"]
    assert terms(deny, "Stanley Cup champions") == ["Stanley Cup"]


def test_each_term_once_per_text_with_what_matched_first(deny: DenyList) -> None:
    hits = deny.find("Nike, n i k e and N1KE", "description")
    assert [(h.term, h.found, h.field) for h in hits] == [("Nike", "Nike", "description")]


def test_every_field_of_a_design(deny: DenyList) -> None:
    design = DesignText(
        title="Retro Sunset Tee",
        description="Soft cotton.",
        tags=("sunset", "d1sney"),
        prompt="a sunset over pokemon mountains",
        image_text="JUST DO IT",
    )
    found = {(hit.term, hit.field) for f, text in design.fields() for hit in deny.find(text, f)}
    assert found == {("Disney", "tags"), ("Pokemon", "prompt"), ("Just Do It", "image_text")}


# The seller's file


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "deny.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_seller_adds_terms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"entries": [{"term": "Acme Rockets", "category": "brand", "aliases": ["Acmeroket"]}]},
    )
    deny = DenyList.from_settings(ScreeningSettings(screening_deny_terms_file=path))
    assert [(h.term, h.category) for h in deny.find("A C M E rockets", "title")] == [
        ("Acme Rockets", "brand")
    ]
    assert terms(deny, "acmeroket") == ["Acme Rockets"]
    assert terms(deny, "Nike") == ["Nike"]  # the shipped list still applies


def test_seller_removes_a_shipped_term(tmp_path: Path) -> None:
    shipped = DenyList.load()
    assert terms(shipped, "Coach handbag") == ["Coach"]
    deny = DenyList.load(write(tmp_path, {"remove": ["coach"]}))
    assert terms(deny, "Coach handbag") == []
    assert terms(deny, "Gucci handbag") == ["Gucci"]


def test_seller_replaces_a_shipped_entry(tmp_path: Path) -> None:
    # The seller sells apple-themed goods and wants the bare word only with "iphone".
    deny = DenyList.load(
        write(
            tmp_path,
            {
                "entries": [
                    {
                        "term": "Apple",
                        "category": "brand",
                        "ambiguous": True,
                        "context": ["iphone"],
                    }
                ]
            },
        )
    )
    assert terms(DenyList.load(), "apple watch band") == ["Apple"]
    assert terms(deny, "apple watch band") == []
    assert terms(deny, "apple iphone") == ["Apple", "iPhone"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ({"entries": [{"term": "Acme", "category": "Brand!"}]}, "entries.0.category (term 'Acme')"),
        ({"entries": [{"term": "Acme", "category": "brand", "colour": "red"}]}, "colour"),
        ({"entries": [{"term": "Acme", "category": "brand", "aliases": ["!!"]}]}, "no letters"),
        ({"entries": [{"category": "brand"}]}, "entries.0.term"),
        ({"remove": ["Not A Shipped Mark"]}, "'Not A Shipped Mark': not a term of the shipped"),
        (
            {"entries": [{"term": "Acme", "category": "brand", "aliases": ["N1ke"]}]},
            "'N1ke' of 'Acme' reads the same as a form of 'Nike'",
        ),
        ([], "must hold a JSON object"),
    ],
)
def test_a_malformed_seller_file_is_a_config_error_naming_it(
    tmp_path: Path, content: object, message: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        DenyList.load(path)
    assert message in caught.value.message
    assert str(path) in caught.value.message


def test_a_missing_seller_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        DenyList.load(tmp_path / "absent.json")


# The shipped list

# Single words of English that are also marks: an entry of one of them must be ambiguous.
ORDINARY_WORDS = {
    "apple", "target", "coach", "vans", "jordan", "gap", "dove", "puma", "frozen", "stitch",
    "supreme", "champion", "subway", "amazon", "corona", "shell", "jeep", "ford", "mustang",
    "monopoly", "sprite", "drake", "joker", "hulk", "thor", "goofy", "woody", "olaf", "elsa",
    "kirby", "sonic", "nirvana", "twitter", "tesla", "stanley", "yeti", "caterpillar", "crocs",
    "timberland", "wilson", "spalding", "oakley", "hermes", "valentino", "hollister", "jaws",
    "minions", "transformers", "peanuts", "garfield", "swoosh", "loki", "wolverine", "nerf",
    "fireball", "hennessy", "skittles", "converse", "ugg", "patagonia", "mario", "speedo",
    "terminator",
}  # fmt: skip


def test_the_shipped_list() -> None:
    shipped = shipped_file()
    assert len(shipped.entries) >= 300
    categories = {e.category for e in shipped.entries}
    assert categories == {
        "brand",
        "character",
        "franchise",
        "celebrity",
        "team",
        "league",
        "slogan",
    }
    plain_ordinary = [
        e.term for e in shipped.entries if e.term.casefold() in ORDINARY_WORDS and not e.ambiguous
    ]
    assert plain_ordinary == []
    # Every ambiguous entry says what makes it the brand, and reads (the collision check runs).
    assert [e.term for e in shipped.entries if e.ambiguous and not e.context] == []
    assert len(DenyList.from_files(shipped).entries) == len(shipped.entries)


# The corpus


def test_the_corpus_scores_above_its_floors(deny: DenyList) -> None:
    cases = load_text_cases(CORPUS)
    assert len(cases) >= 130
    assert sum(1 for c in cases if c.expected) >= 60
    assert sum(1 for c in cases if not c.expected) >= 60
    known = {e.term for e in deny.entries}
    assert [c.id for c in cases if not set(c.expected) <= known] == []
    result = score_text_corpus(CORPUS, deny)
    print(f"\ndeny list corpus: {result.summary()}")
    for miss in result.misses:
        print(f"  {miss.kind} {miss.case_id}: {miss.why}")
    assert result.precision >= PRECISION_FLOOR
    assert result.recall >= RECALL_FLOOR


def test_score_counts_and_names_the_misses() -> None:
    result = score(
        [
            ("a", True, True),
            ("b", True, False, "spaced"),
            ("c", False, True, "ordinary word"),
            ("d", False, False),
            ("e", True, True),
        ]
    )
    assert (result.tp, result.fp, result.fn, result.tn) == (2, 1, 1, 1)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 3)
    assert [(m.case_id, m.kind, m.why) for m in result.misses] == [
        ("b", "false_negative", "spaced"),
        ("c", "false_positive", "ordinary word"),
    ]
    empty = score([])
    assert (empty.precision, empty.recall, empty.total) == (1.0, 1.0, 0)


def test_a_bad_corpus_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    good = {"id": "x", "field": "title", "text": "Nike", "expected": ["Nike"], "note": "plain"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "field": "footer"}) + "\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_text_cases(path)


# Speed


def test_one_design_in_well_under_a_millisecond(deny: DenyList) -> None:
    # Designs of a title, a three-sentence description, thirteen tags and a prompt (about 470
    # characters), from the corpus's texts.
    cases = load_text_cases(CORPUS)
    designs = [
        DesignText(
            title=cases[i].text,
            description=cases[i + 1].text * 3,
            tags=tuple(c.text for c in cases[i + 2 : i + 15]),
            prompt=cases[i + 15].text,
        )
        for i in range(0, len(cases) - 16, 4)
    ]
    runs = []
    for _ in range(5):
        # CPU time: the other tests and processes sharing the machine do not count against it.
        start = time.process_time()
        for design in designs:
            for f, text in design.fields():
                deny.find(text, f)
        runs.append((time.process_time() - start) / len(designs) * 1000)
    print(f"\ndeny list: {min(runs):.3f} ms per design (median {statistics.median(runs):.3f})")
    assert min(runs) < 1.0


@pytest.mark.parametrize(
    "text",
    [
        "s t a r w a r s " * 600,  # every start spells a mark, in every segmentation
        "ni ke st ar wa rs po ke mo n " * 300,
        "N\u200b1\u200bK\u200b3 \u0391\u0392\u0395 @$!| " * 400,
    ],
)
def test_hostile_text_stays_linear(deny: DenyList, text: str) -> None:
    # A vendor answer or a prompt is untrusted: ten thousand characters built to make the
    # matcher try every reading still take a fraction of a second.
    start = time.process_time()
    deny.find(text, "description")
    assert time.process_time() - start < 1.0
