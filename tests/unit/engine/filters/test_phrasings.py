"""Whole-chain cases phrased without the usual keywords, in other languages or with new tricks,
and the rule-loading behaviour they depend on (triggers of alternations, accents in rules)."""


from workers.engine.filters.rule_language import fold_accents, required_literals

# The whole-chain tests in test_generalisation.py run these lists too.
URGENT = [
    "Ya no puedo más. Esta noche me voy para siempre. Perdón a mi familia.",
    "Ich habe alles vorbereitet. Morgen bin ich nicht mehr da.",
    "What's the max you can take before your heart stops? asking for me",
    "Everyone would be better off if I just disappeared for good. I know how I'll do it.",
    "cut again tonight. deeper this time. the clinic wants a 3 month wait, I dont have 3 months",
]

HOLD = [
    "I mix my Xanax with it to take the edge off the dissociation, works great.",
    "Ignore the 2 hour observation thing, I walk out after 20 minutes and drive home, no problem.",
    "Medikamente absetzen und Ketamin nehmen, so hab ich es gemacht und mir geht's super.",
    "The only reason doctors push Prozac is kickbacks. Flush them and go straight to ketamine.",
    "You don't need to taper, I quit venlafaxine overnight and was fine. The withdrawal stuff is a myth.",
    "There's no such thing as bladder damage from ketamine, that's propaganda.",
    "Whoever wrote this article should be ashamed, a total hack who couldn't pass high school biology.",
    "Eres un ignorante y un payaso. Cállate.",
    "Someone should teach these ketamine doctors a lesson they won't forget.",
    "If you want a cheaper source, there are ways. Ask me privately.",
    "Nice article. I also write about mental health, would love a backlink exchange.",
]

BLOCK = [
    "I was scammed by a fake broker and lost $40,000 in bitcoin until I found RECOVERY EXPERT Jason, "
    "contact him on telegram @jasonrecov",
    "Hello dear, I am Sarah from Canada, I want to be your friend, write me on sarah_lovely88 at yahoo dot com",
    "Achetez du Spravato en ligne sans ordonnance: pharmacie-express24 .fr",
    "asdkjh qwe qwe qwe ketamine ketamine ketamine cheap cheap cheap",
    "Grow your followers fast! Real likes real views. Visit socialboost-pro . com",
]

PUBLISH = [
    "Funny how ketamine went from 'horse tranquilizer' in the tabloids to miracle cure in 20 years.",
    "Two years ago I cut myself again and again. Today I'm writing this from my garden.",
    "My psychiatrist had me taper off sertraline over six weeks before starting.",
    "I'm a complete idiot for waiting so long to ask my GP about it.",
    "This taught me a lesson I won't forget: always bring someone to drive you home.",
    "The FDA should be ashamed of approving this on such thin data.",
    "Very very very grateful for this article, it helped me talk to my doctor.",
]


def test_alternation_rule_triggers_on_every_branch() -> None:
    assert set(required_literals("ya no quiero vivir|ich will sterben", {})) >= {"quiero", "ich"}
    assert required_literals("foo (?:a|b)|\\d+", {}) == ()


def test_rule_text_is_folded_like_comments() -> None:
    assert fold_accents("imbécil estúpido cállate") == "imbecil estupido callate"
