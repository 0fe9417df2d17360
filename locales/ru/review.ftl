# Step 4/5: how and in which language the parent hears about the application.
notify-channel-ask =
    Как сообщать вам о ходе заявления? Выберите один способ:
    • <b>SMS</b> — сообщение на номер { $phone };
    • <b>Приложение ed24.kz</b> — уведомление в приложении ed24.kz на вашем телефоне;
    • <b>Телеграм</b> — сообщение от меня здесь, в этом чате.
btn-notify-sms = ✉️ SMS
btn-notify-push = 📲 Приложение ed24.kz
btn-notify-telegram = 💬 Телеграм
notify-channel-name-sms = SMS
notify-channel-name-push = приложение ed24.kz
notify-channel-name-telegram = Телеграм
notify-channel-expected = Выберите способ уведомления одной из кнопок ниже.
notify-language-ask = На каком языке присылать уведомления? Отмечен язык, на котором мы сейчас общаемся: нажмите его или выберите другой.
btn-notify-lang-kk = 🇰🇿 На казахском
btn-notify-lang-ru = 🇷🇺 На русском
notify-language-name-kk = на казахском языке
notify-language-name-ru = на русском языке
notify-language-expected = Выберите язык уведомлений одной из кнопок ниже.
help-notify_channel = Выберите, как узнавать об изменениях статуса заявления: регистрация в очереди, место в очереди, выдача ваучера. Изменить выбор можно позже, на проверке заявления, кнопкой «✏️ Изменить».
help-notify_language = Выберите язык уведомлений. Он может отличаться от языка, на котором мы общаемся здесь.

# Step 5/5: the application as the portal writes it, the consents, submission.
review-intro = Проверьте заявление — так его увидит отдел образования.
review-app-to = Руководителю отдела образования
review-app-from = от: { $name }
review-app-iin = ИИН: { $iin }
review-app-address = Адрес: { $address }
review-app-title = ЗАЯВЛЕНИЕ
review-app-request = Прошу поставить моего ребёнка { $child }, { $birth } г. р., в очередь на получение ваучера дополнительного образования.
review-app-documents = Документы
review-app-doc-disability = об инвалидности: { $file }
review-app-doc-benefit = о льготе: { $file }
review-app-none = нет
review-app-provider = Поставщик услуг: { $name }, { $address }
review-app-group = Группа: { $name }, { $min }–{ $max } { $max ->
        [one] год
        [few] года
       *[many] лет
    }, язык обучения: { $language }
review-app-language-kk = казахский
review-app-language-ru = русский
review-app-queue = Очередь: { $queue }
review-app-year = Учебный год: { $year }
review-app-child-permanent = Постоянный адрес ребёнка: { $address }
review-app-child-temporary = Временный адрес ребёнка: { $address }
review-app-certificate = Свидетельство о рождении: { $number }
review-app-notification = Уведомления: { $channel }, { $language }
review-app-phone = Телефон: { $phone }

review-consents-title = Согласия — отметьте все три:
review-consent-personal_data = Согласен(на) на сбор и обработку моих персональных данных и персональных данных ребёнка.
review-consent-contact_use = Согласен(на) на использование моих контактных данных для уведомлений по заявлению.
review-consent-offer = Принимаю условия публичной оферты.
btn-consent-personal_data = Персональные данные
btn-consent-contact_use = Контакты для уведомлений
btn-consent-offer = Публичная оферта
review-consents-missing = Чтобы отправить заявление, отметьте: { $missing }.

btn-review-edit = ✏️ Изменить
btn-review-submit = 📨 Отправить заявление
btn-review-show = ◀️ К заявлению
review-edit-choose = Что изменить? Выберите раздел — после изменения я верну вас к заявлению.
btn-edit-phone = 📱 Телефон
btn-edit-parent = 👤 Родитель
btn-edit-child = 🧒 Ребёнок
btn-edit-queue = 📋 Очередь и документы
btn-edit-provider = 🏫 Организация и группа
btn-edit-notification = 🔔 Уведомления
review-section-phone = Телефон
review-section-parent = Данные родителя
review-section-child = Данные ребёнка
review-section-queue = Очередь и документы
review-section-provider = Организация и группа
review-section-notification = Уведомления
review-missing = В заявлении не заполнен раздел «{ $section }». Заполните его — потом я верну вас к заявлению.
review-use-buttons = Отметьте согласия и нажмите «📨 Отправить заявление» под заявлением или «✏️ Изменить», чтобы исправить раздел.

review-submitted =
    ✅ Ваше заявление № { $number } отправлено на регистрацию.
    Отправлено: { $sent }

    Что дальше: я напишу здесь о каждом изменении статуса — когда заявление зарегистрируют в очереди, о месте в очереди и о выдаче ваучера. Чтобы подать ещё одно заявление, нажмите /start.
review-already-sent = Это заявление уже отправлено: № { $number }. Отправлять его ещё раз не нужно.
review-duplicate = Ребёнок уже стоит в этой очереди в этом учебном году: заявление № { $number }. Новое заявление не создано, черновик сохранён. Чтобы выбрать другую очередь, нажмите «✏️ Изменить».
review-intake-closed = Приём заявлений в очередь «{ $queue }» сейчас закрыт. Черновик сохранён — отправьте заявление, когда приём откроется.
review-age-out-of-range = Выбранная группа не подходит ребёнку по возрасту на 1 сентября. Выберите другую группу — потом я верну вас к заявлению.
review-document-required = Для специальной очереди нужен документ об инвалидности. Прикрепите его — потом я верну вас к заявлению.
review-validation-error = Сервис ваучеров не принял раздел «{ $section }». Нажмите «✏️ Изменить» и проверьте его.
review-validation-error-general = Сервис ваучеров не принял часть данных заявления. Нажмите «✏️ Изменить» и проверьте разделы.
help-review = Внимательно проверьте заявление. Если что-то неверно, нажмите «✏️ Изменить» и выберите раздел. Затем отметьте все три согласия (⬜ → ✅) и нажмите «📨 Отправить заявление».
help-submitted = Заявление отправлено. Я напишу здесь, когда изменится его статус. Чтобы подать ещё одно заявление, нажмите /start.

# Another child of the same parent, after a submission.
btn-another-child = ➕ Подать заявление на другого ребёнка
review-another-child = Новое заявление: телефон и ваши данные сохранены, теперь введите данные следующего ребёнка.
