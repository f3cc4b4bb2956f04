$ERYX --callback get_time='date +%s' --callback-description get_time='Seconds since 1970' -c 'print(list_callbacks())'
