# Shared messages for every step. One .ftl file per step lives beside this one;
# locales/kk/ must define exactly the same ids with the same $variables (tests/test_locales.py).

# The language's own name, shown on the language picker.
lang-name = Русский

# A number of days, with CLDR plural categories: 1, 21 → one; 2–4, 22 → few; 0, 5–20, 25 → many;
# fractions → other ("1,5 дня").
common-days = { NUMBER($n) ->
    [one] { $n } день
    [few] { $n } дня
    [other] { $n } дня
   *[many] { $n } дней
}
