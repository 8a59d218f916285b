"""The toy task the stand-in teacher knows: keyword sentiment of one-sentence product reviews.

A review is "positive" when it has more positive than negative keywords, else "negative". The
generator builds varied reviews from word lists, each with exactly one sentiment keyword, so
the label is never ambiguous and a deterministic teacher can answer every prompt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection

INSTRUCTION = "Classify the sentiment of the product review as positive or negative."

POSITIVE = (
    "great", "excellent", "wonderful", "amazing", "fantastic", "delightful", "superb", "perfect",
    "brilliant", "lovely", "reliable", "impressive", "sturdy", "comfortable", "gorgeous",
    "flawless", "charming", "outstanding", "pleasant", "terrific",
)  # fmt: skip
NEGATIVE = (
    "terrible", "awful", "horrible", "broken", "disappointing", "useless", "flimsy", "boring",
    "dreadful", "faulty", "noisy", "cheap-looking", "uncomfortable", "clumsy", "sluggish",
    "defective", "mediocre", "annoying", "fragile", "overpriced",
)  # fmt: skip

_SUBJECTS = (
    "the blender", "this phone case", "the hotel room", "our tour guide", "the new laptop",
    "this coffee maker", "the rental car", "the hiking boots", "this novel", "the headphones",
    "the desk lamp", "this backpack", "the pizza", "the yoga mat", "the vacuum cleaner",
    "this board game", "the wireless mouse", "the kitchen knife", "the winter jacket", "this tent",
    "the smartwatch", "the garden hose", "the office chair", "this toaster", "the bike helmet",
    "the phone charger", "the air fryer", "this water bottle", "the concert", "the museum tour",
    "the customer support", "the delivery service", "this shampoo", "the running shoes",
    "the electric kettle", "the streaming app", "this cookbook", "the sofa", "the printer",
    "the sunglasses", "the camping stove", "this umbrella", "the dishwasher", "the keyboard",
    "the baby stroller", "the paint set", "this mattress", "the ferry ride", "the bakery",
    "the spa treatment",
)  # fmt: skip
_INTENSIFIERS = ("", "really ", "truly ", "quite ", "absolutely ", "rather ", "pretty ", "very ")
_TAILS = (
    "", " for the price", " after two weeks of use", " compared to the last one",
    " on the first day", " for a family of four", " during our trip", " straight out of the box",
    " after the update", " by any standard", " for everyday use", " in the cold weather",
)  # fmt: skip
_TEMPLATES = (
    "{Subject} was {intens}{adj}{tail}.",
    "I found {subject} {intens}{adj}{tail}.",
    "Honestly, {subject} turned out {intens}{adj}{tail}.",
    "{Subject} felt {intens}{adj}{tail}, in my opinion.",
    "My verdict: {subject} is {intens}{adj}{tail}.",
    "We thought {subject} was {intens}{adj}{tail}.",
    "After a month, {subject} still seems {intens}{adj}{tail}.",
)
_LONG_EXTRAS = (
    " I bought it on a friend's recommendation.",
    " The packaging arrived on a Tuesday.",
    " It came in a blue box.",
    " My sister has the same one.",
)

SEEDS: tuple[tuple[str, str], ...] = (
    ("The blender was really great for the price.", "positive"),
    ("I found this phone case flimsy after two weeks of use.", "negative"),
    ("Honestly, the hotel room turned out wonderful.", "positive"),
    ("Our tour guide was absolutely boring.", "negative"),
    ("My verdict: the new laptop is superb for everyday use.", "positive"),
    ("We thought this coffee maker was noisy on the first day.", "negative"),
    ("The rental car felt comfortable during our trip, in my opinion.", "positive"),
    ("After a month, the hiking boots still seem faulty.", "negative"),
    ("I found this novel delightful by any standard.", "positive"),
    ("The headphones were disappointing straight out of the box.", "negative"),
)

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


def keywords(text: str) -> tuple[list[str], list[str]]:
    """The positive and negative keywords found in `text`, in order."""
    words = _WORD.findall(text.lower())
    return [w for w in words if w in POSITIVE], [w for w in words if w in NEGATIVE]


def label(text: str) -> str:
    """The gold label: more positive than negative keywords is positive, anything else negative."""
    pos, neg = keywords(text)
    return "positive" if len(pos) > len(neg) else "negative"


def explain(text: str, answer: str) -> str:
    """A short reasoning trace that leads to `answer`."""
    pos, neg = keywords(text)
    found = ", ".join(f"'{w}' (positive)" for w in pos) + ", ".join(f"'{w}' (negative)" for w in neg)
    if not found:
        return f"The review has no sentiment keyword, so by default the sentiment is {answer}."
    return f"The review uses {found}; weighing these keywords, the sentiment is {answer}."


def review(rng: random.Random, *, long: bool = False) -> str:
    """One random review with exactly one sentiment keyword."""
    adj = rng.choice(POSITIVE + NEGATIVE)
    subject = rng.choice(_SUBJECTS)
    text = rng.choice(_TEMPLATES).format(
        Subject=subject[0].upper() + subject[1:],
        subject=subject,
        intens=rng.choice(_INTENSIFIERS),
        adj=adj,
        tail=rng.choice(_TAILS),
    )
    return text + rng.choice(_LONG_EXTRAS) if long else text


def examples(
    n: int, seed: int = 0, *, balanced: bool = False, reasoning: bool = False, exclude: Collection[str] = ()
) -> list[dict[str, str]]:
    """n distinct labelled reviews, the same ones for the same seed; none of them in `exclude`.
    `balanced` keeps either label to at most half (rounded up); `reasoning` adds a short trace."""
    rng = random.Random(seed)
    seen: dict[str, str] = {}
    while len(seen) < n:
        text = review(rng)
        gold = label(text)
        if text in exclude or (balanced and sum(v == gold for v in seen.values()) >= (n + 1) // 2):
            continue
        seen.setdefault(text, gold)
    rows = [{"input": text, "output": gold} for text, gold in seen.items()]
    if reasoning:
        for row in rows:
            row["reasoning"] = explain(row["input"], row["output"])
    return rows
