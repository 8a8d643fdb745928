"""The board's words and numbers in the blueprint's language: English, German or Ukrainian.

A tiny formatter instead of a locale library: grouping and decimal marks, and where the
currency sign goes, are all the board needs. Phrases avoid grammatical number where a
language has more than two forms (Ukrainian "Угод: 5" rather than "5 угод").
"""

from __future__ import annotations

import math

SUPPORTED = ("en", "de", "uk")
NARROW_NBSP = "\u202f"
NBSP = "\u00a0"

_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "UAH": "₴", "PLN": "zł", "CHF": "CHF",
            "CZK": "Kč", "SEK": "kr", "DKK": "kr", "NOK": "kr", "JPY": "¥"}


def language_of(declared: str | None) -> str:
    """The board's language: the blueprint's, if the board speaks it, else English."""
    return declared if declared in SUPPORTED else "en"


def format_number(value: float, language: str, decimals: int = 0) -> str:
    """`1234567.5` → en `1,234,568`, de `1.234.568`, uk `1 234 568` (narrow no-break
    spaces), with `decimals` digits after the language's decimal mark."""
    if not math.isfinite(value):
        return str(value)
    text = f"{abs(value):,.{decimals}f}"  # 1,234.50
    whole, _, fraction = text.partition(".")
    group, mark = {"de": (".", ","), "uk": (NARROW_NBSP, ",")}.get(language, (",", "."))
    whole = whole.replace(",", group)
    sign = "-" if value < 0 and float(text.replace(",", "")) != 0 else ""
    return f"{sign}{whole}{mark}{fraction}" if fraction else f"{sign}{whole}"


def format_money(value: float, currency: str, language: str) -> str:
    """Whole units in the currency: en `€12,500`, de `12.500 €`, uk `12 500 ₴`."""
    symbol = _SYMBOLS.get(currency, currency)
    number = format_number(value, language)
    if language == "en":
        return f"{symbol}{number}" if len(symbol) == 1 else f"{symbol}{NBSP}{number}"
    return f"{number}{NBSP}{symbol}"


def format_percent(fraction: float, language: str) -> str:
    """`0.75` → en `75%`, de `75 %`, uk `75 %`."""
    number = format_number(fraction * 100, language)
    return f"{number}%" if language == "en" else f"{number}{NBSP}%"


def format_days(days: float, language: str) -> str:
    return format_number(days, language, 1 if days < 10 and days != int(days) else 0)


# The board's phrases. Placeholders are filled with str.format.
_TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "Pipeline board", "de": "Pipeline-Übersicht", "uk": "Дошка угод"},
    "as_of": {"en": "as of {date}", "de": "Stand {date}", "uk": "станом на {date}"},
    "stage": {"en": "Stage", "de": "Phase", "uk": "Етап"},
    "deals": {"en": "Deals", "de": "Deals", "uk": "Угоди"},
    "value": {"en": "Value", "de": "Wert", "uk": "Сума"},
    "weighted": {"en": "Weighted", "de": "Gewichtet", "uk": "Зважена"},
    "avg_days": {"en": "Avg days", "de": "Ø Tage", "uk": "Сер. днів"},
    "stuck": {"en": "Stuck", "de": "Hängen", "uk": "Застрягли"},
    "prob_short": {"en": "Prob.", "de": "Wahrsch.", "uk": "Ймов."},
    "probability": {"en": "Probability", "de": "Wahrscheinlichkeit", "uk": "Ймовірність"},
    "total": {"en": "Total", "de": "Summe", "uk": "Разом"},
    "forecast": {"en": "Weighted forecast", "de": "Gewichtete Prognose",
                 "uk": "Зважений прогноз"},
    "unmanaged": {"en": "Unmanaged", "de": "Nicht verwaltet", "uk": "Поза схемою"},
    "unmanaged_line": {
        "en": "Unmanaged: {deals} open deals ({value}) sit in pipelines or stages no "
              "blueprint manages",
        "de": "Nicht verwaltet: offene Deals: {deals} ({value}) in Pipelines oder Phasen "
              "außerhalb des Blueprints",
        "uk": "Поза схемою: відкритих угод: {deals} ({value}) у воронках чи етапах, яких "
              "немає в blueprint"},
    "closed_title": {"en": "Won and lost", "de": "Gewonnen und verloren",
                     "uk": "Виграні та програні"},
    "closed_line": {
        "en": "last {days} days: {won} won ({won_value}), {lost} lost; win rate {rate}; "
              "average cycle {cycle}",
        "de": "letzte {days} Tage: gewonnen {won} ({won_value}), verloren {lost}; "
              "Abschlussquote {rate}; Ø Zyklus {cycle}",
        "uk": "останні {days} днів: виграно {won} ({won_value}), програно {lost}; "
              "частка виграшів {rate}; сер. цикл {cycle}"},
    "closed_kpi": {
        "en": "won / lost, last {days} days · win rate {rate} · cycle {cycle}",
        "de": "gewonnen / verloren, letzte {days} Tage · Quote {rate} · Zyklus {cycle}",
        "uk": "виграно / програно, останні {days} днів · частка {rate} · цикл {cycle}"},
    "stuck_card": {"en": "{name} · {days} d · {owner}", "de": "{name} · {days} T. · {owner}",
                   "uk": "{name} · {days} дн. · {owner}"},
    "days_unit": {"en": "{days} days", "de": "{days} Tage", "uk": "{days} дн."},
    "none": {"en": "—", "de": "—", "uk": "—"},
    "stuck_title": {"en": "Stuck deals", "de": "Hängende Deals", "uk": "Застряглі угоди"},
    "stuck_line": {
        "en": "{name} — {stage}, {days} in stage (limit {limit}), owner {owner}",
        "de": "{name} — {stage}, {days} in der Phase (Grenze {limit}), Zuständig {owner}",
        "uk": "{name} — {stage}, {days} на етапі (межа {limit}), відповідальний {owner}"},
    "no_owner": {"en": "none", "de": "keiner", "uk": "немає"},
    "handoff": {"en": "The handoff", "de": "Die Übergabe", "uk": "Передача в продаж"},
    "waiting_title": {
        "en": "Sales-qualified, no open deal after {days} days",
        "de": "Vertriebsreif, nach {days} Tagen ohne offenen Deal",
        "uk": "Готові до продажу, без відкритої угоди понад {days} днів"},
    "waiting_line": {"en": "{name}, qualified {days} days ago",
                     "de": "{name}, vertriebsreif vor {days} Tagen",
                     "uk": "{name}, кваліфіковано {days} дн. тому"},
    "unlinked_title": {"en": "Open deals without a contact or company",
                       "de": "Offene Deals ohne Kontakt oder Firma",
                       "uk": "Відкриті угоди без контакту чи компанії"},
    "missing_contact": {"en": "no contact", "de": "kein Kontakt", "uk": "без контакту"},
    "missing_company": {"en": "no company", "de": "keine Firma", "uk": "без компанії"},
    "held_title": {"en": "Contacts held back", "de": "Zurückgehaltene Kontakte",
                   "uk": "Затримані контакти"},
    "held_line": {
        "en": "{total} ({no_email} without email, {no_consent} without consent)",
        "de": "{total} (ohne E-Mail {no_email}, ohne Einwilligung {no_consent})",
        "uk": "{total} (без email {no_email}, без згоди {no_consent})"},
    "nothing": {"en": "none", "de": "keine", "uk": "немає"},
    "more": {"en": "… and {count} more", "de": "… und {count} weitere",
             "uk": "… і ще {count}"},
    "hints": {"en": "What to do", "de": "Was zu tun ist", "uk": "Що робити"},
    "foreign_currency": {
        "en": "{deals} deals in {currency} are counted but not in the totals",
        "de": "Deals in {currency}: {deals}, gezählt, aber nicht in den Summen",
        "uk": "Угод у {currency}: {deals}; враховано в кількості, не в сумах"},
    "no_deals": {"en": "No deals in the store for this client yet: run `crmsync sync` first.",
                 "de": "Noch keine Deals im Speicher: zuerst `crmsync sync` ausführen.",
                 "uk": "У сховищі ще немає угод: спершу запустіть `crmsync sync`."},
    "funnel": {"en": "Funnel", "de": "Trichter", "uk": "Воронка"},
    # hints drawn from the method (DESIGN.md, "Then look at the board")
    "hint_acquisition": {
        "en": "Few deals in the first stage '{stage}' ({count}): time to step up acquisition.",
        "de": "Wenige Deals in der ersten Phase „{stage}“ ({count}): Zeit, die Akquise zu "
              "verstärken.",
        "uk": "Мало угод на першому етапі «{stage}» ({count}): час посилити залучення "
              "клієнтів."},
    "hint_strong": {
        "en": "{count} of {total} open deals are in late stages (weighted {weighted}): "
              "strong weeks ahead.",
        "de": "{count} von {total} offenen Deals sind in späten Phasen (gewichtet "
              "{weighted}): starke Wochen stehen bevor.",
        "uk": "{count} з {total} відкритих угод на пізніх етапах (зважено {weighted}): "
              "попереду сильні тижні."},
    "hint_call": {
        "en": "Who to call: {owners} — their deals are past the stage's limit.",
        "de": "Wen anrufen: {owners} — deren Deals liegen über der Grenze ihrer Phase.",
        "uk": "Кому зателефонувати: {owners} — їхні угоди перетримані на етапі."},
    "no_owner_count": {"en": "no owner ({count})", "de": "ohne Zuständigen ({count})",
                       "uk": "без відповідального ({count})"},
    "owner_count": {"en": "owner {owner} ({count})", "de": "Zuständig {owner} ({count})",
                    "uk": "відповідальний {owner} ({count})"},
    "hint_waiting": {
        "en": "{count} sales-qualified contacts have waited more than {days} days without an "
              "open deal: marketing handed over, sales has not acted.",
        "de": "{count} vertriebsreife Kontakte warten seit über {days} Tagen ohne offenen "
              "Deal: Marketing hat übergeben, der Vertrieb hat nicht reagiert.",
        "uk": "Готових до продажу контактів без угоди понад {days} днів: {count}. Маркетинг "
              "передав, продаж не відреагував."},
    "hint_unlinked": {
        "en": "{count} open deals have no contact or company: link them, so each deal shows "
              "who decides.",
        "de": "{count} offene Deals ohne Kontakt oder Firma: verknüpfen, damit jeder Deal "
              "zeigt, wer entscheidet.",
        "uk": "Відкритих угод без контакту чи компанії: {count}. Пов'яжіть їх, щоб було "
              "видно, хто ухвалює рішення."},
    "hint_held": {
        "en": "{count} contacts are held back for a missing email or consent: ask for them.",
        "de": "{count} Kontakte zurückgehalten (E-Mail oder Einwilligung fehlt): nachfragen.",
        "uk": "Контактів без email чи згоди: {count}. Попросіть їх надати."},
    "hint_no_field": {
        "en": "No contact has the field '{field}': declare report.sales_qualified in the "
              "blueprint to see the handoff.",
        "de": "Kein Kontakt hat das Feld „{field}“: report.sales_qualified im Blueprint "
              "angeben, um die Übergabe zu sehen.",
        "uk": "Жоден контакт не має поля «{field}»: задайте report.sales_qualified у "
              "blueprint, щоб бачити передачу."},
}


def text(key: str, language: str, **values: object) -> str:
    """The phrase `key` in `language` (English where it has none), filled with `values`."""
    phrases = _TEXT[key]
    return phrases.get(language, phrases["en"]).format(**values)
