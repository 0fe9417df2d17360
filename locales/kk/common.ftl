# Shared messages for every step. One .ftl file per step lives beside this one;
# locales/ru/ must define exactly the same ids with the same $variables (tests/test_locales.py).

# The language's own name, shown on the language picker.
lang-name = Қазақша

# A number of days. Kazakh nouns do not change after a numeral: "1 күн", "5 күн".
common-days = { $n } күн
