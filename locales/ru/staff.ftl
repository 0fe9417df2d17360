# Staff side: the digest for education-department staff (daily, /digest, /stats).
# Commands shown only in staff chats.
staff-command-digest = Сводка с прошлой рассылки
staff-command-stats = Показатели с начала работы

digest-title = 📊 <b>Сводка «Кезек»</b>
digest-stats-title = 📈 <b>«Кезек»: показатели с начала работы</b>
digest-period = { $since } — { $until }, время Алматы
digest-period-start = По состоянию на { $until }, время Алматы

digest-submitted = { NUMBER($n) ->
    [one] <b>Подано { $n } заявление</b>
    [few] <b>Подано { $n } заявления</b>
    [other] <b>Подано { $n } заявления</b>
   *[many] <b>Подано { $n } заявлений</b>
}
digest-none-submitted = <b>Новых заявлений не было.</b>
digest-by-queue-type = По типу очереди:
digest-by-language = По языку обучения:
digest-by-provider = По организациям:
digest-by-group = По группам:
digest-line = • { $name } — { $n }
digest-group-line = • { $name } ({ $provider }) — { $n }
digest-more-providers = { NUMBER($n) ->
    [one] • …и ещё { $n } организация
    [few] • …и ещё { $n } организации
    [other] • …и ещё { $n } организации
   *[many] • …и ещё { $n } организаций
}
digest-more-groups = { NUMBER($n) ->
    [one] • …и ещё { $n } группа
    [few] • …и ещё { $n } группы
    [other] • …и ещё { $n } группы
   *[many] • …и ещё { $n } групп
}
digest-queue-general = общая очередь
digest-queue-special = специальная очередь
digest-language-kk = казахский
digest-language-ru = русский
digest-unknown = не указано

digest-status-changes = { NUMBER($n) ->
    [one] <b>{ $n } изменение статуса</b>
    [few] <b>{ $n } изменения статуса</b>
    [other] <b>{ $n } изменения статуса</b>
   *[many] <b>{ $n } изменений статуса</b>
}
digest-no-status-changes = <b>Статусы заявлений не менялись.</b>
digest-status-submitted = подано
digest-status-registered = поставлено в очередь
digest-status-voucher-issued = выдан ваучер
digest-status-voucher-used = ваучер использован
digest-status-voucher-expired = срок ваучера истёк
digest-status-rejected = отклонено
digest-status-cancelled = отменено

digest-outbox-title = <b>Отправка в сервис ваучеров</b>
digest-outbox-waiting = • ждут отправки — { $n }
digest-outbox-failed = • отправить не удалось — { $n }

digest-consents-title = <b>Согласия через 1414</b>
digest-consents-denied = • родитель отказал — { $n }
digest-consents-expired = • истёк срок ответа — { $n }

digest-drafts-title = { NUMBER($n) ->
    [one] <b>Где останавливаются родители</b>: { $n } незавершённый черновик
    [few] <b>Где останавливаются родители</b>: { $n } незавершённых черновика
    [other] <b>Где останавливаются родители</b>: { $n } незавершённого черновика
   *[many] <b>Где останавливаются родители</b>: { $n } незавершённых черновиков
}
digest-drafts-none = <b>Где останавливаются родители</b>: незавершённых черновиков нет.
digest-step-line = • шаг { $step }/5, { $name } — { $n }
digest-step-language = выбор языка
digest-step-rules = знакомство с правилами
digest-step-phone = номер телефона
digest-step-otp = код из приложения ed24.kz
digest-step-parent-iin = ИИН родителя
digest-step-parent-consent = согласие родителя через 1414
digest-step-parent-confirm = проверка данных родителя
digest-step-child-iin = ИИН ребёнка
digest-step-child-consent = согласие на данные ребёнка через 1414
digest-step-child-confirm = проверка данных ребёнка
digest-step-queue-type = тип очереди
digest-step-state-order = вид государственного заказа
digest-step-disability-doc = справка об инвалидности
digest-step-benefit = льготы
digest-step-benefit-doc = документ о льготе
digest-step-provider = выбор организации
digest-step-group = выбор группы
digest-step-preview = предварительный расчёт очереди
digest-step-notify-channel = способ уведомлений
digest-step-notify-language = язык уведомлений
digest-step-review = проверка и отправка заявления
digest-step-submitting = заявление отправляется в сервис ваучеров

digest-blocked = { NUMBER($n) ->
    [one] 🚫 { $n } родитель заблокировал бота.
    [few] 🚫 { $n } родителя заблокировали бота.
    [other] 🚫 { $n } родителя заблокировали бота.
   *[many] 🚫 { $n } родителей заблокировали бота.
}
digest-blocked-none = 🚫 Никто не заблокировал бота.

# The table of the period's applications (IINs masked; no names, no phones).
digest-csv-caption = 📎 Заявления за период — таблица. ИИН скрыты, имён и телефонов в ней нет.
digest-col-number = Номер
digest-col-submitted-at = Подано (время Алматы)
digest-col-status = Статус
digest-col-queue-type = Тип очереди
digest-col-provider = Организация
digest-col-group = Группа
digest-col-language = Язык обучения
digest-col-child-birth-year = Год рождения ребёнка
digest-col-child-iin = ИИН ребёнка
