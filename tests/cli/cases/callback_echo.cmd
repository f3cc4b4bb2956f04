$ERYX --callback echo=cat -c 'print(await echo(x=1, s="hé"))'
