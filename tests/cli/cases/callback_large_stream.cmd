# 3 MiB through a command that writes while it reads (cat): eryx writes its
# stdin only as the pipe takes it, draining stdout meanwhile (a blocking
# write of it all once hung, past the call's timeout, for good).
$ERYX --callback-timeout 20000 --callback echo=cat -c '
r = await echo(data="x" * (3 << 20))
print(len(r["data"]), r["data"] == "x" * (3 << 20))'
