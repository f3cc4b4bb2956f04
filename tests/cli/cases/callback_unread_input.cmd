$ERYX --callback quick='echo null' -c 'print(await quick(data="x" * 300000), await quick(data="y" * 300000))'
