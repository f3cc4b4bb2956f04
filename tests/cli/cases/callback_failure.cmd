$ERYX --callback bad='echo "no such user" >&2; exit 3' -c '
try:
    await bad()
except CallbackError as e:
    print("failed:", e)'
