# Step 4/5: how and in which language the parent hears about the application.
notify-channel-ask =
    Өтінішіңіздің барысы туралы қалай хабарлайын? Бір тәсілді таңдаңыз:
    • <b>SMS</b> — { $phone } нөміріне хабарлама;
    • <b>ed24.kz қосымшасы</b> — телефоныңыздағы ed24.kz қосымшасында хабарландыру;
    • <b>Телеграм</b> — осы чатта менен хабарлама.
btn-notify-sms = ✉️ SMS
btn-notify-push = 📲 ed24.kz қосымшасы
btn-notify-telegram = 💬 Телеграм
notify-channel-name-sms = SMS
notify-channel-name-push = ed24.kz қосымшасы
notify-channel-name-telegram = Телеграм
notify-channel-expected = Хабарлау тәсілін төмендегі батырмалардың бірімен таңдаңыз.
notify-language-ask = Хабарламалар қай тілде келсін? Қазір сөйлесіп отырған тіліміз белгіленген: соны басыңыз немесе басқасын таңдаңыз.
btn-notify-lang-kk = 🇰🇿 Қазақ тілінде
btn-notify-lang-ru = 🇷🇺 Орыс тілінде
notify-language-name-kk = қазақ тілінде
notify-language-name-ru = орыс тілінде
notify-language-expected = Хабарламалар тілін төмендегі батырмалардың бірімен таңдаңыз.
help-notify_channel = Өтініш мәртебесінің өзгерістері туралы — кезекке тіркелу, кезектегі орын, ваучер беру — қалай білгіңіз келетінін таңдаңыз. Таңдауды кейін өтінішті тексеру кезінде «✏️ Өзгерту» батырмасы арқылы ауыстыра аласыз.
help-notify_language = Хабарламалар тілін таңдаңыз. Ол осында сөйлесіп отырған тілден өзгеше болуы мүмкін.

# Step 5/5: the application as the portal writes it, the consents, submission.
review-intro = Өтінішті тексеріңіз — білім бөлімі оны осылай көреді.
review-app-to = Білім бөлімінің басшысына
review-app-from = кімнен: { $name }
review-app-iin = ЖСН: { $iin }
review-app-address = Мекенжайы: { $address }
review-app-title = ӨТІНІШ
review-app-request = Менің балам { $child }, { $birth } жылы туған, қосымша білім беру ваучерін алу үшін кезекке қоюыңызды сұраймын.
review-app-documents = Құжаттар
review-app-doc-disability = мүгедектік туралы: { $file }
review-app-doc-benefit = жеңілдік туралы: { $file }
review-app-none = жоқ
review-app-provider = Қызмет беруші: { $name }, { $address }
# Kazakh nouns do not change after a numeral, so $max needs no plural forms here.
review-app-group = Топ: { $name }, { $min }–{ $max } жас, оқыту тілі: { $language }
review-app-language-kk = қазақ тілі
review-app-language-ru = орыс тілі
review-app-queue = Кезек: { $queue }
review-app-year = Оқу жылы: { $year }
review-app-child-permanent = Баланың тұрақты мекенжайы: { $address }
review-app-child-temporary = Баланың уақытша мекенжайы: { $address }
review-app-certificate = Туу туралы куәлік: { $number }
review-app-notification = Хабарламалар: { $channel }, { $language }
review-app-phone = Телефон: { $phone }

review-consents-title = Келісімдер — үшеуін де белгілеңіз:
review-consent-personal_data = Менің және баламның дербес деректерін жинауға және өңдеуге келісемін.
review-consent-contact_use = Өтініш бойынша хабарламалар үшін байланыс деректерімді пайдалануға келісемін.
review-consent-offer = Жария оферта шарттарын қабылдаймын.
btn-consent-personal_data = Дербес деректер
btn-consent-contact_use = Хабарламаға арналған байланыс
btn-consent-offer = Жария оферта
review-consents-missing = Өтінішті жіберу үшін белгілеңіз: { $missing }.

btn-review-edit = ✏️ Өзгерту
btn-review-submit = 📨 Өтінішті жіберу
btn-review-show = ◀️ Өтінішке оралу
review-edit-choose = Нені өзгертесіз? Бөлімді таңдаңыз — өзгерткен соң сізді өтінішке қайтарамын.
btn-edit-phone = 📱 Телефон
btn-edit-parent = 👤 Ата-ана
btn-edit-child = 🧒 Бала
btn-edit-queue = 📋 Кезек және құжаттар
btn-edit-provider = 🏫 Ұйым және топ
btn-edit-notification = 🔔 Хабарламалар
review-section-phone = Телефон
review-section-parent = Ата-ананың деректері
review-section-child = Баланың деректері
review-section-queue = Кезек және құжаттар
review-section-provider = Ұйым және топ
review-section-notification = Хабарламалар
review-missing = Өтініште «{ $section }» бөлімі толтырылмаған. Соны толтырыңыз — содан кейін сізді өтінішке қайтарамын.
review-use-buttons = Келісімдерді белгілеп, өтініштің астындағы «📨 Өтінішті жіберу» батырмасын басыңыз. Бөлімді түзету үшін «✏️ Өзгерту» батырмасын басыңыз.

review-submitted =
    ✅ № { $number } өтінішіңіз тіркеуге жіберілді.
    Жіберілген уақыты: { $sent }

    Әрі қарай: өтініш мәртебесі өзгерген сайын осында жазамын — кезекке тіркелгенде, кезектегі орныңыз және ваучер берілгені туралы. Тағы бір өтініш беру үшін /start басыңыз.
review-already-sent = Бұл өтініш жіберіліп қойған: № { $number }. Оны қайта жіберудің қажеті жоқ.
review-duplicate = Бала осы оқу жылында осы кезекте тұр: өтініш № { $number }. Жаңа өтініш жасалған жоқ, өтініш жобасы сақталды. Басқа кезекті таңдау үшін «✏️ Өзгерту» батырмасын басыңыз.
review-intake-closed = «{ $queue }» кезегіне өтініш қабылдау қазір жабық. Өтініш жобасы сақталды — қабылдау ашылғанда өтінішті жіберіңіз.
review-age-out-of-range = Таңдалған топ баланың 1 қыркүйектегі жасына сәйкес келмейді. Басқа топты таңдаңыз — содан кейін сізді өтінішке қайтарамын.
review-document-required = Арнайы кезек үшін мүгедектік туралы құжат қажет. Құжатты тіркеңіз — содан кейін сізді өтінішке қайтарамын.
review-validation-error = Ваучер қызметі «{ $section }» бөлімін қабылдамады. «✏️ Өзгерту» батырмасын басып, оны тексеріңіз.
review-validation-error-general = Ваучер қызметі өтініштің кейбір деректерін қабылдамады. «✏️ Өзгерту» батырмасын басып, бөлімдерді тексеріңіз.
help-review = Өтінішті мұқият тексеріңіз. Қате болса, «✏️ Өзгерту» батырмасын басып, бөлімді таңдаңыз. Содан кейін үш келісімді де белгілеп (⬜ → ✅), «📨 Өтінішті жіберу» батырмасын басыңыз.
help-submitted = Өтініш жіберілді. Мәртебесі өзгергенде осында хабарлаймын. Тағы бір өтініш беру үшін /start басыңыз.

# Another child of the same parent, after a submission.
btn-another-child = ➕ Тағы бір балаға өтініш беру
review-another-child = Жаңа өтініш: телефон мен сіздің деректеріңіз сақталды, енді келесі баланың деректерін енгізіңіз.
