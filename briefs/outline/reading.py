"""What the built-in expander reads in an idea: its cast, places, clauses and cues.

Plain heuristics over the idea's own words (no model, no dictionary beyond the short word lists
here), deterministic by construction: the same text always reads the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CAST = 6
MAX_CLAUSE_WORDS = 40

DETERMINERS = frozenset("a an the his her their its my our your one this that another some".split())
PRONOUNS = frozenset("he she they".split())
CONNECTORS = frozenset("and then but so yet".split())
PLACE_PREPOSITIONS = frozenset(
    "in at on inside near across through into to from under beneath above over beside by along toward towards "
    "around outside within behind onto aboard".split()
)
# Before a capitalised word these name a place, not a person ("in Lisbon", not "to Mara").
PROPER_PLACE_PREPOSITIONS = frozenset(
    "in at on near across through inside outside around above over beneath under within toward towards into aboard".split()
)
# How a place named without a preposition is reached in a prompt: "on the ship", "at the lighthouse".
PLACES_ON = frozenset(
    """
    ship boat ferry deck island beach shore coast street streets rooftop roof bridge platform pier stage train
    road highway hill hills cliff cliffs cliffside mountain mountains planet moon field fields meadow reef
    shipwreck dock docks square plaza glacier tundra
    """.split()
)
PLACES_AT = frozenset(
    """
    lighthouse station harbour harbor port market bazaar bar pub cafe café diner restaurant airport school
    hospital clinic museum library observatory outpost camp fair funfair carnival circus arena stadium park
    cemetery graveyard ruins crossroads court courtroom theater theatre cinema gym rink pool bakery shop store
    """.split()
)
TITLES = frozenset(
    "captain doctor dr mr mrs ms miss sir lady lord king queen prince princess professor detective agent sister "
    "brother aunt uncle officer sergeant general colonel judge saint st grandma grandpa madame monsieur".split()
)
# Capitalised at the start of a sentence, these are ordinary words, not names.
STARTERS = frozenset(
    """
    a an the this that these those it its they them their he him his she her hers we us our you your i me my
    in on at to from of for with without by about above across after against along amid among around as
    before behind below beneath beside between beyond but despite down during except inside into like near
    off onto out outside over past since than through throughout till toward towards under unlike until up
    upon via within and or nor so yet if when whenever where wherever while whilst although though because
    unless whether what which who whom whose why how all any both each every either neither no none not
    nobody nothing everyone everybody everything someone somebody something anyone anything one two three
    four five six seven eight nine ten first second third last next many few several most more less much
    some such only just even still also again ever never always often sometimes soon now then there here
    today tonight tomorrow yesterday later meanwhile suddenly finally eventually once long years months
    weeks days hours minutes moments after afterwards instead perhaps maybe yes oh hey dear welcome please
    let lets let's can could will would shall should may might must do does did is are was were be been
    being have has had get gets got make makes made go goes went come comes came see sees saw find finds
    found take takes took give gives gave know knows knew think thinks thought feel feels felt look looks
    looked tell tells told keep keeps kept leave leaves left try tries tried call calls called bring brings
    brought begin begins began show shows showed hear hears heard play plays played run runs ran move moves
    moved live lives lived believe believes believed hold holds held write writes wrote stand stands stood
    lose loses lost pay pays paid meet meets met set sets lead leads led watch watches watched follow
    follows followed stop stops stopped create creates created speak speaks spoke read reads allow allows
    grow grows grew open opens opened walk walks walked win wins won offer offers offered remember
    remembers remembered love loves loved consider considers considered appear appears appeared buy buys
    bought wait waits waited serve serves served die dies died send sends sent expect expects expected
    build builds built stay stays stayed fall falls fell cut cuts reach reaches reached kill kills killed
    remain remains remained story film movie scene tale chapter act part episode prologue epilogue ending
    beginning end start new old young little big small great good bad best worst
    january february march april june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday
    """.split()
)
ROLE_NOUNS = frozenset(
    """
    keeper detective girl boy woman man child kid teenager teen student teacher fisherman fisherwoman fisher
    sailor captain pilot soldier knight king queen prince princess wizard witch sorcerer sorceress robot
    android cyborg alien astronaut scientist doctor nurse farmer hunter thief spy assassin cop officer
    musician painter artist writer poet dancer singer chef cook baker waiter waitress driver mechanic
    engineer inventor explorer traveler traveller wanderer stranger orphan widow widower mother father
    daughter son sister brother grandmother grandfather grandma grandpa aunt uncle friend lover husband wife
    boyfriend girlfriend neighbour neighbor courier messenger monk nun priest shepherd miner smuggler pirate
    warrior samurai ninja cowboy cowgirl sheriff outlaw ghost vampire dragon fox wolf dog cat bird owl bear
    horse mouse boxer athlete runner photographer journalist reporter lawyer judge clerk janitor guard
    prisoner refugee tourist hacker programmer architect gardener carpenter blacksmith tailor merchant
    vendor shopkeeper librarian archivist mayor president senator general colonel sergeant commander
    lieutenant medic surgeon diver climber skater surfer drummer guitarist violinist pianist magician clown
    acrobat puppeteer investigator agent ranger nomad hermit giant elf dwarf troll mermaid fairy creature
    monster beast cyclist mail postman postwoman ferryman boatman lumberjack firefighter paramedic
    bartender barista florist butcher beekeeper lighthousekeeper botanist biologist archaeologist
    """.split()
)
PLACE_NOUNS = frozenset(
    """
    lighthouse harbour harbor port dock docks pier city town village hamlet forest woods wood jungle desert
    beach coast shore sea ocean island mountain mountains hill hills valley river lake pond stream waterfall
    station platform train ship boat ferry submarine spaceship starship spacecraft planet moon castle palace
    temple church cathedral monastery school classroom hospital clinic office apartment flat house
    cottage farm farmhouse barn field fields meadow garden street streets alley market bazaar bar pub cafe
    café diner restaurant kitchen attic basement cellar library museum gallery lab laboratory cave caves
    swamp marsh bridge rooftop roof tower prison cell courtroom court hotel motel highway road crossroads
    subway metro airport factory warehouse stage theater theatre cinema arena stadium park cemetery
    graveyard ruins camp tent cabin bunker mine glacier tundra canyon cliff cliffs cliffside bay cove reef
    shipwreck deck bedroom bathroom hallway corridor staircase stairs elevator lift lobby studio workshop
    shop store mall supermarket bakery arcade carnival circus fair funfair playground gym rink pool
    observatory orbit wasteland outpost colony kingdom realm empire village square plaza courtyard
    """.split()
)
TIME_CUES = {
    "dawn": "dawn",
    "sunrise": "dawn",
    "daybreak": "dawn",
    "morning": "morning",
    "mornings": "morning",
    "breakfast": "morning",
    "day": "day",
    "daytime": "day",
    "daylight": "day",
    "noon": "day",
    "midday": "day",
    "afternoon": "day",
    "sunny": "day",
    "sunlit": "day",
    "golden hour": "golden hour",
    "sunset": "golden hour",
    "sundown": "golden hour",
    "dusk": "dusk",
    "twilight": "dusk",
    "evening": "dusk",
    "blue hour": "dusk",
    "night": "night",
    "nights": "night",
    "nighttime": "night",
    "midnight": "night",
    "tonight": "night",
    "moonlight": "night",
    "moonlit": "night",
    "nocturnal": "night",
    "starlight": "night",
}
WEATHER_CUES = {
    "rain": "rain",
    "rains": "rain",
    "rainy": "rain",
    "raining": "rain",
    "rainstorm": "storm",
    "drizzle": "rain",
    "downpour": "rain",
    "storm": "storm",
    "storms": "storm",
    "stormy": "storm",
    "thunder": "storm",
    "thunderstorm": "storm",
    "lightning": "storm",
    "hurricane": "storm",
    "typhoon": "storm",
    "gale": "storm",
    "tempest": "storm",
    "snow": "snow",
    "snowy": "snow",
    "snowing": "snow",
    "snowfall": "snow",
    "blizzard": "snow",
    "fog": "fog",
    "foggy": "fog",
    "mist": "fog",
    "misty": "fog",
    "haze": "fog",
    "hazy": "fog",
    "overcast": "overcast",
    "cloudy": "overcast",
    "grey skies": "overcast",
    "gray skies": "overcast",
}
MOOD_CUES = {
    "lonely": "lonely",
    "alone": "lonely",
    "loneliness": "lonely",
    "isolated": "lonely",
    "eerie": "eerie",
    "haunted": "eerie",
    "ghost": "eerie",
    "ghosts": "eerie",
    "creepy": "eerie",
    "uncanny": "eerie",
    "hope": "hopeful",
    "hopeful": "hopeful",
    "joy": "joyful",
    "joyful": "joyful",
    "happy": "joyful",
    "celebration": "joyful",
    "celebrate": "joyful",
    "chase": "urgent",
    "escape": "urgent",
    "escapes": "urgent",
    "race": "urgent",
    "races": "urgent",
    "danger": "urgent",
    "rescue": "urgent",
    "save": "urgent",
    "mystery": "mysterious",
    "mysterious": "mysterious",
    "secret": "mysterious",
    "secrets": "mysterious",
    "strange": "mysterious",
    "love": "tender",
    "romance": "tender",
    "romantic": "tender",
    "tender": "tender",
    "grief": "melancholy",
    "loss": "melancholy",
    "mourning": "melancholy",
    "funeral": "melancholy",
    "sad": "melancholy",
    "lost": "melancholy",
    "war": "fierce",
    "battle": "fierce",
    "fight": "fierce",
    "fights": "fierce",
    "revenge": "fierce",
    "funny": "playful",
    "comedy": "playful",
    "silly": "playful",
    "playful": "playful",
    "fear": "fearful",
    "afraid": "fearful",
    "terror": "fearful",
    "terrified": "fearful",
    "peaceful": "serene",
    "calm": "serene",
    "quiet": "serene",
}
GENRE_CUES = {
    "noir": "noir",
    "detective": "noir",
    "horror": "horror",
    "haunted": "horror",
    "monster": "horror",
    "vampire": "horror",
    "zombie": "horror",
    "zombies": "horror",
    "robot": "science fiction",
    "robots": "science fiction",
    "android": "science fiction",
    "cyborg": "science fiction",
    "spaceship": "science fiction",
    "starship": "science fiction",
    "planet": "science fiction",
    "alien": "science fiction",
    "aliens": "science fiction",
    "astronaut": "science fiction",
    "future": "science fiction",
    "futuristic": "science fiction",
    "sci-fi": "science fiction",
    "cyberpunk": "cyberpunk",
    "neon": "cyberpunk",
    "hacker": "cyberpunk",
    "dragon": "fantasy",
    "dragons": "fantasy",
    "wizard": "fantasy",
    "witch": "fantasy",
    "magic": "fantasy",
    "magical": "fantasy",
    "sorcerer": "fantasy",
    "elf": "fantasy",
    "fairy": "fantasy",
    "kingdom": "fantasy",
    "knight": "fantasy",
    "cowboy": "western",
    "sheriff": "western",
    "outlaw": "western",
    "western": "western",
    "anime": "anime",
    "cartoon": "animation",
    "animated": "animation",
    "watercolor": "watercolour",
    "watercolour": "watercolour",
    "ink": "ink",
    "comic": "comic",
}
ERA_CUES = {
    "medieval": "medieval",
    "victorian": "Victorian",
    "ancient": "ancient",
    "futuristic": "near future",
    "future": "near future",
    "post-apocalyptic": "post-apocalyptic",
    "prehistoric": "prehistoric",
    "1920s": "1920s",
    "1930s": "1930s",
    "1940s": "1940s",
    "1950s": "1950s",
    "1960s": "1960s",
    "1970s": "1970s",
    "1980s": "1980s",
    "1990s": "1990s",
}
COLOURS = (
    "crimson red amber orange gold golden yellow green emerald teal turquoise cyan blue navy indigo violet "
    "purple magenta pink white black silver grey gray brown ochre copper"
).split()
LOOK_NOUNS = frozenset(
    """
    coat raincoat overcoat oilskin scarf hat cap hood dress suit jacket cloak cape uniform armor armour boots
    glasses spectacles goggles hair beard moustache mustache eyes mask helmet robe gown shirt sweater jumper
    overalls apron veil tattoo tattoos scar scars backpack satchel umbrella lantern braid braids
    """.split()
)
LOOK_PREPOSITIONS = frozenset("with wearing in".split())
# Words that end a role phrase read backwards from its noun ("finds a keeper": the phrase is "keeper").
_ROLE_BREAKS = PLACE_PREPOSITIONS | frozenset(
    "and or but of who that which is are was were named called with".split()
)

_TOKEN_RE = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*|[.!?;:,()\"\u201c\u201d]")
_SENTENCE_END = frozenset(".!?")
_COLON = frozenset(":")
_CLAUSE_SPLIT = re.compile(
    r",\s*(?:and then|and|but|then|so|until|when|while|before|after|only to)\s+"
    r"|\s+(?:and then|but|until|when|while|only to|then)\s+"
    r"|\s*;\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CastMember:
    name: str
    role: str  # "old lighthouse keeper", or empty when the idea gives only a name
    look: str  # "in a yellow oilskin coat", or empty
    named: bool  # a proper name from the idea, not one made from a role ("The Keeper")
    mentions: tuple[str, ...]  # words that mark this character in a clause


@dataclass(frozen=True)
class Clause:
    text: str
    characters: tuple[str, ...]
    time_of_day: str | None
    weather: str | None
    place: str | None


@dataclass(frozen=True)
class Reading:
    text: str
    sentences: tuple[str, ...]
    cast: tuple[CastMember, ...]
    clauses: tuple[Clause, ...]
    places: tuple[str, ...]
    time_of_day: str | None
    weather: str | None
    moods: tuple[str, ...]
    colours: tuple[str, ...]
    genre: str | None
    era: str | None

    @property
    def protagonist(self) -> CastMember | None:
        return self.cast[0] if self.cast else None


def clip(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, marked with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def normalise(idea: str) -> str:
    """One line of printable text; each line of the idea becomes a sentence, list markers dropped."""
    lines = []
    for raw in idea.splitlines():
        line = "".join(ch if ch.isprintable() else " " for ch in raw)
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line)
        line = " ".join(line.split())
        if line:
            lines.append(line if line[-1] in ".!?…" else line + ".")
    return " ".join(lines)


def _words(text: str) -> list[str]:
    return [t for t in _TOKEN_RE.findall(text) if _is_word(t)]


def _is_word(token: str) -> bool:
    return any(ch.isalpha() for ch in token)


def _capitalised(word: str) -> bool:
    return word[0].isupper() and not (len(word) > 1 and word.isupper())


def _bare(word: str) -> str:
    """The word without a possessive ending."""
    return re.sub(r"['\u2019]s$", "", word)


def _cue_word(word: str) -> bool:
    w = word.casefold()
    return (
        w in STARTERS
        or w in ROLE_NOUNS
        or w in PLACE_NOUNS
        or w in TIME_CUES
        or w in WEATHER_CUES
        or w in MOOD_CUES
        or w in GENRE_CUES
        or w in ERA_CUES
        or w in COLOURS
        or w in TITLES
    )


def _cue_pattern(table: dict[str, str]) -> re.Pattern[str]:
    keys = sorted(table, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w-])")


_CUE_PATTERNS: dict[int, re.Pattern[str]] = {}


def _cues(text: str, table: dict[str, str]) -> list[str]:
    """The values of `table` whose keys occur in `text` as words, in the order they occur."""
    pattern = _CUE_PATTERNS.get(id(table))
    if pattern is None:
        pattern = _CUE_PATTERNS[id(table)] = _cue_pattern(table)
    ordered: list[str] = []
    for match in pattern.finditer(text.casefold()):
        value = table[match.group(1)]
        if value not in ordered:
            ordered.append(value)
    return ordered


def _sentence_starts(tokens: list[str]) -> set[int]:
    starts = set()
    expect = True
    for i, token in enumerate(tokens):
        if _is_word(token):
            if expect:
                starts.add(i)
            expect = False
        elif token in _SENTENCE_END or token in _COLON:
            expect = True
    return starts


def _role_before(tokens: list[str], end: int) -> str:
    """The role phrase ending at tokens[end] (a role noun), back to its determiner: "old lighthouse keeper"."""
    words = [tokens[end].casefold()]
    i = end - 1
    while i >= 0 and len(words) < 4 and _is_word(tokens[i]):
        word = tokens[i]
        if word.casefold() in DETERMINERS:
            return " ".join(reversed(words))
        if _capitalised(word) or word.casefold() in _ROLE_BREAKS:
            break
        words.append(word.casefold())
        i -= 1
    return tokens[end].casefold() if i >= 0 and tokens[i].casefold() in DETERMINERS else ""


def _role_after(tokens: list[str], start: int) -> tuple[str, int]:
    """The role phrase starting at tokens[start] ("a retired detective"): its words and last index."""
    i = start
    if i < len(tokens) and tokens[i].casefold() in DETERMINERS:
        i += 1
    words: list[str] = []
    while i < len(tokens) and len(words) < 4 and _is_word(tokens[i]) and not _capitalised(tokens[i]):
        words.append(tokens[i].casefold())
        if tokens[i].casefold() in ROLE_NOUNS:
            return " ".join(words), i
        i += 1
    return "", start


def _look_after(tokens: list[str], start: int) -> str:
    """ "in a yellow oilskin coat" / "with silver hair" right after a character's mention."""
    i = start
    if i < len(tokens) and tokens[i] == ",":
        i += 1
    if i >= len(tokens) or tokens[i].casefold() not in LOOK_PREPOSITIONS:
        return ""
    words = [tokens[i].casefold()]
    i += 1
    while i < len(tokens) and len(words) < 6 and _is_word(tokens[i]):
        words.append(tokens[i])
        if tokens[i].casefold().rstrip("s") in LOOK_NOUNS or tokens[i].casefold() in LOOK_NOUNS:
            return " ".join(words)
        i += 1
    return ""


@dataclass
class _Found:
    name: str
    role: str = ""
    look: str = ""
    named: bool = True
    place_only: bool = False


def _proper_runs(tokens: list[str]) -> list[tuple[int, int]]:
    """Runs [start, end) of capitalised words that may be names, leading stop words dropped."""
    starts = _sentence_starts(tokens)
    runs = []
    i = 0
    while i < len(tokens):
        if not (_is_word(tokens[i]) and _capitalised(tokens[i])):
            i += 1
            continue
        j = i
        while j < len(tokens) and _is_word(tokens[j]) and _capitalised(tokens[j]) and j - i < 4:
            j += 1
        start = i
        while start < j and tokens[start].casefold() in STARTERS:
            start += 1
        if start < j:
            words = tokens[start:j]
            single = len(words) == 1
            word = _bare(words[0])
            initial = start in starts
            ordinary = single and (
                _cue_word(word) or (initial and (word.casefold().endswith(("ing", "ly")) or len(word) < 2))
            )
            if not ordinary and not (single and word.casefold() in TITLES):
                runs.append((start, j))
        i = j
    return runs


def _find_cast(tokens: list[str]) -> list[_Found]:
    found: list[_Found] = []

    def add(
        name: str, *, role: str = "", look: str = "", named: bool = True, place_only: bool = False
    ) -> None:
        name = " ".join(_bare(w) for w in name.split())
        key = {w.casefold() for w in name.split() if w.casefold() not in TITLES}
        for f in found:
            other = {w.casefold() for w in f.name.split() if w.casefold() not in TITLES}
            if f.named and named and key & other:
                if len(name) > len(f.name):
                    f.name = name
                f.role = f.role or role
                f.look = f.look or look
                f.place_only = f.place_only and place_only
                return
        found.append(_Found(name=name, role=role, look=look, named=named, place_only=place_only))

    for start, end in _proper_runs(tokens):
        name = " ".join(tokens[start:end])
        before = tokens[start - 1].casefold() if start > 0 else ""
        role, look = "", _look_after(tokens, end)
        if before in ("named", "called"):
            role = (
                _role_before(tokens, start - 2)
                if start >= 2 and tokens[start - 2].casefold() in ROLE_NOUNS
                else ""
            )
        elif start > 0 and before in ROLE_NOUNS:
            role = _role_before(tokens, start - 1)  # "her daughter Lina"
        elif start > 1 and before == "," and tokens[start - 2].casefold() in ROLE_NOUNS:
            role = _role_before(tokens, start - 2)  # "an old keeper, Elias"
        if not role and end < len(tokens):
            if tokens[end] == "," and end + 1 < len(tokens):
                role, last = _role_after(tokens, end + 1)  # "Elias, an old lighthouse keeper"
                look = look or _look_after(tokens, last + 1) if role else look
            elif tokens[end].casefold() in ("the", "is", "was") and end + 1 < len(tokens):
                role, _ = _role_after(tokens, end + 1 if tokens[end].casefold() != "the" else end)
        if before in PROPER_PLACE_PREPOSITIONS:
            add(name, place_only=True)  # "in Lisbon", "on Mars"
            continue
        add(name, role=role, look=look)

    named_roles = {f.role.split()[-1] for f in found if f.role}
    for i, token in enumerate(tokens):
        noun = token.casefold()
        if noun not in ROLE_NOUNS or noun in named_roles:
            continue
        role = _role_before(tokens, i)
        if not role:
            continue
        followed_by_name = i + 1 < len(tokens) and (
            tokens[i + 1].casefold() in ("named", "called")
            or (_is_word(tokens[i + 1]) and _capitalised(tokens[i + 1]))
        )
        if followed_by_name:
            continue
        named_roles.add(noun)
        add(f"The {noun.capitalize()}", role=role, look=_look_after(tokens, i + 1), named=False)

    cast = [f for f in found if not f.place_only]
    # Names the idea gives come first, then those made from roles; each keeps its order of appearance.
    return sorted(cast, key=lambda f: not f.named)[:MAX_CAST]


def _place_phrases(tokens: list[str]) -> list[str]:
    phrases: list[str] = []
    for i, token in enumerate(tokens):
        preposition = token.casefold()
        if preposition not in PLACE_PREPOSITIONS:
            continue
        words = [preposition]
        j = i + 1
        if j < len(tokens) and tokens[j].casefold() in DETERMINERS:
            words.append(tokens[j].casefold())
            j += 1
        k = j
        # "to" before anything but a place ("to save the crew") is a verb's, not a place's.
        span = 4 if j > i + 1 or preposition != "to" else 1
        while k < len(tokens) and k - j < span and _is_word(tokens[k]):
            word = tokens[k]
            if _capitalised(word) and preposition in PROPER_PLACE_PREPOSITIONS and k == j:
                run = [word]
                while (
                    k + 1 < len(tokens)
                    and _is_word(tokens[k + 1])
                    and _capitalised(tokens[k + 1])
                    and len(run) < 3
                ):
                    k += 1
                    run.append(tokens[k])
                if not any(w.casefold() in STARTERS or w.casefold() in TIME_CUES for w in run):
                    phrases.append(" ".join([*words, *run]))
                break
            words.append(word if _capitalised(word) else word.casefold())
            if _place_noun(word) and not (k + 1 < len(tokens) and _place_noun(tokens[k + 1])):
                phrases.append(" ".join(words))
                break
            if word.casefold() in STARTERS and word.casefold() not in DETERMINERS:
                break
            k += 1
    # Places the idea names without a preposition ("a lighthouse keeper", "spots a ship").
    for token in tokens:
        noun = _place_noun(token)
        if noun and not any(
            noun in p.casefold().split() or token.casefold() in p.casefold().split() for p in phrases
        ):
            preposition = "on" if noun in PLACES_ON else "at" if noun in PLACES_AT else "in"
            phrases.append(f"{preposition} the {noun}")
    unique: list[str] = []
    for phrase in phrases:
        if phrase.casefold() not in (p.casefold() for p in unique):
            unique.append(phrase)
    return unique


def _place_noun(word: str) -> str:
    """The place noun `word` is, singular or plural ("rooftops"), or empty."""
    noun = word.casefold()
    if noun in PLACE_NOUNS:
        return noun
    return noun[:-1] if noun.endswith("s") and noun[:-1] in PLACE_NOUNS else ""


def _mentions(member: _Found) -> tuple[str, ...]:
    words = [
        w.casefold() for w in member.name.split() if w.casefold() not in TITLES and w.casefold() != "the"
    ]
    if member.role and not member.named:
        words.append(member.role.split()[-1])
    return tuple(dict.fromkeys(words))


def _split_clauses(sentence: str) -> list[str]:
    parts = [p for p in _CLAUSE_SPLIT.split(sentence.rstrip(".!?… ")) if p and p.strip()]
    clauses: list[str] = []
    for part in parts:
        pieces = re.split(r"\s+and\s+", part)
        current = pieces[0]
        for piece in pieces[1:]:
            first = piece.split()[0] if piece.split() else ""
            if (
                len(current.split()) >= 3
                and len(piece.split()) >= 2
                and first.islower()
                and first not in DETERMINERS
            ):
                clauses.append(current)
                current = piece
            else:
                current = f"{current} and {piece}"
        clauses.append(current)
    return clauses


def _clean_clause(clause: str, cast: list[CastMember]) -> str:
    words = clause.strip(' ,:;-"“”()').split()
    while words and words[0].casefold() in CONNECTORS:
        words = words[1:]
    if not words:
        return ""
    protagonist = cast[0] if cast else None
    lead = words[0].casefold()
    if protagonist is not None:
        who = (
            protagonist.name
            if protagonist.named
            else f"the {protagonist.role or protagonist.name.split()[-1]}"
        )
        if lead in PRONOUNS:
            both = " and ".join(c.name if c.named else f"the {c.role or c.name}" for c in cast[:2])
            words = [both if lead == "they" and len(cast) > 1 else who, *words[1:]]
        elif words[0].islower() and not _cue_word(lead) and not any(lead in c.mentions for c in cast):
            # A clause that starts with its verb ("... and rows out alone") is the protagonist's.
            words = [who, *words]
    words = words[:MAX_CLAUSE_WORDS]
    text = " ".join(words).rstrip(" ,;:-")
    return text[0].upper() + text[1:] if text else ""


def read_idea(idea: str) -> Reading:
    """What the built-in expander finds in an idea (normalised first)."""
    text = normalise(idea)
    tokens = _TOKEN_RE.findall(text)
    found = _find_cast(tokens)
    cast = [
        CastMember(name=f.name, role=f.role, look=f.look, named=f.named, mentions=_mentions(f)) for f in found
    ]
    sentences = [s.strip() for s in re.split(r"(?<=[.!?…])\s+", text) if _words(s)]
    clauses: list[Clause] = []
    for sentence in sentences:
        for raw in _split_clauses(sentence):
            cleaned = _clean_clause(raw, cast)
            if not _words(cleaned):
                continue
            if len(_words(cleaned)) < 2 and clauses:
                previous = clauses.pop()
                cleaned = f"{previous.text} {cleaned}"
            lowered = cleaned.casefold()
            places = _place_phrases(_TOKEN_RE.findall(cleaned))
            clauses.append(
                Clause(
                    text=cleaned,
                    characters=tuple(
                        c.name
                        for c in cast
                        if any(re.search(rf"\b{re.escape(m)}\b", lowered) for m in c.mentions)
                    ),
                    time_of_day=next(iter(_cues(cleaned, TIME_CUES)), None),
                    weather=next(iter(_cues(cleaned, WEATHER_CUES)), None),
                    place=places[0] if places else None,
                )
            )
    genres = _cues(text, GENRE_CUES)
    eras = _cues(text, ERA_CUES)
    lowered = text.casefold()
    return Reading(
        text=text,
        sentences=tuple(sentences),
        cast=tuple(cast),
        clauses=tuple(clauses),
        places=tuple(_place_phrases(tokens)),
        time_of_day=next(iter(_cues(text, TIME_CUES)), None),
        weather=next(iter(_cues(text, WEATHER_CUES)), None),
        moods=tuple(_cues(text, MOOD_CUES)[:2]),
        colours=tuple(c for c in COLOURS if re.search(rf"\b{c}\b", lowered))[:4],
        genre=genres[0] if genres else None,
        era=eras[0] if eras else None,
    )
