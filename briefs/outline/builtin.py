"""The built-in expander: an outline from the idea's own words, with no model and no network.

Deterministic: the same idea (and options) always gives the same outline, and the same note the same
change. Choices that look varied (shot types, camera moves, wording) are picked by a hash of the
idea, never by chance.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, replace

from briefs.outline.model import (
    ASPECTS,
    IDEA_MAX_CHARS,
    LENSES,
    MAX_SCENE_SECONDS,
    MAX_SCENES,
    MAX_TARGET_SECONDS,
    MIN_SCENE_SECONDS,
    MIN_SCENES,
    MIN_TARGET_SECONDS,
    NOTE_MAX_CHARS,
    PROMPT_MAX,
    Character,
    Outline,
    OutlineError,
    OutlineErrorCode,
    Scene,
    StoryBible,
    Style,
    checked,
)
from briefs.outline.reading import CastMember, Clause, Reading, clip, normalise, read_idea

BUILTIN_NAME = "built-in"

BEATS: dict[int, tuple[str, ...]] = {
    5: ("setup", "inciting", "rising", "climax", "resolution"),
    6: ("setup", "inciting", "rising", "midpoint", "climax", "resolution"),
    7: ("opening", "setup", "inciting", "rising", "midpoint", "climax", "resolution"),
    8: ("opening", "setup", "inciting", "rising", "midpoint", "crisis", "climax", "resolution"),
}
# Share of the running time per beat: the setup and the climax breathe, the crisis is short.
BEAT_WEIGHT = {
    "opening": 1.0,
    "setup": 1.2,
    "inciting": 1.0,
    "rising": 1.0,
    "midpoint": 0.9,
    "crisis": 0.8,
    "climax": 1.3,
    "resolution": 1.2,
}
SECONDS_PER_WEIGHT = 5
BEAT_SHOTS = {
    "opening": ("establishing", "aerial", "wide"),
    "setup": ("wide", "establishing", "full"),
    "inciting": ("medium", "over-the-shoulder", "insert"),
    "rising": ("full", "medium", "point-of-view"),
    "midpoint": ("close-up", "medium close-up", "point-of-view"),
    "crisis": ("extreme close-up", "close-up", "insert"),
    "climax": ("close-up", "wide", "point-of-view"),
    "resolution": ("wide", "establishing", "medium"),
}
BEAT_CAMERAS = {
    "opening": ("crane down", "dolly in", "pan"),
    "setup": ("static", "pan", "dolly in"),
    "inciting": ("dolly in", "zoom in", "static"),
    "rising": ("tracking", "handheld", "pan"),
    "midpoint": ("dolly in", "orbit", "static"),
    "crisis": ("static", "handheld", "zoom in"),
    "climax": ("handheld", "orbit", "tracking"),
    "resolution": ("crane up", "dolly out", "static"),
}
BEAT_MOOD = {
    "opening": "quiet",
    "setup": "calm",
    "inciting": "uneasy",
    "rising": "tense",
    "midpoint": "determined",
    "crisis": "desperate",
    "climax": "intense",
    "resolution": "hopeful",
}
BEAT_LABEL = {
    "opening": "opening",
    "setup": "setup",
    "inciting": "the spark",
    "rising": "rising stakes",
    "midpoint": "the turn",
    "crisis": "the low point",
    "climax": "climax",
    "resolution": "afterwards",
}
# With no time of day in the idea, the day moves on with the story and a new one dawns at the end.
BEAT_TIME = {
    "opening": "dawn",
    "setup": "day",
    "inciting": "day",
    "rising": "golden hour",
    "midpoint": "golden hour",
    "crisis": "dusk",
    "climax": "night",
    "resolution": "dawn",
}
NO_PEOPLE_SHOTS = ("wide", "insert", "establishing", "aerial")
LENS_FOR_SHOT = {
    "establishing": "24mm",
    "aerial": "14mm",
    "wide": "24mm",
    "full": "35mm",
    "medium": "35mm",
    "medium close-up": "50mm",
    "close-up": "85mm",
    "extreme close-up": "100mm macro",
    "over-the-shoulder": "50mm",
    "two-shot": "35mm",
    "point-of-view": "35mm",
    "insert": "100mm macro",
}
SHOT_PHRASE = {
    "establishing": "establishing shot",
    "aerial": "aerial shot",
    "wide": "wide shot",
    "full": "full shot",
    "medium": "medium shot",
    "medium close-up": "medium close-up",
    "close-up": "close-up",
    "extreme close-up": "extreme close-up",
    "over-the-shoulder": "over-the-shoulder shot",
    "two-shot": "two-shot",
    "point-of-view": "point-of-view shot",
    "insert": "insert shot",
}
CAMERA_PHRASE = {
    "static": "static camera",
    "pan": "slow pan",
    "tilt up": "camera tilting up",
    "tilt down": "camera tilting down",
    "dolly in": "dolly in",
    "dolly out": "dolly out",
    "tracking": "tracking camera",
    "crane up": "crane up",
    "crane down": "crane down",
    "handheld": "handheld camera",
    "orbit": "orbiting camera",
    "zoom in": "slow zoom in",
    "zoom out": "slow zoom out",
}
TIME_PHRASE = {
    "dawn": "at dawn",
    "morning": "in the morning",
    "day": "in daylight",
    "golden hour": "at golden hour",
    "dusk": "at dusk",
    "night": "at night",
}
WEATHER_PHRASE = {
    "clear": "",
    "overcast": "under an overcast sky",
    "rain": "in the rain",
    "storm": "in a raging storm",
    "snow": "in falling snow",
    "fog": "in thick fog",
}
LIGHT_FOR_TIME = {
    "dawn": "soft pale dawn light",
    "morning": "fresh morning sunlight",
    "day": "natural daylight",
    "golden hour": "warm low golden sun, long shadows",
    "dusk": "fading blue-hour light",
    "night": "moonlight and warm practical lamps, deep shadows",
}
LIGHT_FOR_WEATHER = {
    "clear": "",
    "overcast": "soft diffused light",
    "rain": "wet reflective surfaces",
    "storm": "flashes of lightning, churning clouds",
    "snow": "cold light bouncing off snow",
    "fog": "light scattered through fog",
}
LOW_KEY, HIGH_KEY = "low-key", "high-key"
ASPECT_PHRASE = {
    "16:9": "16:9 widescreen frame",
    "9:16": "vertical 9:16 frame",
    "1:1": "square 1:1 frame",
    "4:5": "4:5 portrait frame",
    "4:3": "4:3 frame",
    "21:9": "21:9 ultra-wide frame",
    "2.39:1": "2.39:1 anamorphic widescreen",
}
STYLE_NOTES = {
    None: "cinematic film still, natural colour grading, 35mm film grain",
    "noir": "film noir still, hard shadows, venetian-blind light, high contrast",
    "horror": "horror film still, desaturated colour, heavy shadows, unsettling framing",
    "science fiction": "science-fiction film still, clean practical lights, subtle haze",
    "cyberpunk": "cyberpunk film still, neon signs, wet streets, dense haze",
    "fantasy": "painterly fantasy film still, rich textures, volumetric light",
    "western": "western film still, dusty air, anamorphic look",
    "anime": "anime style, clean line art, cel shading",
    "animation": "animated feature style, soft shapes, bright clean colours",
    "watercolour": "watercolour illustration, soft washes, visible paper texture",
    "ink": "ink wash illustration, bold brush strokes, limited colour",
    "comic": "comic book panel, bold ink lines, flat colours",
}
DRAWN_STYLES = frozenset({"anime", "animation", "watercolour", "ink", "comic"})
PALETTE_FOR_TIME = {
    "dawn": ("pale rose", "soft gold", "misty blue"),
    "morning": ("warm white", "sky blue", "fresh green"),
    "day": ("natural greens", "sky blue", "warm white"),
    "golden hour": ("amber", "honey gold", "long violet shadows"),
    "dusk": ("indigo", "dusky pink", "steel blue"),
    "night": ("deep navy", "sodium orange", "ink black"),
}
NEGATIVE = (
    "blurry",
    "low resolution",
    "watermark",
    "text",
    "logo",
    "deformed hands",
    "extra fingers",
    "duplicate faces",
)
NEGATIVE_PHOTO = ("cartoon", "3d render")
NEGATIVE_DRAWN = ("photograph",)

# Scene text for the beats the idea's own clauses do not cover; {who} is the protagonist.
TEMPLATES: dict[str, tuple[tuple[str, str, str], ...]] = {
    # (title, action, what the frame shows)
    "opening": (
        ("{Focus}", "Opening image: {focus} {time}, before anyone appears.", "{focus}, empty and still"),
        ("{Focus}", "The film opens on {focus} {time}, quiet and waiting.", "{focus}, quiet and waiting"),
    ),
    "setup": (
        (
            "Meet {who}",
            "We meet {who_full}{place}, going about an ordinary {day}.",
            "{who_visual} at ease{place}",
        ),
        (
            "{Who}{place}",
            "{Who_full}{place}, in the calm before anything changes.",
            "{who_visual}{place}, calm",
        ),
    ),
    "inciting": (
        (
            "Something changes",
            "Something changes for {who}{place}; nothing will be the same.",
            "{who_visual} looking up, startled{place}",
        ),
        (
            "The first sign",
            "{Who} notices that something is wrong{place}.",
            "{who_visual} noticing something wrong{place}",
        ),
    ),
    "rising": (
        (
            "The stakes rise",
            "{Who} pushes on{place} as the stakes rise.",
            "{who_visual} pressing forward{place}",
        ),
        ("Pressing on", "The pressure grows on {who}{place}.", "{who_visual} under pressure{place}"),
    ),
    "midpoint": (
        (
            "What is at stake",
            "{Who} stops{place} and sees what is really at stake.",
            "{who_visual}, a moment of realisation{place}",
        ),
        (
            "The turn",
            "A turn{place}: {who} understands what must be done.",
            "{who_visual}, resolve hardening{place}",
        ),
    ),
    "crisis": (
        (
            "All seems lost",
            "All seems lost: {who} is alone{place} with no way back.",
            "{who_visual} alone and exhausted{place}",
        ),
        (
            "The lowest point",
            "{Who} falters{place}, at the lowest point.",
            "{who_visual} at the lowest point{place}",
        ),
    ),
    "climax": (
        (
            "The decisive moment",
            "Everything comes to a head{place}: {who} makes the decisive move.",
            "{who_visual} in the decisive moment{place}",
        ),
        (
            "The moment of truth",
            "{Who} faces the moment of truth{place}.",
            "{who_visual} facing the moment of truth{place}",
        ),
    ),
    "resolution": (
        (
            "Afterwards",
            "Afterwards, {who}{place}, changed by what happened.",
            "{who_visual}{place} in the calm afterwards",
        ),
        (
            "Calm returns",
            "Calm returns{place}; {who} looks back on what happened.",
            "{who_visual} looking back{place}, at peace",
        ),
    ),
}
# The same beats when the idea has no one in it (a storm, a city): the place carries the story.
TEMPLATES_NO_CAST: dict[str, tuple[str, str, str]] = {
    "opening": (
        "{Focus}",
        "Opening image: {focus} {time}, before anything happens.",
        "{focus}, empty and still",
    ),
    "setup": (
        "Where it begins",
        "The story opens on {focus}, calm and ordinary.",
        "{focus}, calm and ordinary",
    ),
    "inciting": (
        "First signs",
        "The first sign that something is changing in {focus}.",
        "{focus}, first signs of change",
    ),
    "rising": ("It builds", "It builds across {focus}, faster and stronger.", "{focus}, building momentum"),
    "midpoint": ("The turn", "A turn: {focus} no longer looks the same.", "{focus}, transformed"),
    "crisis": ("At the edge", "{Focus} at its most extreme.", "{focus} at its most extreme"),
    "climax": (
        "The peak",
        "The peak: everything happens at once in {focus}.",
        "{focus} at the peak of the action",
    ),
    "resolution": ("Stillness", "Stillness returns to {focus}.", "{focus}, stillness returning"),
}
SMALL_WORDS = frozenset("a an the and or but of at on in to for with by from as".split())
TRAILING = SMALL_WORDS | frozenset(
    "his her their its my our your during into onto over under while when who that".split()
)


def _stable(*parts: str) -> int:
    """A number from text, the same in every process (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


def _title_case(text: str) -> str:
    words = text.split()
    return " ".join(
        w if (i and w.casefold() in SMALL_WORDS) or not w[:1].islower() else w[:1].upper() + w[1:]
        for i, w in enumerate(words)
    )


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _article(phrase: str) -> str:
    return f"{'an' if phrase[:1].casefold() in 'aeiou' else 'a'} {phrase}"


def check_idea(idea: str) -> str:
    """The idea, stripped; `OutlineError` when it is empty, has no words or is too long."""
    if not isinstance(idea, str) or not idea.strip():
        raise OutlineError(
            OutlineErrorCode.INVALID_INPUT, "The idea is empty: write a sentence or two about the story."
        )
    idea = idea.strip()
    if len(idea) > IDEA_MAX_CHARS:
        raise OutlineError(
            OutlineErrorCode.INVALID_INPUT,
            f"The idea is {len(idea)} characters long; at most {IDEA_MAX_CHARS}. Shorten it to the story's core.",
        )
    # Read as the expander reads it: a list marker alone ("1)") is no words either.
    if not any(ch.isalnum() for ch in normalise(idea)):
        raise OutlineError(
            OutlineErrorCode.INVALID_INPUT, "The idea has no words in it: write what the story is about."
        )
    return idea


def check_options(scenes: int | None, target_seconds: int | None, aspect: str | None) -> str:
    """The aspect to use; `OutlineError` naming the first option out of range."""
    if scenes is not None and (type(scenes) is not int or not MIN_SCENES <= scenes <= MAX_SCENES):
        raise OutlineError(
            OutlineErrorCode.INVALID_INPUT,
            f"The number of scenes must be {MIN_SCENES} to {MAX_SCENES}, not {scenes!r}.",
        )
    if target_seconds is not None:
        if type(target_seconds) is not int or not MIN_TARGET_SECONDS <= target_seconds <= MAX_TARGET_SECONDS:
            raise OutlineError(
                OutlineErrorCode.INVALID_INPUT,
                f"The target length must be {MIN_TARGET_SECONDS} to {MAX_TARGET_SECONDS} seconds, not {target_seconds!r}.",
            )
        if (
            scenes is not None
            and not scenes * MIN_SCENE_SECONDS <= target_seconds <= scenes * MAX_SCENE_SECONDS
        ):
            raise OutlineError(
                OutlineErrorCode.INVALID_INPUT,
                f"{scenes} scenes of {MIN_SCENE_SECONDS} to {MAX_SCENE_SECONDS} seconds cannot last "
                f"{target_seconds} seconds.",
            )
    if aspect is None:
        return "16:9"
    if aspect not in ASPECTS:
        raise OutlineError(
            OutlineErrorCode.INVALID_INPUT,
            f"The aspect ratio must be one of {', '.join(ASPECTS)}, not {aspect!r}.",
        )
    return aspect


def scene_count(clauses: int, scenes: int | None, target_seconds: int | None) -> int:
    if scenes is not None:
        return scenes
    if target_seconds is not None:
        count = min(MAX_SCENES, max(MIN_SCENES, round(target_seconds / 6)))
        return max(count, math.ceil(target_seconds / MAX_SCENE_SECONDS))
    return min(MAX_SCENES, max(MIN_SCENES, clauses + 2))


def spread_seconds(weights: list[float], total: int) -> list[int]:
    """Whole seconds in proportion to `weights`, each 1 to 60, summing exactly to `total`."""
    assert len(weights) * MIN_SCENE_SECONDS <= total <= len(weights) * MAX_SCENE_SECONDS
    share = [w * total / sum(weights) for w in weights]
    seconds = [MIN_SCENE_SECONDS] * len(weights)
    for _ in range(total - sum(seconds)):
        open_ = [i for i, s in enumerate(seconds) if s < MAX_SCENE_SECONDS]
        # The scene furthest below its share gets the next second; ties go to the earlier scene.
        i = max(open_, key=lambda i: (share[i] - seconds[i], -i))
        seconds[i] += 1
    return seconds


def _assign_clauses(beats: tuple[str, ...], clauses: tuple[Clause, ...]) -> list[list[Clause]]:
    """Which of the idea's clauses each beat tells, in the idea's order."""
    assigned: list[list[Clause]] = [[] for _ in beats]
    story = [i for i, beat in enumerate(beats) if beat != "opening"]
    k = len(clauses)
    if k == 0:
        return assigned
    if k <= 3:
        # A short idea is its premise: the trigger, what follows, and how it comes to a head.
        targets = {1: ["inciting"], 2: ["inciting", "climax"], 3: ["inciting", "rising", "climax"]}[k]
        for clause, beat in zip(clauses, targets, strict=True):
            assigned[beats.index(beat)].append(clause)
        return assigned
    if k <= len(story):
        for j, clause in enumerate(clauses):
            assigned[story[round(j * (len(story) - 1) / (k - 1))]].append(clause)
        return assigned
    for n, i in enumerate(story):
        assigned[i].extend(clauses[n * k // len(story) : (n + 1) * k // len(story)])
    return assigned


def _who(member: CastMember) -> str:
    return member.name if member.named else f"the {member.role or member.name.split()[-1]}"


def _visual(member: CastMember) -> str:
    """How the character is written into a prompt: every anchor, in plain words."""
    if member.named:
        text = member.name + (f", {member.role}" if member.role else "")
    else:
        text = f"the {member.role}"
    return text + (f" {member.look}" if member.look else "")


def _look_anchor(look: str) -> str:
    words = look.split()[1:]  # without "in" / "with" / "wearing"
    while words and words[0].casefold() in ("a", "an", "the", "his", "her", "their"):
        words = words[1:]
    return " ".join(words)


def _character(member: CastMember, reading: Reading) -> Character:
    mention = next((c.text for c in reading.clauses if member.name in c.characters), "")
    if member.named:
        who = f"{member.name}, {_article(member.role)}" if member.role else member.name
    else:
        who = _upper_first(_article(member.role))
    description = f"{who}. {mention}." if mention and mention.casefold() != who.casefold() else f"{who}."
    anchors = [member.role or member.name]
    if _look_anchor(member.look):
        anchors.append(_look_anchor(member.look))
    same = "the same face, hair and clothes in every shot"
    if member.look:
        look = f"{_article(member.role) if member.role else member.name} {member.look}; {same}"
    elif member.role:
        look = f"{_upper_first(_article(member.role))}; {same}"
    else:
        look = f"{member.name} as the idea describes them; {same}"
    return Character(
        name=clip(member.name, 60),
        description=clip(description, 300),
        look=clip(look, 300),
        anchors=tuple(clip(a, 60) for a in anchors),
    )


def _place_np(place: str) -> str:
    """ "at the lighthouse" -> "the lighthouse"."""
    return place.split(" ", 1)[1] if " " in place else place


def _clause_title(clause: str, cast: tuple[CastMember, ...]) -> str:
    # "Mara, a young fisherwoman, finds" -> "Mara finds"; "In Lisbon, a detective hunts" -> "a detective hunts"
    text = re.sub(r",\s+(?:a|an|the)\s[^,]+,", "", clause)
    opening = re.match(r"(?:in|at|on|one|when|after|before|during|as)\b[^,]{0,40},\s*(?=\S)", text, re.I)
    if opening:
        text = text[opening.end() :]
    words = text.replace(",", "").split()
    for i, word in enumerate(words[:9]):
        if any(re.sub(r"['\u2019]s$", "", word.casefold()) in c.mentions for c in cast if c.named):
            words = words[i:]
            break
    words = words[:8]
    while len(words) > 2 and words[-1].casefold() in TRAILING:
        words = words[:-1]
    return clip(_upper_first(" ".join(words)), 100)


def lighting_for(time_of_day: str, weather: str, key: str = "") -> str:
    base = LIGHT_FOR_TIME[time_of_day]
    return ", ".join(p for p in (f"{key} {base}" if key else base, LIGHT_FOR_WEATHER[weather]) if p)


@dataclass(frozen=True)
class _Plan:
    beat: str
    clauses: tuple[Clause, ...]
    time_of_day: str
    weather: str
    place: str
    characters: tuple[str, ...]


def _plans(reading: Reading, beats: tuple[str, ...]) -> list[_Plan]:
    assigned = _assign_clauses(beats, reading.clauses)
    main_place = reading.places[0] if reading.places else ""
    time = reading.time_of_day
    weather = next((c.weather for c in reading.clauses[:1] if c.weather), None) or "clear"
    protagonist = reading.protagonist
    baseline = weather
    place = main_place
    plans = []
    for beat, clauses in zip(beats, assigned, strict=True):
        for clause in clauses:
            if clause.time_of_day and clause.time_of_day != time:
                weather = baseline  # a new time of day brings its own weather unless the idea says otherwise
            time = clause.time_of_day or time
            weather = clause.weather or weather
            place = clause.place or place
        if beat == "resolution" and not clauses and weather in ("storm", "rain"):
            weather = "overcast"  # the storm has passed
        if clauses:
            names = [n for c in clauses for n in c.characters]
        elif beat == "opening" or protagonist is None:
            names = []
        else:
            names = [protagonist.name]
        plans.append(
            _Plan(
                beat=beat,
                clauses=tuple(clauses),
                time_of_day=time or BEAT_TIME[beat],
                weather=weather,
                place=place,
                characters=tuple(dict.fromkeys(names)),
            )
        )
    return plans


def _pick(options: tuple[str, ...], used: list[str], *key: str) -> str:
    """One of `options`, picked by a hash of `key`: never the previous pick, and a new one while
    fewer than three have been used, so the film keeps changing its framing."""
    start = _stable(*key) % len(options)
    ordered = [o for o in options[start:] + options[:start] if not used or o != used[-1]] or list(options)
    if len(set(used)) < 3:
        ordered = [o for o in ordered if o not in used] or ordered
    return ordered[0]


def _shot_options(beat: str, people: int, aspect: str) -> tuple[str, ...]:
    options: tuple[str, ...] = BEAT_SHOTS[beat]
    if people >= 2 and beat in ("inciting", "rising", "climax"):
        options = ("two-shot", "over-the-shoulder", *options)
    if people == 0:
        # With no one in the frame, show the place or a detail of it.
        options = (*(o for o in options if o in NO_PEOPLE_SHOTS), *NO_PEOPLE_SHOTS)
    if aspect in ("9:16", "4:5"):
        # A tall frame holds one figure well and a landscape poorly.
        options = tuple("full" if o in ("wide", "aerial") else o for o in options)
    return tuple(dict.fromkeys(options))


def _segments(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _contains(prompt: str, phrase: str) -> bool:
    return phrase.casefold() in prompt.casefold()


def compose_prompt(
    *,
    core: str,
    scene: Scene,
    bible: StoryBible,
    place: str,
    aspect: str,
) -> str:
    """A render prompt: shot, what the frame shows, who is in it (every anchor), place, time, weather,
    light, camera, lens, mood, style and frame, as comma-separated segments refine can swap."""
    segments = [SHOT_PHRASE[scene.shot], clip(core, 320)]
    for name in scene.characters:
        character = bible.character(name)
        missing = [a for a in character.anchors if not _contains(", ".join(segments), a)]
        if missing:
            segments.append(", ".join(missing))
    if place and not _contains(core, _place_np(place)):
        segments.append(place)
    segments += [
        "" if _contains(core, TIME_PHRASE[scene.time_of_day]) else TIME_PHRASE[scene.time_of_day],
        "" if _contains(core, WEATHER_PHRASE[scene.weather]) else WEATHER_PHRASE[scene.weather],
        scene.lighting,
        CAMERA_PHRASE[scene.camera],
        f"{scene.lens} lens",
        f"{scene.mood} mood",
        bible.style.notes,
    ]
    if bible.style.palette:
        segments.append(" and ".join(bible.style.palette[:3]) + " palette")
    segments.append(ASPECT_PHRASE[aspect])
    return clip(", ".join(s for s in segments if s), PROMPT_MAX)


def _scene_text(plan: _Plan, reading: Reading, variant: int) -> tuple[str, str, str]:
    """Title, action and what the frame shows, for one planned scene."""
    if plan.clauses:
        action = " ".join(c.text.rstrip(".!?…") + "." for c in plan.clauses)
        core = " and ".join(c.text.rstrip(".!?…") for c in plan.clauses)
        if core.split()[0] in ("A", "An", "The"):
            core = core[:1].lower() + core[1:]
        return _clause_title(plan.clauses[0].text, reading.cast), clip(action, 600), core
    place = f" {plan.place}" if plan.place else ""
    protagonist = reading.protagonist
    if protagonist is None or plan.beat == "opening":
        focus = (
            _place_np(plan.place)
            if plan.place
            else clip(reading.clauses[0].text, 80)
            if reading.clauses
            else "the world"
        )
        if (
            plan.beat != "opening"
            and focus[:1].isupper()
            and focus.split()[0].casefold() in ("a", "an", "the")
        ):
            focus = focus[:1].lower() + focus[1:]
        title, action, frame = (
            TEMPLATES["opening"][variant] if plan.beat == "opening" else TEMPLATES_NO_CAST[plan.beat]
        )
        slots = {"focus": focus, "Focus": _upper_first(focus), "time": TIME_PHRASE[plan.time_of_day]}
    else:
        title, action, frame = TEMPLATES[plan.beat][variant]
        who = _who(protagonist)
        who_full = (
            f"{protagonist.name}, {_article(protagonist.role)}"
            if protagonist.named and protagonist.role
            else who
        )
        slots = {
            "who": who,
            "Who": _upper_first(who),
            "who_full": who_full,
            "Who_full": _upper_first(who_full),
            "who_visual": _visual(protagonist),
            "place": place,
            "day": "night" if plan.time_of_day == "night" else "day",
        }
    return (
        clip(
            _title_case(title.format(**slots)) if "{Focus}" in title else _upper_first(title.format(**slots)),
            100,
        ),
        clip(action.format(**slots), 600),
        frame.format(**slots),
    )


def _title(reading: Reading) -> str:
    protagonist = reading.protagonist
    if protagonist is not None and protagonist.named:
        if reading.weather in ("storm", "snow", "fog", "rain"):
            return f"{protagonist.name} and the {dict(rain='Rain', storm='Storm', snow='Snow', fog='Fog')[reading.weather]}"
        if reading.places:
            return _title_case(f"{protagonist.name} {reading.places[0]}")
        return protagonist.name
    if protagonist is not None:
        return _title_case(f"the {protagonist.role}")
    first = reading.clauses[0].text if reading.clauses else reading.text
    words = first.split()[:6]
    while len(words) > 2 and words[-1].casefold() in TRAILING:
        words = words[:-1]
    return _title_case(" ".join(words))


def _logline(reading: Reading) -> str:
    sentences = list(reading.sentences) or [reading.text]
    text = sentences[0] if len(sentences) == 1 else f"{sentences[0]} {sentences[-1]}"
    return clip(text, 400)


def _setting(reading: Reading) -> str:
    places = [_place_np(p) for p in reading.places[:3]]
    if places:
        text = ", ".join(places)
    elif reading.protagonist is not None:
        text = f"The world of {_who(reading.protagonist)}"
    else:
        text = f"Where this happens: {reading.sentences[0] if reading.sentences else reading.text}"
    if reading.era:
        text += f"; {reading.era} era"
    return clip(_upper_first(text), 300)


def _style(reading: Reading, times: list[str]) -> Style:
    notes = STYLE_NOTES.get(reading.genre, STYLE_NOTES[None])
    if reading.era:
        notes += f", {reading.era} period detail"
    main_time = max(dict.fromkeys(times), key=times.count)
    weather = ("slate grey",) if reading.weather in ("storm", "rain", "overcast", "fog") else ()
    palette = tuple(dict.fromkeys((*reading.colours, *weather, *PALETTE_FOR_TIME[main_time])))[:6]
    negative = NEGATIVE + (NEGATIVE_DRAWN if reading.genre in DRAWN_STYLES else NEGATIVE_PHOTO)
    return Style(notes=clip(notes, 300), palette=palette, negative=negative)


def _transition(plans: list[_Plan], i: int) -> str:
    if i == len(plans) - 1:
        return "fade"
    if plans[i].time_of_day != plans[i + 1].time_of_day or plans[i + 1].beat == "resolution":
        return "dissolve"
    return "cut"


def expand_idea(
    idea: str,
    *,
    scenes: int | None = None,
    target_seconds: int | None = None,
    aspect: str | None = None,
) -> Outline:
    """An outline built from the idea's own words: its cast, places and cues, told in 5 to 8 beats
    from setup to resolution. Durations sum to `target_seconds` when it is given."""
    idea = check_idea(idea)
    aspect = check_options(scenes, target_seconds, aspect)
    reading = read_idea(idea)
    beats = BEATS[scene_count(len(reading.clauses), scenes, target_seconds)]
    plans = _plans(reading, beats)
    times = [p.time_of_day for p in plans]
    bible = StoryBible(
        characters=tuple(_character(m, reading) for m in reading.cast),
        style=_style(reading, times),
        setting=_setting(reading),
    )
    weights = [BEAT_WEIGHT[b] for b in beats]
    if target_seconds is None:
        seconds = [max(MIN_SCENE_SECONDS, round(w * SECONDS_PER_WEIGHT)) for w in weights]
    else:
        seconds = spread_seconds(weights, target_seconds)
    built: list[Scene] = []
    titles: set[str] = set()
    shots: list[str] = []
    cameras: list[str] = []
    for i, plan in enumerate(plans):
        variant = _stable(reading.text, plan.beat, "text") % 2
        title, action, core = _scene_text(plan, reading, variant)
        if title.casefold() in titles:
            title = clip(f"{title} ({BEAT_LABEL[plan.beat]})", 100)
        titles.add(title.casefold())
        shot = _pick(
            _shot_options(plan.beat, len(plan.characters), aspect), shots, reading.text, plan.beat, "shot"
        )
        camera = _pick(BEAT_CAMERAS[plan.beat], cameras, reading.text, plan.beat, "camera")
        shots.append(shot)
        cameras.append(camera)
        moods = [BEAT_MOOD[plan.beat], *(m for m in reading.moods if m != BEAT_MOOD[plan.beat])]
        scene = Scene(
            title=title,
            action=action,
            prompt="",
            shot=shot,
            camera=camera,
            lens=LENS_FOR_SHOT[shot],
            lighting=lighting_for(plan.time_of_day, plan.weather),
            mood=" and ".join(moods[:2]),
            time_of_day=plan.time_of_day,
            weather=plan.weather,
            duration_seconds=seconds[i],
            transition=_transition(plans, i),
            characters=plan.characters,
        )
        built.append(
            replace(
                scene,
                prompt=compose_prompt(core=core, scene=scene, bible=bible, place=plan.place, aspect=aspect),
            )
        )
    outline = Outline(
        title=clip(_title(reading), 120),
        logline=_logline(reading),
        aspect=aspect,
        bible=bible,
        scenes=tuple(built),
    )
    return checked(outline)


# --- refine ---------------------------------------------------------------------------------------

# (category, value, pattern), tried in order; a match is blanked out so that "extreme close-up" is
# not read again as "close-up", nor "no rain" as "rain".
DIRECTIVES: tuple[tuple[str, str, str], ...] = (
    ("weather", "clear", r"no rain|without rain|stop the rain|dry|clear sk(?:y|ies)|clear weather|sunny"),
    ("time", "golden hour", r"golden hour|sunset"),
    ("time", "night", r"night(?:-?time)?|midnight|tonight|after dark|moonlit|moonlight"),
    ("time", "dawn", r"dawn|sunrise|daybreak"),
    ("time", "dusk", r"dusk|twilight|evening|blue hour"),
    ("time", "morning", r"morning"),
    ("time", "day", r"day(?:-?time)?|day-?light|midday|noon|afternoon"),
    ("shot", "extreme close-up", r"extreme close[- ]?up|ecu|macro"),
    ("shot", "medium close-up", r"medium close[- ]?up"),
    ("shot", "close-up", r"close[- ]?up|closer|tighter"),
    ("shot", "over-the-shoulder", r"over[- ]the[- ]shoulder|ots"),
    ("shot", "point-of-view", r"point[- ]of[- ]view|pov"),
    ("shot", "establishing", r"establishing"),
    ("shot", "aerial", r"aerial|drone|bird'?s[- ]eye"),
    ("shot", "two-shot", r"two[- ]shot"),
    ("shot", "insert", r"insert"),
    ("shot", "wide", r"wide(?:r)?|pull back|pull out|long shot"),
    ("shot", "medium", r"medium"),
    ("pace", "slower", r"slow(?:er)?|slow down|longer|linger|more time"),
    ("pace", "faster", r"fast(?:er)?|speed up|quick(?:er)?|shorter|snappier"),
    ("light", LOW_KEY, r"dark(?:er)?|moodier|low[- ]key|gloomier|more shadows?"),
    ("light", HIGH_KEY, r"bright(?:er)?|lighter|high[- ]key|more light"),
    ("weather", "rain", r"rain(?:y|ing)?|downpour|wet"),
    ("weather", "storm", r"storm(?:y)?|thunder|lightning"),
    ("weather", "snow", r"snow(?:y|ing)?|blizzard"),
    ("weather", "fog", r"fog(?:gy)?|mist(?:y)?|haz(?:e|y)"),
    ("weather", "overcast", r"overcast|cloudy"),
    ("camera", "handheld", r"hand-?held|shaky"),
    ("camera", "static", r"static|locked[- ]off|tripod|still camera"),
    ("camera", "dolly in", r"dolly in|push in"),
    ("camera", "dolly out", r"dolly out"),
    ("camera", "tracking", r"tracking|follow(?:ing)?"),
    ("camera", "orbit", r"orbit(?:ing)?|circle"),
    ("camera", "crane up", r"crane"),
    ("camera", "pan", r"pan"),
    ("camera", "zoom in", r"zoom"),
    ("transition", "fade", r"fade(?: out)?"),
    ("transition", "dissolve", r"dissolve"),
    ("transition", "cut", r"hard cut|cut"),
    ("mood", "tense", r"tense|tension|suspense(?:ful)?|nervous|anxious"),
    ("mood", "calm", r"calm(?:er)?|peaceful|serene|gentle|gentler"),
    ("mood", "melancholic", r"sad(?:der)?|melanchol(?:y|ic)|somb(?:er|re)|mournful|wistful"),
    ("mood", "joyful", r"happ(?:y|ier)|joyful|cheerful|upbeat|playful"),
    ("mood", "eerie", r"eerie|creepy|spooky|ominous|sinister|unsettling"),
    ("mood", "romantic", r"romantic|tender|intimate"),
    ("mood", "hopeful", r"hopeful|uplifting|optimistic"),
    ("mood", "mysterious", r"mysterious|mystery|enigmatic"),
    ("mood", "epic", r"epic|heroic|triumphant"),
    ("mood", "dreamy", r"dreamy|dreamlike|surreal"),
)
_DIRECTIVE_RES = tuple(
    (category, value, re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])", re.IGNORECASE))
    for category, value, pattern in DIRECTIVES
)
# "make it 5 seconds", "a 12-second shot", "8 s".
_SECONDS_IN_NOTE = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s*-?\s*(?:s|secs?|seconds?)(?![\w-])", re.IGNORECASE
)
UNDERSTOOD = (
    "night, day, dawn, morning, golden hour, dusk; close-up, extreme close-up, medium close-up, medium, wide, "
    "establishing, aerial, over-the-shoulder, point-of-view, two-shot, insert; slower, faster, shorter, longer, "
    "'5 seconds'; darker, brighter; rain, storm, snow, fog, overcast, clear; handheld, static, dolly in, dolly out, "
    "tracking, orbit, crane, pan, zoom; fade, dissolve, cut; tense, calm, sad, joyful, eerie, romantic, hopeful, "
    "mysterious, epic, dreamy; 'scene 3'"
)
_SCENE_IN_NOTE = re.compile(r"\bscene\s+(\d+)\b", re.IGNORECASE)
# Where one part of a note ends and the next begins; each part is understood, or kept, as a whole.
_NOTE_PARTS = re.compile(r"[,;.!?\n]+|\s+(?:and|but|then|also|plus)\s+", re.IGNORECASE)
# Words that ask for nothing on their own ("make it a night shot"): a part made only of these and
# of understood directives has nothing left to keep.
NOTE_FILLER = frozenset(
    """a an the it its it's this that these those make made turn set use go keep give try let
    shot shots scene scenes frame one bit little lot much very really more less too quite rather
    to be is are was should could would please now instead same way so of for on in into at as
    with all every each whole outline film movie story feel feels look looks lighting light mood
    camera time move lens no not than there here them everything whole""".split()
)


@dataclass(frozen=True)
class NoteReading:
    """What a note asks for, by category; the scene it names ("scene 3" is index 2), if any; and the
    parts of it that the built-in expander does not understand, in the writer's own words."""

    asked: dict[str, str]
    scene: int | None
    kept: tuple[str, ...]


def scene_named_in(note: str) -> int | None:
    """The scene a note names ("make scene 3 a night shot" names index 2), if any."""
    named = _SCENE_IN_NOTE.search(note)
    return int(named.group(1)) - 1 if named else None


def check_note(note: str) -> str:
    if not isinstance(note, str) or not note.strip():
        raise OutlineError(OutlineErrorCode.INVALID_INPUT, "The note is empty: say what to change.")
    if len(note) > NOTE_MAX_CHARS:
        raise OutlineError(
            OutlineErrorCode.INVALID_INPUT,
            f"The note is {len(note)} characters long; at most {NOTE_MAX_CHARS}.",
        )
    return note


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def read_note(note: str) -> NoteReading:
    """Read a note: the directives it gives, the scene it names, and what is left that it does not
    understand (kept, so that nothing the writer wrote is dropped)."""
    check_note(note)
    unscened = _SCENE_IN_NOTE.sub(lambda m: " " * len(m.group(0)), note)
    blanked = unscened
    asked: dict[str, list[str]] = {}
    for match in _SECONDS_IN_NOTE.finditer(blanked):
        seconds = round(float(match.group(1)))
        if not MIN_SCENE_SECONDS <= seconds <= MAX_SCENE_SECONDS:
            raise OutlineError(
                OutlineErrorCode.INVALID_INPUT,
                f"A scene runs {MIN_SCENE_SECONDS} to {MAX_SCENE_SECONDS} seconds; the note asks for "
                f"{match.group(1)}.",
            )
        asked.setdefault("seconds", [])
        if str(seconds) not in asked["seconds"]:
            asked["seconds"].append(str(seconds))
        blanked = _blank(blanked, *match.span())
    for category, value, regex in _DIRECTIVE_RES:
        for match in list(regex.finditer(blanked)):
            asked.setdefault(category, [])
            if value not in asked[category]:
                asked[category].append(value)
            blanked = _blank(blanked, *match.span())
    kept = _kept_parts(unscened, blanked)
    if not asked and not kept:
        raise OutlineError(
            OutlineErrorCode.UNKNOWN_NOTE,
            f"The note {clip(note, 80)!r} asks for nothing the built-in expander can change. It understands: "
            f"{UNDERSTOOD}; other words are added to the scene's action.",
        )
    clashes = [f"{' and '.join(values)}" for values in asked.values() if len(values) > 1]
    if clashes:
        raise OutlineError(
            OutlineErrorCode.INVALID_INPUT, f"The note asks for both {'; '.join(clashes)}: choose one."
        )
    if "seconds" in asked:
        asked.pop("pace", None)  # "make it 5 seconds, shorter": the number says how much
    return NoteReading(
        {category: values[0] for category, values in asked.items()}, scene_named_in(note), kept
    )


def _kept_parts(text: str, blanked: str) -> tuple[str, ...]:
    """The parts of `text` with a word left in `blanked` that is not filler; neighbouring parts are
    kept together with what joined them, so "Elias and Mara argue" stays one piece."""
    parts: list[tuple[int, int, bool]] = []
    start = 0
    for separator in [*_NOTE_PARTS.finditer(text), None]:
        end = separator.start() if separator else len(text)
        words = (w.casefold().strip("'-") for w in re.findall(r"[\w'-]+", blanked[start:end]))
        parts.append((start, end, any(w and w not in NOTE_FILLER for w in words)))
        start = separator.end() if separator else len(text)
    kept: list[str] = []
    run: tuple[int, int] | None = None
    for start, end, keep in [*parts, (0, 0, False)]:
        if keep:
            run = (run[0] if run else start, end)
        elif run is not None:
            piece = " ".join(text[run[0] : run[1]].split()).strip(" ,;:-")
            if piece:
                kept.append(piece)
            run = None
    return tuple(kept)


def _swap(prompt: str, old: set[str], new: str) -> str:
    """Replace the prompt's segments that are one of `old` with `new` (where the first was), or add it."""
    segments = _segments(prompt)
    folded = {o.casefold() for o in old if o}
    kept: list[str] = []
    at = None
    for segment in segments:
        if segment.casefold() in folded:
            at = len(kept) if at is None else at
            continue
        kept.append(segment)
    if new:
        if at is None:
            kept.append(new)
        else:
            kept.insert(at, new)
    return ", ".join(kept)


BUILT_LIGHTING = frozenset(
    lighting_for(t, w, k) for t in LIGHT_FOR_TIME for w in LIGHT_FOR_WEATHER for k in ("", LOW_KEY, HIGH_KEY)
)


def _key_of(lighting: str) -> str:
    return next((k for k in (LOW_KEY, HIGH_KEY) if lighting.startswith(k)), "")


def _lighting_segments(lighting: str) -> set[str]:
    return set(_segments(lighting)) | {
        s.removeprefix(f"{k} ") for s in _segments(lighting) for k in (LOW_KEY, HIGH_KEY)
    }


def refine_scene(scene: Scene, note: NoteReading, bible: StoryBible) -> Scene:
    """One scene with a note's directives applied, and the parts of the note it does not understand
    added to its action; its prompt keeps every character's anchors."""
    original = scene
    asked = note.asked
    if {"time", "weather", "light"} & asked.keys():
        time = asked.get("time", scene.time_of_day)
        weather = asked.get("weather", scene.weather)
        key = asked.get("light", _key_of(scene.lighting))
        # An unknown weather (a hand-written scene's) lights like a clear sky and stays unknown.
        if (
            time in LIGHT_FOR_TIME
            and (weather or "clear") in LIGHT_FOR_WEATHER
            and (scene.lighting in BUILT_LIGHTING or {"time", "weather"} & asked.keys())
        ):
            lighting = lighting_for(time, weather or "clear", key)
        else:
            # A writer's or a model's own wording: keep it, with the weather's light, and the key in front.
            bare = scene.lighting.removeprefix(f"{_key_of(scene.lighting)} ")
            if "weather" in asked:
                bare = _swap(bare, set(LIGHT_FOR_WEATHER.values()), LIGHT_FOR_WEATHER[weather])
            lighting = clip(f"{key} {bare}".strip(), 160)
        prompt = scene.prompt
        if "time" in asked:
            prompt = _swap(prompt, set(TIME_PHRASE.values()), TIME_PHRASE[time])
        if "weather" in asked:
            prompt = _swap(prompt, set(WEATHER_PHRASE.values()), WEATHER_PHRASE[weather])
        prompt = _swap(prompt, _lighting_segments(scene.lighting), lighting)
        scene = replace(scene, time_of_day=time, weather=weather, lighting=lighting, prompt=prompt)
    if "shot" in asked:
        shot, lens = asked["shot"], LENS_FOR_SHOT[asked["shot"]]
        prompt = _swap(scene.prompt, set(SHOT_PHRASE.values()), SHOT_PHRASE[shot])
        prompt = _swap(prompt, {f"{lens} lens" for lens in LENSES}, f"{lens} lens")
        scene = replace(scene, shot=shot, lens=lens, prompt=prompt)
    if "camera" in asked:
        camera = asked["camera"]
        scene = replace(
            scene,
            camera=camera,
            prompt=_swap(scene.prompt, set(CAMERA_PHRASE.values()), CAMERA_PHRASE[camera]),
        )
    if "mood" in asked:
        old = {f"{scene.mood} mood"} if scene.mood else set()
        scene = replace(scene, mood=asked["mood"], prompt=_swap(scene.prompt, old, f"{asked['mood']} mood"))
    if "seconds" in asked:
        scene = replace(scene, duration_seconds=int(asked["seconds"]))
    elif asked.get("pace") == "slower":
        seconds = scene.duration_seconds
        scene = replace(
            scene, duration_seconds=min(MAX_SCENE_SECONDS, max(seconds + 1, round(seconds * 1.5)))
        )
    elif asked.get("pace") == "faster":
        seconds = scene.duration_seconds
        scene = replace(
            scene,
            duration_seconds=max(MIN_SCENE_SECONDS, min(seconds - 1, round(seconds * 2 / 3))),
            transition="cut",
        )
    if "transition" in asked:
        scene = replace(scene, transition=asked["transition"])
    if note.kept:
        added = " ".join(_sentence(part) for part in note.kept)
        scene = replace(scene, action=f"{scene.action.rstrip()} {added}".strip())
    # A swap may have taken out a segment that carried a character's anchor: put it back. An
    # anchor the prompt never had stays out (a brief's composition adds the cast's words itself).
    prompt = scene.prompt
    for name in original.characters:
        for anchor in bible.character(name).anchors:
            if _contains(original.prompt, anchor) and not _contains(prompt, anchor):
                prompt = f"{prompt}, {anchor}"
    return replace(scene, prompt=prompt)


def _sentence(part: str) -> str:
    part = _upper_first(part)
    return part if part[-1] in ".!?…" else part + "."


def refine_outline(outline: Outline, note: str, *, scene_index: int | None = None) -> Outline:
    """The outline with a note applied to one scene (`scene_index`, from 0, or "scene 3" in the note)
    or to every scene. The directives it understands change the shot, the light, the pace …; the
    rest of the note is added to the action of the scenes it applies to. Only the scenes it applies
    to change; the outline may hold any number of scenes (a brief's)."""
    reading = read_note(note)
    count = len(outline.scenes)
    if scene_index is not None and (type(scene_index) is not int or not 0 <= scene_index < count):
        raise OutlineError(
            OutlineErrorCode.INVALID_INPUT,
            f"There is no scene {scene_index!r}: the outline has scenes 0 to {count - 1}.",
        )
    named = reading.scene
    if named is not None:
        if not 0 <= named < count:
            raise OutlineError(
                OutlineErrorCode.INVALID_INPUT,
                f"The note names scene {named + 1}, but the outline has {count} scenes.",
            )
        if scene_index is not None and scene_index != named:
            raise OutlineError(
                OutlineErrorCode.INVALID_INPUT,
                f"The note names scene {named + 1}, but scene {scene_index + 1} was chosen.",
            )
        scene_index = named
    scenes = tuple(
        refine_scene(scene, reading, outline.bible) if scene_index is None or i == scene_index else scene
        for i, scene in enumerate(outline.scenes)
    )
    return replace(outline, scenes=scenes)


class BuiltinExpander:
    """The deterministic expander, for when no model endpoint is configured."""

    @property
    def name(self) -> str:
        return BUILTIN_NAME

    def expand(
        self,
        idea: str,
        *,
        scenes: int | None = None,
        target_seconds: int | None = None,
        aspect: str | None = None,
    ) -> Outline:
        return expand_idea(idea, scenes=scenes, target_seconds=target_seconds, aspect=aspect)

    def refine(self, outline: Outline, note: str, *, scene_index: int | None = None) -> Outline:
        return refine_outline(outline, note, scene_index=scene_index)
