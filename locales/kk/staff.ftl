# Staff side: the digest for education-department staff (daily, /digest, /stats).
# Kazakh nouns do not change after a numeral: no plural forms are needed here.
# Commands shown only in staff chats.
staff-command-digest = Соңғы шолудан бергі өзгерістер
staff-command-stats = Жұмыс басталғаннан бергі көрсеткіштер

digest-title = 📊 <b>«Кезек» шолуы</b>
digest-stats-title = 📈 <b>«Кезек»: жұмыс басталғаннан бергі көрсеткіштер</b>
digest-period = { $since } — { $until }, Алматы уақыты
digest-period-start = { $until } жағдайы бойынша, Алматы уақыты

digest-submitted = <b>Берілген өтініштер: { $n }</b>
digest-none-submitted = <b>Жаңа өтініш берілген жоқ.</b>
digest-by-queue-type = Кезек түрі бойынша:
digest-by-language = Оқыту тілі бойынша:
digest-by-provider = Қызмет берушілер бойынша:
digest-by-group = Топтар бойынша:
digest-line = • { $name } — { $n }
digest-group-line = • { $name } ({ $provider }) — { $n }
digest-more-providers = • …тағы { $n } қызмет беруші
digest-more-groups = • …тағы { $n } топ
digest-queue-general = жалпы кезек
digest-queue-special = арнайы кезек
digest-language-kk = қазақ тілі
digest-language-ru = орыс тілі
digest-unknown = көрсетілмеген

digest-status-changes = <b>Мәртебе өзгерістері: { $n }</b>
digest-no-status-changes = <b>Өтініштердің мәртебесі өзгерген жоқ.</b>
digest-status-submitted = жіберілді
digest-status-registered = кезекке қойылды
digest-status-voucher-issued = ваучер берілді
digest-status-voucher-used = ваучер пайдаланылды
digest-status-voucher-expired = ваучердің мерзімі өтті
digest-status-rejected = қабылданбады
digest-status-cancelled = күші жойылды

digest-outbox-title = <b>Ваучер қызметіне жіберу</b>
digest-outbox-waiting = • жіберілуін күтуде — { $n }
digest-outbox-failed = • жіберу сәтсіз аяқталды — { $n }

digest-consents-title = <b>1414 арқылы келісімдер</b>
digest-consents-denied = • ата-ана бас тартты — { $n }
digest-consents-expired = • жауап беру мерзімі өтті — { $n }

digest-drafts-title = <b>Ата-аналар қай жерде тоқтайды</b>: аяқталмаған өтініш жобалары — { $n }
digest-drafts-none = <b>Ата-аналар қай жерде тоқтайды</b>: аяқталмаған өтініш жобасы жоқ.
digest-step-line = • қадам { $step }/5, { $name } — { $n }
digest-step-language = тіл таңдау
digest-step-rules = ережелермен танысу
digest-step-phone = телефон нөмірі
digest-step-otp = ed24.kz қосымшасындағы код
digest-step-parent-iin = ата-ананың ЖСН-і
digest-step-parent-consent = ата-ананың 1414 арқылы келісімі
digest-step-parent-confirm = ата-ана деректерін растау
digest-step-child-iin = баланың ЖСН-і
digest-step-child-consent = бала деректеріне 1414 арқылы келісім
digest-step-child-confirm = бала деректерін растау
digest-step-queue-type = кезек түрі
digest-step-state-order = мемлекеттік тапсырыс түрі
digest-step-disability-doc = мүгедектік туралы анықтама
digest-step-benefit = жеңілдіктер
digest-step-benefit-doc = жеңілдік туралы құжат
digest-step-provider = қызмет берушіні таңдау
digest-step-group = топты таңдау
digest-step-preview = кезекті алдын ала есептеу
digest-step-notify-channel = хабарлау тәсілі
digest-step-notify-language = хабарламалар тілі
digest-step-review = өтінішті тексеру және жіберу
digest-step-submitting = өтініш ваучер қызметіне жіберіліп жатыр

digest-blocked = 🚫 Ботты бұғаттаған ата-аналар: { $n }
digest-blocked-none = 🚫 Ботты ешкім бұғаттаған жоқ.

# The table of the period's applications (IINs masked; no names, no phones).
digest-csv-caption = 📎 Кезеңдегі өтініштер кестесі. ЖСН жасырылған, аты-жөні мен телефон нөмірлері жоқ.
digest-col-number = Нөмірі
digest-col-submitted-at = Берілген күні мен уақыты (Алматы)
digest-col-status = Мәртебесі
digest-col-queue-type = Кезек түрі
digest-col-provider = Қызмет беруші
digest-col-group = Топ
digest-col-language = Оқыту тілі
digest-col-child-birth-year = Баланың туған жылы
digest-col-child-iin = Баланың ЖСН-і
