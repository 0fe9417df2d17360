# After submission: status pushes, deadline and draft reminders, /status.
command-status = Мои заявления и их статус

status-name-submitted = отправлено, ждёт регистрации
status-name-registered = в очереди
status-name-voucher-issued = ваучер выдан
status-name-voucher-used = ваучер использован
status-name-voucher-expired = срок ваучера истёк
status-name-rejected = отклонено
status-name-cancelled = отменено
status-value-unknown = уточняется
status-reason-none = служба ваучеров её не указала

# Pushes: the title names the application and the child, the body says what it means and what next.
status-push-title = 🔔 <b>Заявление № { $number }</b> — { $child }
status-push-registered =
    📋 Заявление зарегистрировано: ребёнок стоит в очереди «{ $queue }». Место в очереди: <b>{ $position }</b>.
    Что дальше: делать ничего не нужно. Когда подойдёт очередь, выдадут ваучер — я сразу напишу сюда. Статус можно посмотреть в любое время командой /status.
status-push-moved =
    🔢 Место в очереди изменилось: было { $was }, теперь <b>{ $now }</b>.
    Что дальше: делать ничего не нужно — я напишу, когда выдадут ваучер.
status-push-issued =
    🎉 Ребёнку выдан ваучер на занятия. Поставщик услуг: { $provider }.
    Что сделать: подтвердите ваучер у поставщика услуг до <b>{ $deadline }</b> (время Алматы). Если не подтвердить до этого срока, ваучер аннулируют.
status-push-issued-no-deadline =
    🎉 Ребёнку выдан ваучер на занятия. Поставщик услуг: { $provider }.
    Что сделать: как можно скорее подтвердите ваучер у поставщика услуг.
status-push-used =
    ✅ Ваучер использован: ребёнок принят на занятия. Поставщик услуг: { $provider }.
    Делать больше ничего не нужно. Хороших занятий!
status-push-expired =
    ⌛ Срок подтверждения ваучера истёк, ваучер аннулирован.
    Что дальше: можно подать новое заявление — нажмите /start.
status-push-rejected =
    ❌ Заявление отклонено.
    Причина: { $reason }
    Что дальше: устраните причину и подайте заявление заново — нажмите /start.
status-push-cancelled =
    🚫 Заявление отменено.
    Что дальше: если это ошибка или вы хотите подать заявление снова, нажмите /start.
status-push-submitted =
    📨 Заявление снова на рассмотрении.
    Что дальше: делать ничего не нужно — я напишу, когда его зарегистрируют в очереди.
status-remind-48h =
    ⏰ Осталось меньше двух суток, чтобы подтвердить ваучер. Поставщик услуг: { $provider }.
    Что сделать: подтвердите его у поставщика услуг до <b>{ $deadline }</b> (время Алматы).
status-remind-24h =
    ⏰ Остались последние сутки, чтобы подтвердить ваучер. Поставщик услуг: { $provider }.
    Что сделать: подтвердите его у поставщика услуг до <b>{ $deadline }</b> (время Алматы), иначе ваучер аннулируют.

# A draft untouched for a day.
status-draft-reminder =
    👋 Вы начали заявление на ваучер, но не закончили. Вы остановились на шаге { $n }/5 — «{ $title }».
    Ответы сохранены: нажмите кнопку ниже, чтобы продолжить с того же места. Если заявление больше не нужно, нажмите /cancel.
status-btn-resume = ▶️ Продолжить заявление
status-draft-gone = Это заявление уже отправлено или отменено. Чтобы подать новое, нажмите /start.

# /status
status-list-title = { $n ->
        [one] У вас { $n } заявление:
        [few] У вас { $n } заявления:
       *[many] У вас { $n } заявлений:
    }
status-list-empty = У вас пока нет отправленных заявлений. Чтобы подать заявление, нажмите /start.
status-card-title = 📄 <b>Заявление № { $number }</b>
status-card-child = Ребёнок: { $child }
status-card-queue = Очередь: { $queue }
status-card-group = Группа: { $group } — { $provider }
status-card-status = Статус: <b>{ $status }</b>
status-card-position = Место в очереди: { $position }
status-card-deadline = Подтвердить ваучер до: { $deadline } (время Алматы)
status-card-reason = Причина отказа: { $reason }
status-card-checked = Проверено в { $time }
status-btn-refresh = 🔄 Обновить
status-refresh-failed = Не удалось узнать статус: служба ваучеров сейчас не отвечает. Нажмите «🔄 Обновить» чуть позже.
status-refresh-gone = Служба ваучеров не нашла заявление № { $number }. Если нужно, подайте новое — нажмите /start.
