"""The method's wording rules for Ukrainian and German stage labels (English ones are in lint).

A stage names something that has happened, from the buyer's side ("Договір підписано",
"Angebot übermittelt"); a to-do ("Надіслати пропозицію", "Angebot senden") or a passive buyer
state ("Думає", "Überlegt noch") is not a stage. `check_wording` returns the one most specific
verdict for a label: passive state, then to-do, then "no past form".

Limits, honestly: these are suffix and word-list heuristics, not a parser. They know the forms
sales labels use and the common words that look like them (Ukrainian plurals in -ти such as
"звіти", German nouns such as "Angebot"); an unusual word can still be misread. German strong
participles of verbs with an inseparable prefix ("verschoben") are indistinguishable from
infinitives by their ending and are listed; one that is not listed reads as a to-do when it
ends the label. A present-tense German verb that looks like a participle ("Kunde unterschreibt"
is listed, others are not) passes. Where a label is misread, silence the rule for that stage
with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class Verdict:
    """Why a label breaks a wording rule: the rule, the word that shows it, a rewording."""

    rule: str
    word: str | None = None
    fix: str | None = None


@dataclass(frozen=True)
class _Token:
    text: str  # as written
    low: str
    start: int
    end: int
    index: int
    last: bool

    @property
    def capitalized(self) -> bool:
        return self.text[:1].isupper()


# Letters, with the apostrophe Ukrainian writes inside words ("з'ясовано", "об’єкт").
_TOKEN = re.compile(r"[^\W\d_]+(?:['’ʼ][^\W\d_]+)*")


def _tokens(label: str) -> list[_Token]:
    matches = list(_TOKEN.finditer(label))
    return [_Token(m.group(0), m.group(0).lower().replace("’", "'").replace("ʼ", "'"),
                   m.start(), m.end(), i, i == len(matches) - 1)
            for i, m in enumerate(matches)]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _pairs(text: str) -> dict[str, str]:
    """"a:b c:d" -> {"a": "b", "c": "d"}."""
    return dict(pair.split(":", 1) for pair in text.split())


def _reword(label: str, tokens: list[_Token], verb: _Token, participle: str,
            fillers: frozenset[str]) -> str:
    """`label` with `verb` turned into `participle`: in place, or moved to the end when the
    label opens with it ("Надіслати пропозицію" -> "Пропозицію надіслано"). `fillers` ("need
    to", articles, "Sie") go with an opening verb."""
    if any(t.low not in fillers for t in tokens[:verb.index]):
        before = tokens[verb.index - 1]
        start = before.start if before.low == "zu" else verb.start  # "Angebot zu senden"
        lead = next(t for t in tokens if t.low not in fillers)  # "Bitte Angebot senden"
        text = label[lead.start:start] + participle + label[verb.end:]
    else:
        cut = verb.end
        for token in tokens[verb.index + 1:]:
            if token.low not in fillers:
                break
            cut = token.end
        rest = label[cut:].strip(" ,:;-–—")
        text = f"{rest} {participle}" if rest else participle
    return text[:1].upper() + text[1:]


# --- Ukrainian ---------------------------------------------------------------------------

# Known to-do verbs (infinitive and imperative forms) -> the impersonal -но/-то form that names
# the done step. That form takes the same accusative object as the infinitive, so the rest of
# the label stays as written: "Надіслати пропозицію" -> "Пропозицію надіслано".
_UK_VERBS: tuple[tuple[str, str], ...] = (
    ("надіслано", "надіслати надсилати надішліть надішли надсилайте"),
    ("відправлено", "відправити відправляти відправте відправ відправляйте"),
    ("підписано", "підписати підписувати підпишіть підпиши"),
    ("проведено", "провести проводити проведіть проведи"),
    ("призначено", "призначити призначте признач"),
    ("заплановано", "запланувати заплануйте заплануй"),
    ("підготовлено", "підготувати підготуйте підготуй готувати"),
    ("узгоджено", "узгодити узгодьте узгодь"),
    ("погоджено", "погодити погодьте"),
    ("отримано", "отримати отримайте отримай"),
    ("виставлено", "виставити виставте вистав"),
    ("укладено", "укласти укладіть уклади"),
    ("презентовано", "презентувати презентуйте презентуй"),
    ("продемонстровано", "продемонструвати продемонструйте продемонструй"),
    ("обговорено", "обговорити обговоріть обговори"),
    ("оцінено", "оцінити оцініть оціни"),
    ("створено", "створити створіть створи"),
    ("зроблено", "зробити зробіть зроби робити"),
    ("складено", "скласти складіть склади"),
    ("надано", "надати надайте надай"),
    ("організовано", "організувати організуйте організуй"),
    ("перевірено", "перевірити перевірте перевір"),
    ("з'ясовано", "з'ясувати з'ясуйте з'ясуй"),
    ("визначено", "визначити визначте визнач"),
    ("зібрано", "зібрати зберіть збери"),
    ("написано", "написати напишіть напиши"),
    ("оплачено", "оплатити оплатіть оплати"),
    ("заброньовано", "забронювати забронюйте забронюй"),
    ("кваліфіковано", "кваліфікувати кваліфікуйте"),
    ("запущено", "запустити запустіть запусти"),
    ("запрошено", "запросити запросіть запроси"),
)
UK_TODO: dict[str, str] = {form: done for done, forms in _UK_VERBS for form in forms.split()}
# To-do verbs with no natural impersonal form ("Зателефонувати клієнту"): flagged, no rewording.
UK_TODO_NO_FIX = _words("""
    зателефонувати зателефонуйте зателефонуй подзвонити подзвоніть подзвони домовитися
    домовитись домовтеся зустрітися зустрітись зустріньтеся нагадати нагадайте нагадай
    зв'язатися зв'яжіться уточнити уточніть дізнатися дізнайтеся
""")
# "Need to …" openings: a to-do whatever verb follows.
UK_MODALS = _words("треба потрібно необхідно слід варто мусимо маємо")

# Impersonal participle forms: -ано/-яно/-ено/-єно (підписано, проведено), -то (відкрито,
# взято, розпочато, забуто, стерто).
_UK_IMPERSONAL = re.compile(r"(?:[аяеє]но|[аяиу]то|ерто)$")
# Past tense: -в (отримав), -ла/-ло/-ли (отримала, відбулося, погодилися), -йшов (прийшов).
_UK_PAST_VERB = re.compile(r"(?:(?:[аяиу]|шо)в|(?:[аяиіїуеш]|г)л[аои])(?:ся|сь)?$")
# Words these endings would misread: nouns, adverbs, genitive plurals.
UK_NOT_PAST = _words("""
    багато свято погано рано зелено шалено фортепіано правила правило правили крило джерело
    вітрило держав застав рукав мотив актив пасив позитив негатив креатив перспектив
    альтернатив директив заяв прорив розрив порив обрив архив драйв сила мила вила плато
    стела
""")
# Infinitives (-ти, -сти, -тися) and imperatives (-іть, -йте, consonant + -те; -ай, -уй).
_UK_INFINITIVE = re.compile(r"(?:[аяиіїу]ти|[еяа]сти|[зг]ти|тися|тись)$")
_UK_IMPERATIVE = re.compile(r"(?:[ії]ть|йте|ьте|[бвгджзклмнпрстфхцчшщ]те|іться|йтеся|ьтеся"
                            r"|[аяую]й)$")
# Plural nouns with those endings ("Результати отримано", "Звіти надіслано").
UK_NOT_TODO = _words("""
    результати кандидати витрати оплати доплати зарплати сертифікати формати депутати цитати
    дати палати маршрути атрибути інститути звіти квіти діти плити кредити візити депозити
    ліміти орбіти кити тести урожай звичай розмай китай
""")
# Buyer states: the present (or perfective future; "we" too: "Чекаємо") of thinking,
# comparing, waiting, deciding, considering, weighing, choosing, studying, getting sign-off.
_UK_PASSIVE_VERB = re.compile(
    r"^(?:по|об|роз|за)?(?:дума|думу|міркову|порівню|чека|очіку|вирішу|розгляда|вага|зважу|"
    r"вибира|обира|визнача|вивча|погоджу|узгоджу|сумніва|відклада)"
    r"(?:є|ють|ємо|ється|ються|ємося)$")
_UK_PASSIVE_PHRASE = re.compile(
    r"\b(на розгляді|в очікуванні|очікування|на паузі|пауза|відкладено|роздуми|на роздумах|"
    r"можливо|ще не|не визначи\w*|в процесі|на погодженні|на узгодженні)\b")


def _uk_is_past(token: _Token) -> bool:
    word = token.low
    if len(word) < 5 or word in UK_NOT_PAST:
        return False
    return bool(_UK_IMPERSONAL.search(word) or _UK_PAST_VERB.search(word))


def check_uk(label: str, *, outcome: bool = False) -> Verdict | None:
    """The Ukrainian wording verdict for a stage label, or None when it reads as done."""
    tokens = _tokens(label)
    passive = None if outcome else _uk_passive(label, tokens)
    return passive or _uk_todo(label, tokens)


def _uk_passive(label: str, tokens: list[_Token]) -> Verdict | None:
    phrase = _UK_PASSIVE_PHRASE.search(label.lower())
    if phrase:
        return Verdict("passive-stage", phrase.group(0))
    verb = next((t for t in tokens if _UK_PASSIVE_VERB.match(t.low)), None)
    return Verdict("passive-stage", verb.text) if verb else None


def _uk_todo(label: str, tokens: list[_Token]) -> Verdict | None:
    """A to-do verdict, or past-tense when nothing reads as done, or None."""
    has_past = any(_uk_is_past(t) for t in tokens)
    for token in tokens:
        if token.low in UK_TODO:
            fix = _reword(label, tokens, token, UK_TODO[token.low], UK_MODALS)
            return Verdict("imperative-stage", token.text, fix)
    for token in tokens:
        if token.low in UK_TODO_NO_FIX or token.low in UK_MODALS:
            return Verdict("imperative-stage", token.text)
    edges = [t for t in tokens if (t.index == 0 or t.last) and len(t.low) >= 5
             and t.low not in UK_NOT_TODO]
    for token in edges:
        if not has_past and _UK_INFINITIVE.search(token.low):
            return Verdict("imperative-stage", token.text)
        if token.index == 0 and _UK_IMPERATIVE.search(token.low):
            return Verdict("imperative-stage", token.text)
    return None if has_past else Verdict("past-tense")


# --- German ------------------------------------------------------------------------------

# Known to-do infinitives -> the participle ("Angebot senden" -> "Angebot gesendet").
DE_TODO: dict[str, str] = _pairs("""
    senden:gesendet schicken:geschickt verschicken:verschickt versenden:versendet
    zusenden:zugesendet übermitteln:übermittelt vereinbaren:vereinbart
    unterschreiben:unterschrieben unterzeichnen:unterzeichnet erstellen:erstellt
    vorbereiten:vorbereitet anrufen:angerufen durchführen:durchgeführt nachfassen:nachgefasst
    nachhaken:nachgehakt prüfen:geprüft planen:geplant präsentieren:präsentiert
    vorstellen:vorgestellt abschließen:abgeschlossen buchen:gebucht klären:geklärt
    ermitteln:ermittelt besprechen:besprochen verhandeln:verhandelt kontaktieren:kontaktiert
    einladen:eingeladen bestätigen:bestätigt anfragen:angefragt abstimmen:abgestimmt
    vorlegen:vorgelegt einholen:eingeholt machen:gemacht erledigen:erledigt
    schreiben:geschrieben ausfüllen:ausgefüllt qualifizieren:qualifiziert zeigen:gezeigt
    terminieren:terminiert abgeben:abgegeben anbieten:angeboten kalkulieren:kalkuliert
    einreichen:eingereicht freigeben:freigegeben unterbreiten:unterbreitet führen:geführt
    halten:gehalten treffen:getroffen organisieren:organisiert festlegen:festgelegt
    überarbeiten:überarbeitet erinnern:erinnert telefonieren:telefoniert
    demonstrieren:demonstriert verschieben:verschoben starten:gestartet
    nachverhandeln:nachverhandelt anfordern:angefordert zusagen:zugesagt
""")
# Strong participles the prefix rules below cannot recognise (some equal their infinitive:
# "Angebot erhalten" reads as done, so it passes).
DE_STRONG_PARTICIPLES = _words("""
    erhalten bekommen unterschrieben verloren besprochen entschieden vergeben verschoben
    übernommen beschlossen empfohlen begonnen beschrieben übertragen verglichen erschienen
    entstanden bestanden verstanden unterbrochen überwiesen entgangen vergangen beworben
    erworben verworfen entworfen unterzogen vertrieben
""")
# Infinitives and present forms that start like a participle (ge-, inseparable prefix + -t),
# and nouns that do ("Angebot", "Bericht").
DE_NOT_PARTICIPLES = _words("""
    geben gehen gewinnen genehmigen gestalten gelten genießen gebrauchen gefallen gehören
    gestehen gewähren gewährleisten gewinnt unterschreibt bekommt erhält verliert vergibt
    bespricht beginnt verspricht empfiehlt angebot gebot gebiet gericht gesicht gewicht gehalt
    geschäft gerät bericht verlust betracht zutritt eintritt austritt auftritt vorschlag
    zuschlag verdacht bereit gegen gesamt
""")
# Compound nouns ending like a participle ("Erstkontakt", "Projektbericht").
_DE_NOUN_TAILS = ("kontakt", "angebot", "bericht", "verlust", "gebiet", "gewicht", "geschäft",
                  "gericht", "produkt", "projekt", "punkt", "markt", "budget")
_DE_SEPARABLE = ("zurück", "zusammen", "weiter", "wieder", "durch", "nach", "fest", "frei",
                 "statt", "teil", "kennen", "vor", "auf", "aus", "ein", "mit", "weg", "her",
                 "hin", "dar", "ab", "an", "bei", "zu", "um", "los")
_DE_INSEPARABLE = ("über", "unter", "hinter", "wider", "miss", "emp", "ent", "zer", "ver",
                   "be", "er")
# Words that go with an opening to-do verb ("Bitte senden Sie das Angebot").
_DE_FILLERS = _words("der die das den dem des ein eine einen einem einer sie bitte zu")
_DE_IN_PROGRESS = _words("wird werden")
# Buyer states: thinking, comparing, waiting, deciding, hesitating (present forms), and phrases.
DE_PASSIVE_WORDS = _words("""
    überlegt überlegen denkt nachdenken vergleicht vergleichen wartet warten abwarten prüft
    entscheidet zögert schwankt grübelt sondiert ausstehend unentschlossen unentschieden
    vielleicht bedenkzeit pausiert wartend
""")
_DE_PASSIVE_PHRASE = re.compile(
    r"\b(in prüfung|in überlegung|in klärung|in abstimmung|in entscheidung|on hold|auf eis|"
    r"noch nicht|noch offen|entscheidung offen|(?:wird|werden) (?:geprüft|überlegt|verglichen|"
    r"entschieden|abgestimmt))\b")


def is_de_participle(word: str) -> bool:
    """True for a German past participle by its prefix and ending (lower-case word)."""
    if word in DE_STRONG_PARTICIPLES:
        return True
    if (word in DE_NOT_PARTICIPLES or word in DE_TODO or len(word) < 5
            or word.endswith(_DE_NOUN_TAILS)):
        return False
    if word.endswith("iert"):
        return True
    stems = [word, *(word[len(p):] for p in _DE_SEPARABLE if word.startswith(p))]
    for stem in stems:
        if stem.startswith("ge") and len(stem) >= 5 and stem.endswith(("t", "en")):
            return stem not in DE_NOT_PARTICIPLES
        if stem.startswith(_DE_INSEPARABLE) and len(stem) >= 6 and stem.endswith("t"):
            return True
    return False


def _de_is_infinitive(token: _Token) -> bool:
    # An infinitive to-do ends the label and is written in lower case; a capitalised last word
    # is a noun ("Verhandlungen").
    return (token.last and token.index > 0 and not token.capitalized and len(token.low) >= 4
            and token.low.endswith(("en", "eln", "ern")) and not is_de_participle(token.low))


def _de_fix(label: str, verb: _Token, tokens: list[_Token]) -> str | None:
    participle = DE_TODO.get(verb.low)
    if participle is None and verb.low.endswith("ieren"):
        participle = verb.low[:-5] + "iert"
    if participle is None:
        return None
    return _reword(label, tokens, verb, participle, _DE_FILLERS)


def check_de(label: str, *, outcome: bool = False) -> Verdict | None:
    """The German wording verdict for a stage label, or None when it reads as done."""
    tokens = _tokens(label)
    if not outcome:
        phrase = _DE_PASSIVE_PHRASE.search(label.lower())
        if phrase:
            return Verdict("passive-stage", phrase.group(0))
        for token in tokens:
            if token.low in DE_PASSIVE_WORDS:
                return Verdict("passive-stage", token.text)
        # "… noch" (still): a state that lasts, not a step ("Sucht noch", "Prüft noch").
        for token in tokens:
            after = tokens[token.index + 1].low if not token.last else ""
            if token.low == "noch" and after not in {"einmal", "mal"}:
                return Verdict("passive-stage", token.text)
    for token in tokens:
        polite = not token.last and tokens[token.index + 1].text == "Sie"
        if (token.low in DE_TODO or _de_is_infinitive(token)
                or (token.index == 0 and polite and token.low.endswith("en"))):
            return Verdict("imperative-stage", token.text, _de_fix(label, token, tokens))
    in_progress = any(t.low in _DE_IN_PROGRESS for t in tokens)
    if in_progress or not any(is_de_participle(t.low) for t in tokens
                              if t.index == 0 or not t.capitalized):
        return Verdict("past-tense", "wird" if in_progress else None)
    return None


CHECKS: dict[str, Callable[..., Verdict | None]] = {"uk": check_uk, "de": check_de}


def check_wording(language: str, label: str, *, outcome: bool = False) -> Verdict | None:
    """The verdict of `language`'s wording rules (uk, de) for one stage label."""
    return CHECKS[language](label, outcome=outcome)


# Hints in the file's language (the messages stay in English, as all of crmsync's do).
HINTS: dict[str, dict[str, str]] = {
    "uk": {
        "past-tense": "назвіть етап у минулому часі з боку покупця — що вже сталося, напр. "
                      "«Зустріч проведено», «Отримав пропозицію»",
        "imperative-stage": "назвіть етап у минулому часі з боку покупця, напр. «{fix}»",
        "passive-stage": "не робіть із цього етап: угода лишається на етапі останнього кроку, "
                         "у якому ви брали участь (напр. «Пропозицію надіслано»); "
                         "нагадайте про себе задачею",
    },
    "de": {
        "past-tense": "benennen Sie die Phase in der Vergangenheit aus Sicht des Käufers — was "
                      "geschehen ist, z. B. „Termin vereinbart“, „Angebot erhalten“",
        "imperative-stage": "benennen Sie die Phase in der Vergangenheit aus Sicht des Käufers, "
                            "z. B. „{fix}“",
        "passive-stage": "keine eigene Phase: der Deal bleibt in der Phase des letzten Schritts, "
                         "an dem Sie beteiligt waren (z. B. „Angebot übermittelt“); fassen Sie "
                         "mit einer Aufgabe nach",
    },
}
# The example a to-do hint gives when no rewording of the label itself is known.
DEFAULT_FIX = {"uk": "Пропозицію надіслано", "de": "Angebot übermittelt"}


def hint(language: str, verdict: Verdict) -> str:
    """The hint for `verdict` in `language`."""
    return HINTS[language][verdict.rule].format(fix=verdict.fix or DEFAULT_FIX[language])
